import asyncio
from pathlib import Path

from shared.models import ModelWatcher, latest_version, publish, versions


def _write(text: str):
    def write(folder: Path) -> None:
        (folder / "model.txt").write_text(text)

    return write


def test_publish_makes_increasing_versions_visible_atomically(tmp_path: Path) -> None:
    first = publish(tmp_path, "demo", _write("one"))
    second = publish(tmp_path, "demo", _write("two"))
    assert second > first
    assert versions(tmp_path, "demo") == [first, second]
    assert latest_version(tmp_path, "demo") == second
    assert not [p for p in (tmp_path / "demo").iterdir() if p.name.startswith(".")]


def test_watcher_switches_to_a_newer_version_and_survives_a_broken_one(tmp_path: Path) -> None:
    watcher = ModelWatcher(tmp_path, "demo", lambda f: (f / "model.txt").read_text(), 0.1)
    assert asyncio.run(watcher.refresh()) is False
    assert watcher.model is None
    publish(tmp_path, "demo", _write("one"))
    assert asyncio.run(watcher.refresh()) is True
    assert watcher.model == "one"
    good_version = watcher.version
    publish(tmp_path, "demo", lambda folder: None)  # no model.txt: loading fails
    assert asyncio.run(watcher.refresh()) is False
    assert watcher.model == "one"
    assert watcher.version > good_version
    publish(tmp_path, "demo", _write("three"))
    assert asyncio.run(watcher.refresh()) is True
    assert watcher.model == "three"


def test_publishing_keeps_only_the_newest_versions(tmp_path: Path) -> None:
    published = [publish(tmp_path, "demo", _write(str(n)), keep=3) for n in range(5)]
    assert versions(tmp_path, "demo") == published[-3:]
    assert (tmp_path / "demo" / str(published[-1]) / "model.txt").read_text() == "4"
