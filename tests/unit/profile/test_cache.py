"""Profiles served from memory are exact: a new event stored by any replica is seen at once."""

from pathlib import Path

import grpc
import pytest

from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.profile.app import build
from services.profile.cache import VersionedCache
from services.profile.store import ProfileStore
from tests.support import ServerThread, make_settings
from tests.unit.profile.test_profile import event, record


def test_a_value_is_found_only_under_its_version_and_the_least_recently_used_goes_first() -> None:
    cache: VersionedCache[str] = VersionedCache(2)
    cache.put("a", 1, "a at 1")
    cache.put("b", 1, "b at 1")
    assert cache.get("a", 1) == "a at 1" and cache.get("a", 2) is None
    cache.put("c", 1, "c at 1")  # b was used least recently
    assert (cache.get("b", 1), cache.get("a", 1), cache.get("c", 1)) == (None, "a at 1", "c at 1")
    cache.put("a", 2, "a at 2")
    assert (cache.get("a", 1), cache.get("a", 2), len(cache)) == (None, "a at 2", 2)
    none: VersionedCache[str] = VersionedCache(0)
    none.put("a", 1, "a")
    assert none.get("a", 1) is None
    with pytest.raises(ValueError):
        VersionedCache(-1)


def test_an_event_stored_through_another_replica_is_in_the_next_profile(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(str(tmp_path), RECSYS_PROFILE_DATABASE_URL=database_url)
    first = ServerThread(build, settings)
    second = ServerThread(build, settings)
    try:
        with grpc.insecure_channel(first.address) as a, grpc.insecure_channel(second.address) as b:
            reader, writer = profile_pb2_grpc.ProfileServiceStub(a), profile_pb2_grpc.ProfileServiceStub(b)
            ask = profile_pb2.GetProfileRequest(user_id="u1")
            record(writer, [event("e1", item="a")])
            before = reader.GetProfile(ask, timeout=5).profile
            reader.GetProfile(ask, timeout=5)  # the second read comes from the reader's memory
            record(writer, [event("e2", item="b", minutes=1)])
            after = reader.GetProfile(ask, timeout=5).profile
    finally:
        first.stop()
        second.stop()
    assert list(before.recent_item_ids) == ["a"] and before.event_count == 1
    assert list(after.recent_item_ids) == ["b", "a"] and after.event_count == 2
    assert list(after.purchased_item_ids) == ["b", "a"]


def test_a_profile_read_twice_is_read_from_the_database_once(tmp_path: Path, database_url: str) -> None:
    server = ServerThread(build, make_settings(str(tmp_path), RECSYS_PROFILE_DATABASE_URL=database_url))
    try:
        with grpc.insecure_channel(server.address) as channel:
            record(profile_pb2_grpc.ProfileServiceStub(channel), [event("e1", item="a")])
    finally:
        server.stop()
    reader = ProfileStore(database_url)
    first = reader.profile("u1")
    assert first is not None and reader.cache.get("u1", first.event_count) is first
    assert reader.profile("u1") is first
    assert ProfileStore(database_url, cached_profiles=0).profile("u1") == first
