"""`recsys`: run, fill, train and query the suite from one command line.

Each command lives in its own module, imported only when it runs: `recsys --help` loads none of
them (see tools/cli/lazy.py).
"""

from __future__ import annotations

import sys

import typer

from pipelines.progress import errors
from tools.cli.lazy import LazyCommand, lazy_group

COMMANDS = (
    LazyCommand(
        "recommend",
        "tools.cli.shopper:recommend",
        "Ask the gateway for recommendations and print them with titles and reasons.",
    ),
    LazyCommand(
        "feedback",
        "tools.cli.shopper:feedback",
        "Send one shopper event through the gateway (stored durably, rewarded to the policy).",
    ),
    LazyCommand(
        "status",
        "tools.cli.operate:status",
        "Show the health of every service; exit code 1 unless all are SERVING.",
    ),
    LazyCommand(
        "models",
        "tools.cli.operate:models",
        "The published models with their latest versions, those refused on validation, and the serving "
        "configuration training chose, with the validation table behind it.",
    ),
    LazyCommand(
        "certs",
        "tools.cli.operate:certs",
        "Issue the suite's mutual-TLS certificates: a local CA and one certificate per identity (each "
        "service, the model server, and `trainer` for the offline tools), as `recsys up` does. Kept "
        "ones are reused until 30 days before they expire.",
    ),
    LazyCommand(
        "migrate",
        "tools.cli.operate:migrate",
        "Bring each service's tables to the newest schema (services also do this when they start, "
        "unless RECSYS_MIGRATE_ON_START=0); concurrent runs on PostgreSQL wait for each other.",
    ),
    LazyCommand(
        "train",
        "tools.cli.operate:train",
        "Snapshot events and catalog through the APIs (once), fit the models, publish new versions.",
    ),
    LazyCommand(
        "up",
        "tools.cli.up:up",
        "Start every service as a local process, wait until all are healthy, serve until Ctrl-C.",
    ),
    LazyCommand(
        "bench",
        "tools.cli.bench:bench",
        "Recommend latency p50/p99 over sequential calls, beside a plain gRPC round trip; Rank with "
        "500 candidates, learned ranker beside the co-occurrence baseline; with a trained candidate_gan, "
        "also Predict through the local model server beside the in-process call.",
    ),
    LazyCommand(
        "eval",
        "tools.cli.evaluate:evaluate",
        "Offline evaluation on the bundled data sets or your own events, with baselines from the same run.",
    ),
    LazyCommand(
        "bench-load",
        "tools.cli.bench_load:bench_load",
        "The whole suite and a null pipeline of the same shape under one load generator: throughput, "
        "latency percentiles and CPU milliseconds per Recommend of every process.",
    ),
    LazyCommand(
        "bench-rpc",
        "tools.cli.bench_rpc:bench_rpc",
        "What one hop between the suite's processes costs apart from the work: CPU per call of bare "
        "gRPC against the suite's server stack and client channel, in plaintext and with mutual TLS.",
    ),
    LazyCommand(
        "bench-scale",
        "tools.cli.bench_scale:bench_scale",
        "A simulated shop imported the documented way into a fresh suite on PostgreSQL, trained with "
        "`recsys train all`, then served at a constant offered rate; prints each step's wall time and "
        "peak memory, and every service's.",
    ),
    LazyCommand(
        "chaos",
        "tools.cli.chaos:chaos",
        "Kill, hang, fuzz and overload the suite under steady load; print each invariant beside its target.",
    ),
    LazyCommand(
        "dashboard-check",
        "tools.cli.dashboard:dashboard_check",
        "Drive a throwaway suite scraped by a real Prometheus and check that every dashboard panel "
        "draws and every alert rule loads.",
    ),
    LazyCommand("data", "tools.cli.data:data_app", "Load data into a running suite, or synthesize some."),
    LazyCommand(
        "policy",
        "tools.cli.policy:policy_app",
        "Compare the slate policies on simulated shoppers, and evaluate a policy from logged decisions.",
    ),
    LazyCommand(
        "push", "tools.cli.push:push_app", "Personalized push messages: one shopper, settings, campaigns."
    ),
    LazyCommand(
        "sentiment",
        "tools.cli.sentiment:sentiment_app",
        "Review sentiment: a text classifier taught by ratings, scored against true satisfaction.",
    ),
    LazyCommand(
        "signals",
        "tools.cli.signals:signals_app",
        "Event weights: how much a view, like, share or purchase says about what a shopper buys next.",
    ),
    LazyCommand(
        "promo",
        "tools.cli.promo:promo_app",
        "Promotions: which shoppers receive which coupon or activity, within a budget.",
    ),
)

app = typer.Typer(
    cls=lazy_group(COMMANDS),
    help="Personalized recommendations as gRPC microservices. "
    "Configuration comes from RECSYS_* environment variables (state under RECSYS_HOME: by default "
    "the checkout's var/, else ~/.local/share/recsys).",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks never print local variables: they may hold API keys or database URLs.
    pretty_exceptions_show_locals=False,
)


@app.callback()
def recsys() -> None:
    """Personalized recommendations as gRPC microservices."""


def run() -> None:
    """The `recsys` command. Failures of the environment (a missing or unreadable file, a database
    that does not answer) are one line on stderr and exit code 1; anything else is a bug and keeps
    its traceback."""
    try:
        app(prog_name="recsys")
    except Exception as error:
        if not isinstance(error, OSError) and not _database_unreachable(error):
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        errors.print(f"recsys: {first_line}", style="red", markup=False, highlight=False)
        raise SystemExit(1) from None


def _database_unreachable(error: Exception) -> bool:
    """SQLAlchemy's OperationalError, without importing SQLAlchemy for commands that never load it."""
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(error, exc.OperationalError)
