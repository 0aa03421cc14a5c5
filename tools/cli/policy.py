"""`recsys policy`: simulate the slate policies with simulated shoppers, and evaluate a policy
off-policy from logged decisions."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.table import Table

from pipelines.progress import console, errors, progress_bar
from services.policy.policies import fusion, named_policies
from services.policy.settings import POLICY_KINDS, read_policy_settings
from services.ranking.settings import RANKERS
from shared.auth import read_key
from shared.config import Settings
from tools.cli.common import section, settings, with_clients
from tools.cli.supervisor import fresh_suite
from tools.evaluation.policy_report import BASELINE, Interval, plot, summarize
from tools.evaluation.simulation import SessionResult, SimulatedShop, history_events, run_sessions
from tools.importers.loader import load
from tools.synth.shop import catalog, make_shop

if TYPE_CHECKING:
    from services.policy.offpolicy import Evaluation

policy_app = typer.Typer(
    help="Compare the slate policies on simulated shoppers, and evaluate a policy from logged decisions.",
    no_args_is_help=True,
)
LOGGING_POLICY = "epsilon-greedy"
TARGET_POLICY = "bandit"


def _interval(value: Interval | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent:
        return f"{value.mean:+.1%} [{value.low:+.1%}, {value.high:+.1%}]"
    return f"{value.mean:.3f} [{value.low:.3f}, {value.high:.3f}]"


def print_evaluation(evaluation: Evaluation, simulated: float | None = None) -> None:
    table = Table(
        title=f"off-policy value of {evaluation.target!r} per slate, from {evaluation.decisions} slates "
        f"logged by {evaluation.logged_by!r} (which earned {evaluation.logged_value:.3f} per slate)"
    )
    table.add_column("estimator")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    if simulated is not None:
        table.add_column("vs simulated", justify="right")
    for estimate in evaluation.estimates:
        row = [estimate.name, f"{estimate.value:.3f}", f"[{estimate.low:.3f}, {estimate.high:.3f}]"]
        if simulated is not None:
            row.append(f"{estimate.value / simulated - 1:+.1%}")
        table.add_row(*row)
    console.print(table)
    console.print(f"effective sample size at the first position: {evaluation.effective_sample_size:.0f}")


def _run_evaluation(
    config: Settings, policy: str, logged_by: str, samples: int, since: datetime | None
) -> Evaluation:
    # here, not at the top: `recsys --help` does not load the database layer
    from services.policy.offpolicy import evaluate
    from services.policy.store import PolicyStore

    policies = section(config, read_policy_settings)
    store = PolicyStore(config.database_url("policy"))
    try:
        decisions = store.decision_count(logged_by, since)
        with progress_bar() as progress:
            task = progress.add_task(f"replaying {policy}", total=decisions)
            return evaluate(
                store,
                named_policies(policies)[policy],
                fusion(policies),
                policies.bandit_alpha,
                logged_by,
                samples,
                since,
                advance=lambda n: progress.advance(task, n),
            )
    finally:
        store.close()


@policy_app.command("evaluate")
def evaluate_command(
    policy: Annotated[
        str, typer.Option(help=f"The policy to evaluate: {', '.join(POLICY_KINDS)}.")
    ] = TARGET_POLICY,
    logged_by: Annotated[
        str, typer.Option(help="Evaluate from the decisions this policy logged (it must explore).")
    ] = LOGGING_POLICY,
    samples: Annotated[
        int, typer.Option(help="Slates drawn per request for the target's propensities.")
    ] = 1000,
    since: Annotated[
        str, typer.Option(help="Only decisions from this ISO time on, e.g. 2026-11-01T00:00.")
    ] = "",
) -> None:
    """Estimate a policy's reward per slate (IPS, SNIPS, doubly robust) from logged decisions.

    Reads the policy service's database (RECSYS_POLICY_DATABASE_URL) and the policy
    settings (RECSYS_FUSION_WEIGHTS, RECSYS_BANDIT_*), so run it with the service's
    environment. The bandit is evaluated with its current learned state.
    """
    config = settings()
    for name in (policy, logged_by):
        if name not in POLICY_KINDS:
            errors.print(f"[red]unknown policy {name!r}: one of {', '.join(POLICY_KINDS)}[/red]")
            raise typer.Exit(2)
    start = datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None
    try:
        evaluation = _run_evaluation(config, policy, logged_by, samples, start)
    except ValueError as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    print_evaluation(evaluation)
    console.print(
        f"reproduce: recsys policy evaluate --policy {policy} --logged-by {logged_by} --samples {samples}"
    )


def _equal_shares(names: list[str]) -> str:
    """RECSYS_POLICIES giving every policy the same share (the last takes the rounding)."""
    share = round(1 / len(names), 6)
    shares = [share] * (len(names) - 1) + [1 - share * (len(names) - 1)]
    return ",".join(f"{name}={value:.6f}" for name, value in zip(names, shares, strict=True))


@dataclasses.dataclass
class SeedRun:
    results: list[SessionResult]
    evaluation: Evaluation | None = None
    simulated_target: float | None = None


def _simulate_seed(config: Settings, seed: int, options: dict, home: Path) -> SeedRun:
    shop = make_shop(options["items"], seed)
    names = options["policies"]
    env = {
        "RECSYS_RANKER": options["ranker"],
        "RECSYS_POLICY_SALT": f"simulation-{seed}",
        "RECSYS_POLICIES": _equal_shares(names),
        "RECSYS_POLICY_EPSILON": str(options["epsilon"]),
    }
    with fresh_suite(home, env) as (suite, suite_config):
        with_clients(
            lambda c: load(
                c, catalog(shop), history_events(seed, shop, options["shoppers"], options["days"]), None
            ),
            suite_config,
        )
        from pipelines.train import SERVED  # here: `recsys --help` does not load the model code
        from tools.cli.training import run_training

        run_training(suite_config, SERVED)
        suite.wait_ready()
        key = read_key(suite_config)
        world = SimulatedShop(
            shop,
            seed,
            options["shoppers"],
            options["slate"],
            section(suite_config, read_policy_settings).reward_weights,
        )

        def phase(label: str, sessions: int, first: int, forced: list[str]) -> list[SessionResult]:
            with progress_bar() as progress:
                task = progress.add_task(f"seed {seed}: {label}", total=sessions)
                return with_clients(
                    lambda c: run_sessions(
                        c,
                        key,
                        world,
                        sessions,
                        options["concurrency"],
                        forced,
                        first,
                        advance=lambda n: progress.advance(task, n),
                    ),
                    suite_config,
                )

        run = SeedRun(phase("sessions", options["sessions"], 0, []))
        extra = options["ope_sessions"]
        if extra:
            # a coin per session: logged by epsilon-greedy or served by the bandit, so that both
            # meet the same shoppers in the same states
            coins = np.random.default_rng([seed, 11]).random(extra) < 0.5
            forced = [LOGGING_POLICY if coin else TARGET_POLICY for coin in coins]
            logging_started = datetime.now(UTC)
            mixed = phase(f"{LOGGING_POLICY} / {TARGET_POLICY} sessions", extra, options["sessions"], forced)
            run.evaluation = _run_evaluation(
                suite_config, TARGET_POLICY, LOGGING_POLICY, 1000, logging_started
            )
            served = [r.reward for r in mixed if r.policy == TARGET_POLICY]
            run.simulated_target = sum(served) / len(served)
            print_evaluation(run.evaluation, run.simulated_target)
            console.print(
                f"seed {seed}: {TARGET_POLICY} earned {run.simulated_target:.3f} per slate when served "
                f"({len(served)} sessions)"
            )
        return run


def print_off_policy_check(runs: dict[int, SeedRun]) -> None:
    """Per seed and pooled over seeds: each estimate of the target against what it earned when served."""
    checked = {seed: run for seed, run in runs.items() if run.evaluation and run.simulated_target}
    if not checked:
        return
    names = [estimate.name for estimate in next(iter(checked.values())).evaluation.estimates]
    table = Table(
        title=f"off-policy estimate of {TARGET_POLICY!r} from the {LOGGING_POLICY!r} log, "
        "against its simulated value"
    )
    for column in ("seed", "logged slates", "simulated", *names):
        table.add_column(column, justify="right")
    for seed, run in checked.items():
        table.add_row(
            str(seed),
            str(run.evaluation.decisions),
            f"{run.simulated_target:.3f}",
            *(f"{e.value:.3f} ({e.value / run.simulated_target - 1:+.1%})" for e in run.evaluation.estimates),
        )
    simulated = float(np.mean([run.simulated_target for run in checked.values()]))
    pooled = [
        float(np.mean([run.evaluation.estimates[n].value for run in checked.values()]))
        for n in range(len(names))
    ]
    table.add_row(
        "mean",
        str(sum(run.evaluation.decisions for run in checked.values())),
        f"{simulated:.3f}",
        *(f"{value:.3f} ({value / simulated - 1:+.1%})" for value in pooled),
    )
    console.print(table)


@policy_app.command("simulate")
def simulate_command(
    sessions: Annotated[
        int, typer.Option(help="Sessions per seed, shared by the policies' buckets.")
    ] = 20_000,
    seeds: Annotated[
        int, typer.Option(help="Independent repetitions (seeds 1..N), each with a fresh suite.")
    ] = 5,
    shoppers: Annotated[int, typer.Option(help="Simulated shoppers (each with a history).")] = 2000,
    items: Annotated[int, typer.Option(help="Items in the simulated shop.")] = 500,
    days: Annotated[int, typer.Option(help="Days of history the suite learns before the sessions.")] = 60,
    slate: Annotated[int, typer.Option(help="Items shown per session.")] = 10,
    policies: Annotated[str, typer.Option(help="Policies to bucket shoppers into, equal shares.")] = ",".join(
        POLICY_KINDS
    ),
    concurrency: Annotated[int, typer.Option(help="Sessions in flight at once.")] = 8,
    ope_sessions: Annotated[
        int,
        typer.Option(
            help="After the sessions: this many more, each logged by epsilon-greedy or served by the "
            "bandit on a coin flip; the bandit is estimated off-policy from the epsilon-greedy log and "
            "compared with what it earned when served (0: skip)."
        ),
    ] = 0,
    epsilon: Annotated[
        float,
        typer.Option(
            help="Exploration share of epsilon-greedy (RECSYS_POLICY_EPSILON for the simulated suite). "
            "A larger one logs more of what the bandit would show, so its off-policy estimate is tighter "
            "(-1: the configured value)."
        ),
    ] = -1.0,
    ranker: Annotated[str, typer.Option(help="learned or baseline ranker behind the policies.")] = "learned",
    out: Annotated[
        Path, typer.Option(help="Where to write the plot (a .json summary goes beside it).")
    ] = Path("reports/policy-simulation.png"),
) -> None:
    """Run simulated shoppers through a fresh suite over gRPC, bucketed between the policies.

    Each seed starts a suite on free ports, loads a simulated shop and its shoppers'
    history through the APIs, trains the models, then runs the sessions: the gateway
    recommends, the simulator's ground truth clicks and buys, and the feedback goes
    back through RecordFeedback. Prints reward per session per policy with 95%
    intervals over seeds and the lift over greedy, and plots cumulative reward.
    """
    config = settings()
    names = [name.strip() for name in policies.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICY_KINDS]
    epsilon = section(config, read_policy_settings).epsilon if epsilon < 0 else epsilon
    if (
        unknown
        or not names
        or ranker not in RANKERS
        or min(sessions, seeds, shoppers, items, slate) < 1
        or not 0 <= epsilon <= 1
    ):
        errors.print(
            f"[red]policies must be some of {', '.join(POLICY_KINDS)}; ranker one of {', '.join(RANKERS)}; "
            "sessions, seeds, shoppers, items and slate at least 1; epsilon in [0, 1][/red]"
        )
        raise typer.Exit(2)
    options = {
        "items": items,
        "shoppers": shoppers,
        "days": days,
        "sessions": sessions,
        "slate": slate,
        "policies": names,
        "concurrency": concurrency,
        "ope_sessions": ope_sessions,
        "epsilon": epsilon,
        "ranker": ranker,
    }
    stamp = time.strftime("%Y%m%dT%H%M%S")
    runs: dict[int, SeedRun] = {}
    started = time.perf_counter()
    for seed in range(1, seeds + 1):
        runs[seed] = _simulate_seed(
            config, seed, options, config.home / "policy-simulation" / stamp / f"seed{seed}"
        )
    seconds = time.perf_counter() - started
    rows = summarize({seed: run.results for seed, run in runs.items()}, names)
    table = Table(
        title=f"reward per session, {seeds} seed(s) x {sessions} sessions, 95% t-intervals over seeds"
    )
    for column in (
        "policy",
        "sessions",
        "reward per session",
        f"lift over {BASELINE}",
        f"difference over {BASELINE}",
    ):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in rows:
        table.add_row(
            row.policy,
            str(row.sessions),
            _interval(row.reward_per_session),
            _interval(row.lift_over_greedy, percent=True),
            _interval(row.difference_over_greedy),
        )
    console.print(table)
    print_off_policy_check(runs)
    plot(
        {seed: run.results for seed, run in runs.items()},
        names,
        out,
        f"Cumulative reward, {seeds} seed(s), {sessions} sessions each ({shoppers} shoppers, {items} items)",
    )
    summary = {
        "command": "recsys policy simulate "
        + f"--sessions {sessions} --seeds {seeds} --shoppers {shoppers} --items {items} --days {days} "
        + f"--slate {slate} --policies {','.join(names)} --concurrency {concurrency} --ranker {ranker} "
        + f"--ope-sessions {ope_sessions} --epsilon {epsilon}",
        "seconds": seconds,
        "rows": [dataclasses.asdict(row) for row in rows],
        "off_policy": {
            seed: {
                "simulated": run.simulated_target,
                "estimates": [dataclasses.asdict(e) for e in run.evaluation.estimates],
            }
            for seed, run in runs.items()
            if run.evaluation is not None
        },
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    console.print(f"plot: {out}; summary: {out.with_suffix('.json')}; {seconds:.0f}s")
    console.print(f"reproduce: {summary['command']} --out {out}")
