import stat
from pathlib import Path

from shared.auth import ensure_key_file, read_key, server_keys
from tests.support import make_settings


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "api-key"
    first = ensure_key_file(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_key_file(path) == first


def test_configured_keys_win_over_the_key_file(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path), RECSYS_API_KEYS="k" * 20 + "," + "j" * 20)
    assert server_keys(settings) == ("k" * 20, "j" * 20)
    assert read_key(settings) == "k" * 20
    assert not settings.api_key_file.exists()


def test_local_default_shares_the_key_file_between_server_and_client(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path))
    (key,) = server_keys(settings)
    assert read_key(settings) == key
