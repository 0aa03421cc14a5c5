"""The `recsys` command as a user meets it: help without TensorFlow, one-line errors on stderr,
and a home that does not depend on the working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from shared.config import default_home, load_settings
from tools.cli.main import COMMANDS, app

ROOT = Path(__file__).resolve().parents[2]


def _recsys(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": f"{ROOT}:{ROOT / 'shared' / 'gen'}", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# What `recsys --help` must not load: TensorFlow (seconds), the model code, the database layer,
# NumPy and SciPy, and any command's module; each command loads what it needs when it runs.
HEAVY = (
    "tensorflow",
    "pipelines.train",
    "pipelines.settings",
    "sqlalchemy",
    "alembic",
    "numpy",
    "scipy",
    "ml.",
    "services.",
    "tools.evaluation",
    *(command.target.split(":")[0] for command in COMMANDS),
)


def test_help_does_not_load_tensorflow_the_model_code_or_the_database_layer(tmp_path: Path) -> None:
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, tools.cli.main; print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert probe.stdout.strip() == "[]"
    shown = _recsys("--help", cwd=tmp_path)
    assert shown.returncode == 0
    assert "Usage: recsys" in shown.stdout and shown.stderr == ""


def test_each_listed_command_loads_under_its_name_with_the_summary_help_shows() -> None:
    for listed in COMMANDS:
        command = listed.load()
        assert command.name == listed.name
        first_paragraph = " ".join((command.help or "").split("\n\n")[0].split())
        assert first_paragraph == listed.summary, listed.name


def test_help_lists_every_command_and_a_typo_gets_a_suggestion() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["--help"], terminal_width=200, prog_name="recsys")
    assert shown.exit_code == 0
    for listed in COMMANDS:
        assert f" {listed.name} " in shown.output
    typo = runner.invoke(app, ["recomend", "17850"], prog_name="recsys")
    assert typo.exit_code == 2 and "Did you mean 'recommend'?" in typo.output
    nested = runner.invoke(app, ["data", "import", "--help"], terminal_width=200, prog_name="recsys")
    assert nested.exit_code == 0 and "online-retail" in nested.output


def test_a_missing_key_is_one_line_on_stderr(tmp_path: Path) -> None:
    result = _recsys("recommend", "17850", cwd=tmp_path, RECSYS_HOME=str(tmp_path / "home"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"recsys: no API key: {tmp_path / 'home' / 'api-key'} does not exist yet; start the suite "
        "with `recsys up` (it creates the key) or set RECSYS_API_KEYS"
    ]


def test_bad_usage_is_an_error_on_stderr_with_exit_code_2(tmp_path: Path) -> None:
    result = _recsys("eval", "--protocol", "nope", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown protocol 'nope'" in result.stderr and "unknown protocol" not in result.stdout


def test_the_default_home_is_absolute_and_the_same_from_anywhere(tmp_path: Path, monkeypatch) -> None:
    assert default_home() == ROOT / "var"
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).home == ROOT / "var"
    assert load_settings({"RECSYS_HOME": "relative"}).home == tmp_path / "relative"
