"""Mutual TLS between processes: every internal method of every service, over real gRPC, refuses a
caller without a certificate of the suite, one from another CA, and an identity the method does not
name; the identities the authorization table names get through."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from shared.auth import bearer_metadata
from shared.authz import ALLOWED, IDENTITIES
from shared.clients import STUB_DESCRIPTORS
from shared.config import MODEL_SERVER, SERVICES, Settings
from shared.tls import CA_FILE, IdentityFiles, channel_credentials
from tests.support import ServerThread, make_settings
from tools.certs import authority, ensure_certificates, issue
from tools.chaos.probes import call_raw

INTERNAL = [name for name in SERVICES if name != "gateway"]
# TF Serving's methods, as the model server serves them (all unary).
MODEL_SERVER_METHODS = [
    "/tensorflow.serving.PredictionService/Predict",
    "/tensorflow.serving.PredictionService/GetModelMetadata",
    "/tensorflow.serving.ModelService/GetModelStatus",
    "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
]
REFUSED_FOR_IDENTITY = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


def _methods() -> list[tuple[str, str, bool, bool]]:
    """(process, method path, client streaming, server streaming) of every internal method."""
    found = [
        (name, f"/{STUB_DESCRIPTORS[name].full_name}/{m.name}", m.client_streaming, m.server_streaming)
        for name in INTERNAL
        for m in STUB_DESCRIPTORS[name].methods
    ]
    return found + [(MODEL_SERVER, path, False, False) for path in MODEL_SERVER_METHODS]


METHODS = _methods()


def _settings(home: Path, **env: str) -> Settings:
    return make_settings(str(home), RECSYS_TLS="on", RECSYS_MODEL_POLL_S="60", **env)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Every internal process with mTLS on (not waiting for models: authorization comes first)."""
    home = tmp_path_factory.mktemp("mtls")
    ensure_certificates(home / "tls")
    settings = _settings(home)
    servers = {}
    try:
        for name in [*INTERNAL, MODEL_SERVER]:
            build = importlib.import_module(f"services.{name}.app").build
            servers[name] = ServerThread(build, settings, wait_ready=False)
        yield settings, {name: server.address for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


def _call(address: str, credentials: grpc.ChannelCredentials, method: tuple[str, str, bool, bool]):
    """Calls `method` with an empty request; the status code it ends with (OK when it answers)."""
    _, path, client_streaming, server_streaming = method
    with grpc.secure_channel(address, credentials) as channel:
        return call_raw(channel, path, client_streaming, server_streaming, [b""])


def test_the_table_names_every_internal_method_and_only_known_identities() -> None:
    served = {path for _, path, _, _ in METHODS}
    assert set(ALLOWED) <= served, sorted(set(ALLOWED) - served)
    assert set(ALLOWED) | {"/tensorflow.serving.ModelService/HandleReloadConfigRequest"} == served
    assert all(callers and callers <= set(IDENTITIES) for callers in ALLOWED.values())
    # examples the contract is meant to keep
    assert ALLOWED["/recsys.profile.v1.ProfileService/ExportEvents"] == {"trainer"}
    assert ALLOWED["/recsys.policy.v1.PolicyService/Reward"] == {"gateway"}
    assert ALLOWED["/tensorflow.serving.PredictionService/Predict"] == {"candidates"}


def test_every_internal_method_refuses_whoever_it_does_not_name(
    suite: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, addresses = suite
    ca = (settings.tls_dir / "trainer" / CA_FILE).read_bytes()
    anonymous = grpc.ssl_channel_credentials(root_certificates=ca)  # TLS, but no client certificate
    # a certificate named like the gateway, from a CA the suite does not trust
    rogue_ca = authority(tmp_path / "rogue")
    certificate, key = issue(rogue_ca, "gateway")
    impostor = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=key,
        certificate_chain=certificate.public_bytes(serialization.Encoding.PEM),
    )
    identities = {identity: channel_credentials(settings, identity) for identity in IDENTITIES}
    for method in METHODS:
        process, path = method[0], method[1]
        allowed = ALLOWED.get(path, frozenset())
        assert _call(addresses[process], anonymous, method) == grpc.StatusCode.UNAVAILABLE, path
        assert _call(addresses[process], impostor, method) == grpc.StatusCode.UNAVAILABLE, path
        for identity, credentials in identities.items():
            code = _call(addresses[process], credentials, method)
            if identity in allowed:
                assert code not in (*REFUSED_FOR_IDENTITY, grpc.StatusCode.UNAVAILABLE), (
                    path,
                    identity,
                    code,
                )
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (path, identity, code)


def test_plaintext_callers_cannot_reach_an_internal_service(suite: tuple[Settings, dict[str, str]]) -> None:
    _, addresses = suite
    with grpc.insecure_channel(addresses["profile"]) as channel:
        call = channel.unary_unary(
            "/recsys.profile.v1.ProfileService/ExportEvents",
            request_serializer=bytes,
            response_deserializer=bytes,
        )
        with pytest.raises(grpc.RpcError) as refused:
            call(b"", timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_gateway_serves_tls_to_callers_with_an_api_key_and_no_certificate(tmp_path: Path) -> None:
    from services.gateway.app import build

    ensure_certificates(tmp_path / "tls")
    key = "k" * 32
    gateway = ServerThread(build, _settings(tmp_path, RECSYS_API_KEYS=key), wait_ready=False)
    try:
        ca = IdentityFiles(tmp_path / "tls" / "trainer").ca.read_bytes()
        with grpc.secure_channel(
            gateway.address, grpc.ssl_channel_credentials(root_certificates=ca)
        ) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            request = gateway_pb2.RecommendRequest()  # no user: refused by the gateway's own checks
            with pytest.raises(grpc.RpcError) as no_key:
                stub.Recommend(request, timeout=5)
            assert no_key.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as answered:
                stub.Recommend(request, metadata=bearer_metadata(key), timeout=5)
            # past TLS and the key: the call reaches the gateway's own checks
            assert answered.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with grpc.insecure_channel(gateway.address) as plaintext:
            with pytest.raises(grpc.RpcError) as refused:
                gateway_pb2_grpc.GatewayServiceStub(plaintext).Recommend(request, timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        gateway.stop()


def test_certificates_are_kept_and_issued_again_when_missing_or_from_another_ca(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    assert ensure_certificates(folder) == list(IDENTITIES)
    assert ensure_certificates(folder) == []
    assert oct((folder / "gateway" / "tls.key").stat().st_mode & 0o777) == "0o600"
    (folder / "policy" / "tls.key").unlink()
    assert ensure_certificates(folder) == ["policy"]
    for path in (folder / "ca").iterdir():
        path.unlink()
    assert ensure_certificates(folder) == list(IDENTITIES)


def test_a_missing_certificate_is_one_clear_configuration_error(tmp_path: Path) -> None:
    from shared.config import ConfigError

    with pytest.raises(ConfigError, match="recsys certs"):
        channel_credentials(_settings(tmp_path), "gateway")


def test_renewed_certificates_serve_the_next_connection_without_a_restart(tmp_path: Path) -> None:
    """As cert-manager renews a Secret (here: a new CA, so that only a reload can pass)."""
    from services.profile.app import build
    from tools.cli.supervisor import check_health

    folder = tmp_path / "tls"
    ensure_certificates(folder)
    settings = _settings(tmp_path)
    before = channel_credentials(settings, "trainer")
    server = ServerThread(build, settings, wait_ready=False)
    try:
        assert check_health(server.address, credentials=before) != "UNREACHABLE"
        for path in (folder / "ca").iterdir():
            path.unlink()
        assert ensure_certificates(folder) == list(IDENTITIES)  # every certificate from a new CA
        after = channel_credentials(settings, "trainer")
        assert check_health(server.address, credentials=after) != "UNREACHABLE"
        assert check_health(server.address, credentials=before) == "UNREACHABLE"
    finally:
        server.stop()


def test_a_long_lived_client_follows_its_renewed_certificate(tmp_path: Path) -> None:
    """A service's clients keep calling across a renewal to a new CA: they open new channels with
    the new certificate. Credentials read once (a short-lived tool's) are refused on their next
    connection, which is what the renewing client would otherwise meet."""
    import asyncio

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.profile.app import build
    from shared.clients import SuiteClients
    from shared.tls import ClientCertificate, identity_files

    folder = tmp_path / "tls"
    ensure_certificates(folder)
    settings = _settings(tmp_path)
    server = ServerThread(build, settings, wait_ready=False)
    addresses = {"profile": server.address}

    async def ask(clients: SuiteClients) -> str:
        try:
            await health_pb2_grpc.HealthStub(clients.channel("profile")).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name
        return "OK"

    async def renewal() -> tuple[str, str, str, int]:
        certificate = ClientCertificate(identity_files(settings, "gateway"), check_s=0)
        renewing = SuiteClients(addresses, 10, certificate=certificate)
        read_once = SuiteClients(addresses, 10, channel_credentials(settings, "gateway"))
        try:
            before, old_channel = await ask(renewing), renewing.channel("profile")
            for path in (folder / "ca").iterdir():
                path.unlink()
            ensure_certificates(folder)  # every certificate from a new CA
            after = await ask(renewing)
            assert renewing.channel("profile") is not old_channel  # the call went over a new connection
            return before, after, await ask(read_once), certificate.generation
        finally:
            await renewing.close()
            await read_once.close()

    try:
        assert asyncio.run(renewal()) == ("OK", "OK", "UNAVAILABLE", 1)
    finally:
        server.stop()
