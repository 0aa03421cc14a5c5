"""The items service over real gRPC, on SQLite and on PostgreSQL (with database_url)."""

from pathlib import Path

import grpc
import pytest

from recsys.items.v1 import items_pb2_grpc
from services.items.app import build
from tests.support import ServerThread, make_settings


@pytest.fixture
def items(tmp_path: Path, database_url: str):
    """(stub, settings) of a fresh items service that polls for new models every 0.1 s."""
    settings = make_settings(str(tmp_path), RECSYS_ITEMS_DATABASE_URL=database_url, RECSYS_MODEL_POLL_S="0.1")
    server = ServerThread(build, settings)
    channel = grpc.insecure_channel(server.address)
    yield items_pb2_grpc.ItemsServiceStub(channel), settings
    channel.close()
    server.stop()
