"""Schema migrations: concurrent runners serialize on PostgreSQL, and a service that does not migrate
waits, not ready, until the schema it needs is there."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from grpc_health.v1 import health_pb2

from services.policy.app import build as build_policy
from services.policy.store import PolicyStore
from services.profile.store import ProfileStore
from tests.support import ServerThread, make_settings


@pytest.mark.timeout(60)  # without the lock the runners block each other on the version table
def test_concurrent_migrations_serialize_on_postgresql(postgres_url: str) -> None:
    """Replicas and Jobs starting together: without the advisory lock they race on CREATE TABLE."""
    stores = [ProfileStore(postgres_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            for future in [pool.submit(store.migrate) for store in stores]:
                future.result()
        assert all(store.schema_behind() is None for store in stores)
    finally:
        for store in stores:
            store.close()


def test_schema_behind_names_the_revisions(database_url: str) -> None:
    store = ProfileStore(database_url)
    try:
        behind = store.schema_behind()
        assert behind is not None and "revision none" in behind and "this release needs" in behind
        store.migrate()
        assert store.schema_behind() is None
    finally:
        store.close()


def test_a_service_that_waits_for_the_migration_becomes_ready_after_it(tmp_path, database_url: str) -> None:
    settings = make_settings(
        str(tmp_path),
        RECSYS_MIGRATE_ON_START="0",
        RECSYS_POLICY_DATABASE_URL=database_url,
    )
    server = ServerThread(build_policy, settings, wait_ready=False)
    try:
        time.sleep(1.0)
        assert not server.running.ready.is_set(), "ready before its tables exist"
        status = server.run(server.running.health.Check(health_pb2.HealthCheckRequest(service=""), None))
        assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
        store = PolicyStore(database_url)
        store.migrate()
        store.close()
        deadline = time.monotonic() + 15
        while not server.running.ready.is_set():
            assert time.monotonic() < deadline, "still not ready after the migration"
            time.sleep(0.2)
    finally:
        server.stop()
