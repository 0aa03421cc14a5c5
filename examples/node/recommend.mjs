// A Node client of the recsys gateway, built at run time from protos/ alone (no generated
// Python, no project code): asks Recommend and prints one JSON line per item.
//
//   RECSYS_API_KEY=... RECSYS_CA_FILE=var/tls/ca/ca.crt \
//     node examples/node/recommend.mjs localhost:50051 17850 [count] [policy]
//
// The gateway speaks TLS (RECSYS_CA_FILE: the CA that signed its certificate; `recsys up` makes
// one under RECSYS_HOME/tls/ca/); without RECSYS_CA_FILE the channel is plaintext, for a suite
// run with RECSYS_TLS=off.
// Exit code 0 on success; on a gRPC error, the status name and details on stderr, exit code 1.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PROTOS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "protos");
const DEADLINE_MS = 10_000;

function gatewayClient(address) {
  const definition = protoLoader.loadSync("recsys/gateway/v1/gateway.proto", {
    includeDirs: [PROTOS],
    keepCase: true, // field names as the contract spells them (user_id, not userId)
    longs: String,
    enums: String,
    defaults: true,
  });
  const { GatewayService } = grpc.loadPackageDefinition(definition).recsys.gateway.v1;
  const ca = process.env.RECSYS_CA_FILE;
  const credentials = ca ? grpc.credentials.createSsl(readFileSync(ca)) : grpc.credentials.createInsecure();
  return new GatewayService(address, credentials);
}

function recommend(client, key, request) {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  const deadline = new Date(Date.now() + DEADLINE_MS);
  return new Promise((resolve, reject) =>
    client.Recommend(request, metadata, { deadline }, (error, response) =>
      error ? reject(error) : resolve(response),
    ),
  );
}

const [address, userId, count = "10", policy = ""] = process.argv.slice(2);
if (!address || !userId || !process.env.RECSYS_API_KEY) {
  console.error("usage: RECSYS_API_KEY=... node recommend.mjs ADDRESS USER_ID [COUNT] [POLICY]");
  process.exit(2);
}
const client = gatewayClient(address);
try {
  const response = await recommend(client, process.env.RECSYS_API_KEY, {
    user_id: userId,
    count: Number(count),
    surface: "home",
    policy,
  });
  for (const item of response.items) {
    console.log(JSON.stringify({
      item_id: item.item_id,
      title: item.title,
      score: item.score,
      source: item.source_kind, // the typed source: "SOURCE_ITEM_KNN", "SOURCE_CANDIDATE_GAN"...
      reason: item.reason,
    }));
  }
  console.error(`request ${response.request_id}: ${response.items.length} items by ${response.policy_kind}` +
    (response.degraded_stages.length ? `, degraded: ${response.degraded_stages.join(", ")}` : ""));
} catch (error) {
  console.error(`${grpc.status[error.code]}: ${error.details}`);
  process.exitCode = 1;
} finally {
  client.close();
}
