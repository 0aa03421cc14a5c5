"""`recsys push`: write one shopper's push, store push settings, plan a campaign to a JSONL file."""

from __future__ import annotations

import csv
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TextIO

import grpc
import typer
from google.protobuf import json_format
from rich.table import Table

from pipelines.progress import console, errors, progress_bar
from recsys.gateway.v1 import gateway_pb2
from services.gateway.push.templates import LANGUAGES
from services.gateway.push.timing import QuietHours
from services.gateway.settings import read_gateway_settings
from shared.auth import bearer_metadata, read_key
from shared.clients import SuiteClients
from shared.config import EnvReader
from tools.bench.cpu import cpu_snapshot, cpu_used
from tools.bench.push_campaign import CampaignRun, campaign_report, write_campaign_result
from tools.cli.common import settings, with_clients
from tools.cli.supervisor import fresh_suite
from tools.evaluation.push_simulation import catalog_news, check_pushes, history, push_settings, samples
from tools.importers.loader import load
from tools.synth.shop import make_shop

push_app = typer.Typer(
    help="Personalized push messages: one shopper, settings, campaigns.", no_args_is_help=True
)
SETTINGS_BATCH = 10_000
SHOPPER_FIGURES = re.compile(r" \(best [0-9.]+\)$")
PUSH_DEADLINE_S = 30.0
CAMPAIGN_DEADLINE_S = 7 * 24 * 3600.0  # a campaign streams for as long as it takes


def print_push(push: gateway_pb2.PushMessage) -> None:
    table = Table(title=f"Push for {push.user_id}", title_justify="left", show_header=False)
    for name, value in (
        ("title", push.title),
        ("body", push.body),
        ("item", ", ".join(push.item_ids)),
        ("template", push.template),
        ("reason", push.reason),
        ("facts", ", ".join(f"{f.kind}={f.value}" for f in push.reason_facts)),
        ("send time", push.send_time.ToJsonString()),
        ("language", push.language),
        ("confidence", f"{push.confidence:.4f}"),
        ("deep link", push.deep_link),
    ):
        table.add_row(name, value)
    console.print(table)


@push_app.command("generate")
def generate(
    user_id: Annotated[str, typer.Argument(help="The shopper's id, e.g. 17850.")],
    language: Annotated[str, typer.Option(help="en or zh-CN; empty: the shopper's setting, else en.")] = "",
) -> None:
    """Write one push for a shopper now (it is logged and counts toward their caps)."""
    config = settings()
    key = read_key(config)
    response = with_clients(
        lambda c: c.gateway.GeneratePush(
            gateway_pb2.GeneratePushRequest(user_id=user_id, language=language),
            metadata=bearer_metadata(key),
            timeout=PUSH_DEADLINE_S,
        ),
        config,
    )
    if not response.HasField("push"):
        console.print(f"no push for {user_id}: {response.skip_reason}")
        return
    print_push(response.push)


def _settings_from_file(path: Path) -> Iterator[gateway_pb2.PushSettings]:
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            yield gateway_pb2.PushSettings(
                user_id=row.get("user_id", ""),
                language=row.get("language", ""),
                time_zone=row.get("time_zone", ""),
                opted_out=row.get("opted_out", "").strip().lower() in ("1", "true", "yes"),
            )


@push_app.command("settings")
def store_settings(
    user_id: Annotated[str, typer.Argument(help="The shopper's id (or use --file).")] = "",
    language: Annotated[str, typer.Option(help="en or zh-CN.")] = "",
    time_zone: Annotated[str, typer.Option(help="IANA time zone, e.g. Asia/Shanghai.")] = "",
    opt_out: Annotated[bool, typer.Option("--opt-out/--opt-in", help="Refuse (or accept) pushes.")] = False,
    file: Annotated[
        Path | None, typer.Option(help="CSV with columns user_id, language, time_zone, opted_out (1/0).")
    ] = None,
) -> None:
    """Store shoppers' push settings (each replaces that shopper's earlier ones)."""
    if bool(user_id) == bool(file):
        errors.print("[red]give either a user id or --file[/red]")
        raise typer.Exit(2)
    entries = (
        list(_settings_from_file(file))
        if file
        else [
            gateway_pb2.PushSettings(
                user_id=user_id, language=language, time_zone=time_zone, opted_out=opt_out
            )
        ]
    )
    config = settings()
    key = read_key(config)

    console.print(
        f"stored the push settings of {with_clients(_send_settings(entries, key), config):,} shopper(s)"
    )


def plan_campaign(clients: SuiteClients, key: str, campaign_id: str, segment: str, out: Path) -> CampaignRun:
    """Streams the campaign into `out` (one JSON push per line) with a progress bar. A stream the
    server closes (a restart, or its maximum connection age) is reopened with the same campaign id,
    which replays what was planned and carries on; shoppers already written are not written twice."""

    async def run() -> CampaignRun:
        result = CampaignRun()
        written: set[str] = set()
        started = time.perf_counter()
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as handle, progress_bar() as progress:
            task = progress.add_task(f"campaign {campaign_id}", total=None)
            while True:
                before = len(written)
                stream = clients.gateway.PlanPushCampaign(
                    gateway_pb2.PlanPushCampaignRequest(campaign_id=campaign_id, segment=segment),
                    metadata=bearer_metadata(key),
                    timeout=CAMPAIGN_DEADLINE_S,
                )
                try:
                    async for outcome in stream:
                        progress.update(task, total=outcome.users_total)
                        if outcome.user_id in written:
                            continue
                        written.add(outcome.user_id)
                        _write_outcome(outcome, result, handle)
                        progress.advance(task)
                    break
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE or len(written) == before:
                        raise
                    result.resumed += 1
                    progress.console.print(
                        f"stream closed ({error.details()}): resuming campaign {campaign_id}"
                    )
        result.seconds = time.perf_counter() - started
        return result

    return run()  # type: ignore[return-value]


def _write_outcome(
    outcome: gateway_pb2.PlanPushCampaignResponse, result: CampaignRun, handle: TextIO
) -> None:
    result.shoppers += 1
    result.replayed += outcome.replayed
    if outcome.HasField("push"):
        result.counts[f"push: {outcome.push.template}"] += 1
        push = json_format.MessageToDict(outcome.push, preserving_proto_field_name=True)
        handle.write(json.dumps(push, ensure_ascii=False) + "\n")
    else:
        result.counts[f"skip: {_reason_kind(outcome.skip_reason)}"] += 1


def _reason_kind(skip_reason: str) -> str:
    """The reason without the shopper's own figures ("(best 0.0043)"), so that the outcome table
    counts one row per kind of skip."""
    return SHOPPER_FIGURES.sub("", skip_reason)


def print_campaign(run: CampaignRun) -> None:
    table = Table(title="campaign outcomes", title_justify="left")
    table.add_column("outcome")
    table.add_column("shoppers", justify="right")
    for outcome, count in run.counts.most_common():
        table.add_row(outcome, f"{count:,}")
    console.print(table)
    console.print(
        f"{run.shoppers:,} shoppers ({run.replayed:,} planned by an earlier run), {run.pushes:,} pushes, in "
        f"{run.seconds:.1f}s: {run.per_second:,.1f} shoppers/s"
        + (f"; the stream was reopened {run.resumed} time(s)" if run.resumed else "")
    )


@push_app.command("plan")
def plan(
    out: Annotated[
        Path, typer.Option(help="Where to write the planned pushes, one JSON object per line.")
    ] = Path("pushes.jsonl"),
    segment: Annotated[
        str, typer.Option(help="Only this segment's shoppers (e.g. a country); empty: everyone.")
    ] = "",
    campaign: Annotated[
        str,
        typer.Option(
            help="Campaign id; rerun with the same id to resume (nobody gets two pushes). Default: new."
        ),
    ] = "",
) -> None:
    """Plan one push per shopper of a segment and write them to a JSONL file, with a progress bar.

    Each push respects opt-outs, the daily and weekly caps, the dedupe window and
    quiet hours, and is logged by the gateway. Rerunning the same --campaign
    replays what was planned and plans only the shoppers still missing.
    """
    config = settings()
    key = read_key(config)
    campaign_id = campaign or f"campaign-{time.strftime('%Y%m%dT%H%M%S')}"
    try:
        run = with_clients(lambda c: plan_campaign(c, key, campaign_id, segment, out), config)
    except KeyboardInterrupt:
        console.print(f"interrupted: rerun with --campaign {campaign_id} to resume")
        raise typer.Exit(130) from None
    print_campaign(run)
    console.print(f"pushes written to {out}")
    console.print(
        f"reproduce or resume: recsys push plan --campaign {campaign_id}"
        + (f" --segment '{segment}'" if segment else "")
        + f" --out {out}"
    )


def _send_settings(entries: list[gateway_pb2.PushSettings], key: str):
    async def send(clients: SuiteClients) -> int:
        stored = 0
        for start in range(0, len(entries), SETTINGS_BATCH):
            response = await clients.gateway.UpdatePushSettings(
                gateway_pb2.UpdatePushSettingsRequest(settings=entries[start : start + SETTINGS_BATCH]),
                metadata=bearer_metadata(key),
                timeout=PUSH_DEADLINE_S,
            )
            stored += response.stored
        return stored

    return send


def _print_samples(out: Path) -> None:
    for language in LANGUAGES:
        table = Table(title=f"sample pushes ({language})", title_justify="left")
        for column in ("shopper", "template", "title", "body", "send time", "facts"):
            table.add_column(column)
        for push in samples(out, language):
            facts = ", ".join(f"{f['kind']}={f['value']}" for f in push.get("reason_facts", []))
            table.add_row(
                push["user_id"], push["template"], push["title"], push["body"], push["send_time"], facts
            )
        console.print(table)


@push_app.command("simulate")
def simulate(
    shoppers: Annotated[
        int, typer.Option(help="Simulated shoppers, each with a history and push settings.")
    ] = 100_000,
    trained_on: Annotated[
        int,
        typer.Option(help="The first this many shoppers' history is loaded before the models are trained."),
    ] = 5_000,
    items: Annotated[int, typer.Option(help="Items in the simulated shop.")] = 2_000,
    days: Annotated[int, typer.Option(help="Days of history per shopper.")] = 30,
    seed: Annotated[int, typer.Option(help="Everything follows from the seed.")] = 1,
    out: Annotated[Path, typer.Option(help="Where to write the planned pushes.")] = Path(
        "reports/push-simulation.jsonl"
    ),
    results: Annotated[
        Path | None,
        typer.Option(help="Also write push-campaign.md and .json here (make bench-push: docs/results)."),
    ] = None,
) -> None:
    """Plan a campaign for every simulated shopper on a fresh suite, check every push, time it.

    Starts a suite on free ports, loads a simulated shop (with new arrivals, price
    drops and restocks) and the first --trained-on shoppers' history, trains the
    models, then loads the other shoppers' history and everyone's push settings
    (time zone and language from where they live, 5% opted out). It plans one
    campaign over everyone with a progress bar, checks every planned push
    against the rules, prints the throughput and three sample messages per
    language, and reruns the campaign id to show that nothing is planned twice.
    """
    if min(shoppers, trained_on, items, days) < 1 or trained_on > shoppers:
        errors.print(
            "[red]shoppers, items and days must be at least 1, and --trained-on at most --shoppers[/red]"
        )
        raise typer.Exit(2)
    config = settings()
    home = config.home / "push-simulation" / time.strftime("%Y%m%dT%H%M%S")
    shop = make_shop(items, seed)
    news = catalog_news(shop, seed, datetime.now(UTC))
    entries = push_settings(seed, shoppers)
    started = time.perf_counter()
    with fresh_suite(home, {}) as (suite, suite_config):
        key = read_key(suite_config)
        with_clients(
            lambda c: load(c, news.listing, history(seed, shop, range(trained_on), days), None), suite_config
        )
        from pipelines.train import SERVED  # here: `recsys --help` does not load the model code
        from tools.cli.training import run_training

        run_training(suite_config, SERVED)
        suite.wait_ready()
        rest = range(trained_on, shoppers)
        with_clients(lambda c: load(c, news.updates, history(seed, shop, rest, days), None), suite_config)
        stored = with_clients(_send_settings(entries, key), suite_config)
        setup_s = time.perf_counter() - started
        console.print(
            f"suite in {home}: {shoppers:,} shoppers ({stored:,} push settings), {items:,} items, "
            f"{len(news.updates):,} price drops and restocks; set up in {setup_s:.0f}s"
        )
        campaign_id = f"simulation-{seed}"
        planned_from = datetime.now(UTC)
        pids = {name: process.pid for name, process in suite.processes.items()}
        cpu_before = cpu_snapshot(pids)
        first = with_clients(lambda c: plan_campaign(c, key, campaign_id, "", out), suite_config)
        cpu_s = cpu_used(cpu_before, cpu_snapshot(pids))
        print_campaign(first)
        push_config = read_gateway_settings(EnvReader(os.environ)).push  # what the suite's gateway read
        quiet = QuietHours(push_config.quiet_start, push_config.quiet_end)
        problems = check_pushes(out, entries, quiet, planned_from)
        planned = sum(1 for _ in out.open(encoding="utf-8"))
        console.print(
            f"checked {planned:,} planned pushes against opt-outs, quiet hours in each shopper's time zone, "
            f"language, length limits, empty slots and facts: {len(problems)} problem(s)"
        )
        for problem in problems[:20]:
            errors.print(f"[red]{problem}[/red]")
        _print_samples(out)
        rerun = out.with_suffix(".rerun.jsonl")
        again = with_clients(lambda c: plan_campaign(c, key, campaign_id, "", rerun), suite_config)
        identical = rerun.read_bytes() == out.read_bytes()
        console.print(
            f"rerun of {campaign_id}: {again.replayed:,} of {again.shoppers:,} outcomes replayed in "
            f"{again.seconds:.1f}s, the same pushes file: {identical}"
        )
    command = (
        f"recsys push simulate --shoppers {shoppers} --trained-on {trained_on} --items {items} "
        f"--days {days} --seed {seed} --out {out}"
    )
    if results is not None:
        report = campaign_report(
            command,
            {"shoppers": shoppers, "trained_on": trained_on, "items": items, "days": days, "seed": seed},
            setup_s,
            first,
            cpu_s,
            len(problems),
            {
                "replayed": again.replayed,
                "shoppers": again.shoppers,
                "seconds": round(again.seconds, 1),
                "identical": identical,
            },
            [push for language in LANGUAGES for push in samples(out, language)],
        )
        written = write_campaign_result(results, report)
        console.print(f"written: {', '.join(map(str, written))}")
    console.print(f"reproduce: {command}")
    if problems:
        raise typer.Exit(1)
