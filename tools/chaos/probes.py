"""Calls that probe the running suite from outside: fuzzed requests to every RPC, the mutual-TLS
matrix (no certificate, another CA, a wrong identity) and the API-key matrix (none, wrong, another
scope, over quota). Each returns counts; tools/cli/chaos.py judges them."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from google.protobuf.descriptor import Descriptor

from recsys.gateway.v1 import gateway_pb2
from recsys.tfserving.v1 import tfserving_pb2
from shared.auth import bearer_metadata
from shared.authz import ALLOWED, IDENTITIES
from shared.clients import STUB_DESCRIPTORS
from shared.config import MODEL_SERVER
from shared.tls import open_sync_channel
from tools.certs import authority, issue
from tools.chaos.fuzz import fuzzed_requests

CALL_TIMEOUT_S = 3.0
STREAM_MESSAGES_READ = 3
# TF Serving's methods take messages wire-compatible with these (protos/recsys/tfserving/v1).
MODEL_SERVER_INPUTS = {
    "/tensorflow.serving.PredictionService/Predict": tfserving_pb2.PredictRequest.DESCRIPTOR,
    "/tensorflow.serving.PredictionService/GetModelMetadata": tfserving_pb2.GetModelStatusRequest.DESCRIPTOR,
    "/tensorflow.serving.ModelService/GetModelStatus": tfserving_pb2.GetModelStatusRequest.DESCRIPTOR,
}


@dataclass(frozen=True)
class Rpc:
    process: str
    path: str
    client_streaming: bool
    server_streaming: bool
    input_type: Descriptor


def every_rpc(with_model_server: bool) -> list[Rpc]:
    found = [
        Rpc(name, f"/{service.full_name}/{m.name}", m.client_streaming, m.server_streaming, m.input_type)
        for name, service in STUB_DESCRIPTORS.items()
        for m in service.methods
    ]
    if with_model_server:
        found += [Rpc(MODEL_SERVER, path, False, False, kind) for path, kind in MODEL_SERVER_INPUTS.items()]
    return found


def call_raw(
    channel: grpc.Channel,
    path: str,
    client_streaming: bool,
    server_streaming: bool,
    payloads: list[bytes],
    metadata: tuple[tuple[str, str], ...] = (),
) -> grpc.StatusCode:
    """Calls `path` with request bytes as they are (a stream of them for a client stream); the
    status it ends with, OK when it answers (a response stream: its first messages are read)."""
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(client_streaming, server_streaming)]
    call = kind(path, request_serializer=bytes, response_deserializer=bytes)
    request = iter(payloads) if client_streaming else payloads[0]
    try:
        result = call(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
        if server_streaming:
            for _ in itertools.islice(result, STREAM_MESSAGES_READ):
                pass
            result.cancel()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _call(
    channel: grpc.Channel, rpc: Rpc, payloads: list[bytes], metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    return call_raw(channel, rpc.path, rpc.client_streaming, rpc.server_streaming, payloads, metadata)


@dataclass
class FuzzReport:
    calls: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    # (method, code, details) of every INTERNAL or UNKNOWN answer: a bug each
    failures: list[tuple[str, str, str]] = field(default_factory=list)


def fuzz(
    addresses: Mapping[str, str],
    credentials: Mapping[str, grpc.ChannelCredentials | None],
    api_key: str,
    total: int,
    seed: int,
    with_model_server: bool,
) -> FuzzReport:
    """`total` fuzzed calls spread over every RPC, each as an identity allowed to call it (so the
    request gets past authorization and is parsed), the gateway's with an admin API key."""
    rpcs = every_rpc(with_model_server)
    rng = random.Random(seed)
    streams = {rpc.path: fuzzed_requests(rpc.input_type, random.Random(rng.random())) for rpc in rpcs}
    channels: dict[tuple[str, str], grpc.Channel] = {}

    def channel_for(rpc: Rpc) -> grpc.Channel:
        identity = "trainer" if rpc.process == "gateway" else sorted(ALLOWED.get(rpc.path, {"trainer"}))[0]
        key = (rpc.process, identity)
        if key not in channels:
            channels[key] = open_sync_channel(addresses[rpc.process], credentials[identity])
        return channels[key]

    report = FuzzReport()
    plan = [rpcs[n % len(rpcs)] for n in range(total)]
    payloads = [
        [next(streams[rpc.path]).payload for _ in range(rng.randint(1, 3) if rpc.client_streaming else 1)]
        for rpc in plan
    ]
    metadata = bearer_metadata(api_key)

    def one(n: int) -> None:
        rpc = plan[n]
        code = _call(channel_for(rpc), rpc, payloads[n], metadata if rpc.process == "gateway" else ())
        report.codes[code.name] += 1
        if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
            report.failures.append((rpc.path, code.name, payloads[n][0][:80].hex()))

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, range(total)))
    finally:
        for channel in channels.values():
            channel.close()
    report.calls = total
    return report


def tls_matrix(
    addresses: Mapping[str, str],
    ca: bytes,
    credentials: Mapping[str, grpc.ChannelCredentials | None],
    scratch: Path,
    with_model_server: bool,
) -> Counter[str]:
    """Every internal method called without a certificate, with one from another CA, and as every
    identity the method does not name: how many of those calls got past authorization ("allowed"
    must stay 0) and how many were refused."""
    rogue_ca = authority(scratch)
    certificate, key = issue(rogue_ca, "gateway")
    callers = {
        "no certificate": grpc.ssl_channel_credentials(root_certificates=ca),
        "another CA": grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=key,
            certificate_chain=certificate.public_bytes(serialization.Encoding.PEM),
        ),
    }
    outcome: Counter[str] = Counter()
    refused = (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    )
    for rpc in every_rpc(with_model_server):
        if rpc.process == "gateway":
            continue
        wrong = {i: credentials[i] for i in IDENTITIES if i not in ALLOWED.get(rpc.path, frozenset())}
        for name, presented in {**callers, **wrong}.items():
            with open_sync_channel(addresses[rpc.process], presented) as channel:
                code = _call(channel, rpc, [b""], ())
            outcome["refused" if code in refused else "allowed"] += 1
            if code not in refused:
                outcome[f"allowed: {name} -> {rpc.path}"] += 1
    return outcome


def key_matrix(
    address: str, credentials: grpc.ChannelCredentials | None, keys: Mapping[str, str], calls: int = 10
) -> Counter[str]:
    """Recommend called with no key, a wrong key, a key of another scope, and a key over its quota
    (after the one call its rate allows): successes per case (each must stay 0)."""
    request = gateway_pb2.RecommendRequest(user_id="chaos-key-matrix", count=3).SerializeToString()
    rpc = Rpc(
        "gateway",
        "/recsys.gateway.v1.GatewayService/Recommend",
        False,
        False,
        gateway_pb2.RecommendRequest.DESCRIPTOR,
    )
    cases = {
        "no key": (),
        "wrong key": bearer_metadata("not-a-key-of-this-suite-0000"),
        "other scope": bearer_metadata(keys["push"]),
        "over quota": bearer_metadata(keys["slow"]),
    }
    successes: Counter[str] = Counter()
    with open_sync_channel(address, credentials) as channel:
        _call(channel, rpc, [request], cases["over quota"])  # the one call its rate allows
        for case, metadata in cases.items():
            for _ in range(calls):
                code = _call(channel, rpc, [request], metadata)
                successes[case] += code == grpc.StatusCode.OK
    return successes
