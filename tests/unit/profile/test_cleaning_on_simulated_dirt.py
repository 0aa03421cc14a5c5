"""The clean-events stage against a simulated shop with labelled dirt: it must find at least
95% of the injected bad records, with at least 95% precision, through the real services."""

import asyncio
from collections import Counter
from pathlib import Path

from services.items.app import build as build_items
from services.profile.app import build as build_profile
from services.profile.store import ProfileStore
from shared.clients import SuiteClients
from tests.support import ServerThread, make_settings, suite_env
from tools.importers.loader import load
from tools.synth.sessions import DIRT_KINDS, DirtInjector, shopper_events
from tools.synth.shop import catalog, make_shop
from tools.synth.shoppers import shopper
from tools.synth.writer import START

SEED = 11


def simulated(shoppers: int, items: int, dirt: float):
    shop = make_shop(items, SEED)
    injector = DirtInjector(dirt, SEED)
    events = []
    for number in range(shoppers):
        person = shopper(SEED, number)
        events.extend(injector.inject(shopper_events(SEED, person, shop, START, 20), person, shop))
    return shop, events


def test_injected_dirt_is_found_with_high_recall_and_precision(tmp_path: Path) -> None:
    shop, events = simulated(shoppers=400, items=400, dirt=0.05)
    labels = Counter(event.dirt for event in events if event.dirt)
    assert set(labels) == {*DIRT_KINDS, "bot"}
    settings = make_settings(str(tmp_path), **suite_env())
    servers = [
        ServerThread(build, settings, settings.ports[name])
        for name, build in (("items", build_items), ("profile", build_profile))
    ]

    async def run():
        clients = SuiteClients(settings.addresses, 10)
        try:
            return await load(clients, catalog(shop), (e.as_proto() for e in events), len(events))
        finally:
            await clients.close()

    try:
        summary = asyncio.run(run())
        store = ProfileStore(settings.database_url("profile"))
        quarantined = dict(store.quarantined(limit=100_000))
        store.close()
    finally:
        for server in servers:
            server.stop()

    dirty_ids = {e.event_id for e in events if e.dirt and e.dirt != "exact-duplicate"}
    caught = len(dirty_ids & set(quarantined))
    false_alarms = len(set(quarantined) - dirty_ids)
    duplicates_caught = min(summary.events_duplicate, labels["exact-duplicate"])
    duplicate_false_alarms = summary.events_duplicate - duplicates_caught
    injected = len(dirty_ids) + labels["exact-duplicate"]
    flagged = len(quarantined) + summary.events_duplicate
    recall = (caught + duplicates_caught) / injected
    precision = (caught + duplicates_caught) / flagged
    assert injected > 500
    print(f"cleaning: recall {recall:.4f}, precision {precision:.4f} over {injected} injected bad records")
    assert recall >= 0.95, (recall, labels, Counter(quarantined.values()))
    assert precision >= 0.95, (precision, false_alarms, duplicate_false_alarms)
    assert summary.events_accepted == len(events) - flagged
