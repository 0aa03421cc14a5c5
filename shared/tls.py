"""Mutual TLS between the suite's processes: where each identity's certificate lives, and the gRPC
credentials made from it.

Every process has an identity (its service name, or `trainer` for the offline tools) and reads
its certificate from `RECSYS_TLS_DIR/<identity>/`, laid out as cert-manager writes a Secret:
`tls.crt`, `tls.key` and `ca.crt`. Servers require a client certificate signed by that CA (the
gateway's public port only asks for one: its callers present API keys) and authorize each method
by the caller's identity, the certificate's common name (shared/authz.py). `recsys up` issues the
local certificates (tools/certs.py); in Kubernetes cert-manager does (k8s/components/mtls).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from shared.config import ConfigError, Settings

# How often a client looks whether its certificate files were renewed.
RENEWAL_CHECK_S = 30.0
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_FILE = "ca.crt"


@dataclass(frozen=True)
class IdentityFiles:
    """One identity's certificate, key and the CA that signed every certificate of the suite."""

    folder: Path

    @property
    def cert(self) -> Path:
        return self.folder / CERT_FILE

    @property
    def key(self) -> Path:
        return self.folder / KEY_FILE

    @property
    def ca(self) -> Path:
        return self.folder / CA_FILE

    def stamp(self) -> tuple[float, ...]:
        """When each file last changed (a Secret volume swaps them all at once)."""
        return tuple(
            path.stat().st_mtime if path.exists() else 0.0 for path in (self.ca, self.cert, self.key)
        )

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(CA, certificate chain, private key); ConfigError naming what is missing."""
        missing = [path.name for path in (self.ca, self.cert, self.key) if not path.is_file()]
        if missing:
            raise ConfigError(
                [
                    f"mTLS is on (RECSYS_TLS) but {self.folder} lacks {', '.join(missing)}: run "
                    "`recsys certs` (`recsys up` does), mount this identity's certificate Secret, "
                    "or set RECSYS_TLS=off on a trusted network"
                ]
            )
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def identity_files(settings: Settings, identity: str) -> IdentityFiles:
    return IdentityFiles(settings.tls_dir / identity)


def _configuration(files: IdentityFiles) -> grpc.ServerCertificateConfiguration:
    ca, chain, key = files.read()
    return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=ca)


def server_credentials(
    settings: Settings, identity: str, require_client_cert: bool
) -> grpc.ServerCredentials:
    """Credentials that follow the files: when cert-manager (or `recsys certs`) renews them, the
    next connection's handshake uses the new certificate and CA, without a restart."""
    files = identity_files(settings, identity)
    seen = files.stamp()
    initial = _configuration(files)

    def renewed() -> grpc.ServerCertificateConfiguration | None:
        nonlocal seen
        stamp = files.stamp()
        if stamp == seen:
            return None
        try:
            configuration = _configuration(files)
        except ConfigError:  # caught mid-write: the next handshake looks again
            return None
        seen = stamp
        return configuration

    return grpc.dynamic_ssl_server_credentials(
        initial, renewed, require_client_authentication=require_client_cert
    )


def _channel_credentials(files: IdentityFiles) -> grpc.ChannelCredentials:
    ca, chain, key = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)


def channel_credentials(settings: Settings, identity: str) -> grpc.ChannelCredentials | None:
    """Credentials that present `identity`'s certificate and trust only the suite's CA; None when
    mTLS is off (plaintext channels). They stay as read: long-lived clients use ClientCertificate."""
    if not settings.tls:
        return None
    return _channel_credentials(identity_files(settings, identity))


class ClientCertificate:
    """An identity's channel credentials that follow its files: when cert-manager (or `recsys
    certs`) renews them, `credentials()` returns new ones (looking at most every `check_s`) and
    `generation` counts up, so that the owner opens new channels and retires the old ones. gRPC's
    channel credentials cannot change under a channel, unlike a server's."""

    def __init__(
        self,
        files: IdentityFiles,
        check_s: float = RENEWAL_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files = files
        self.check_s = check_s
        self.clock = clock
        self.generation = 0
        self._seen = files.stamp()
        self._credentials = _channel_credentials(files)
        self._checked = clock()

    def credentials(self) -> grpc.ChannelCredentials:
        now = self.clock()
        if now - self._checked >= self.check_s:
            self._checked = now
            stamp = self.files.stamp()
            if stamp != self._seen:
                try:
                    renewed = _channel_credentials(self.files)
                except ConfigError:  # caught mid-write: the next look tries again
                    return self._credentials
                self._seen, self._credentials = stamp, renewed
                self.generation += 1
        return self._credentials


def client_certificate(settings: Settings, identity: str) -> ClientCertificate | None:
    """`identity`'s renewing client credentials; None when mTLS is off."""
    return ClientCertificate(identity_files(settings, identity)) if settings.tls else None


def open_sync_channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    """A blocking channel for tools and probes: TLS when given credentials."""
    if credentials is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, credentials)


def open_async_channel(
    address: str, credentials: grpc.ChannelCredentials | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """The same for asyncio callers (load generators): TLS when given credentials."""
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)
