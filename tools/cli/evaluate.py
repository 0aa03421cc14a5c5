"""`recsys eval`: offline evaluation with baselines, and of the served pipeline over gRPC."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pipelines.progress import console, errors
from shared.auth import read_key
from shared.config import Settings
from tools.cli.common import settings, training, with_clients
from tools.cli.supervisor import fresh_suite
from tools.evaluation.candidates import MERGED, source_rankings
from tools.evaluation.datasets import PROTOCOLS, Dataset
from tools.evaluation.new_shoppers import K as NEW_K
from tools.evaluation.new_shoppers import NewShopperReport, evaluate_new_shoppers
from tools.evaluation.own_data import SPLITS, NoPurchases, csv_dataset, own_split
from tools.evaluation.protocols import Split
from tools.evaluation.report import ModelResult, Report, mean_of_seeds
from tools.evaluation.run import CURVE_KS, score
from tools.evaluation.run import baselines as run_baselines
from tools.evaluation.served import load_training_part, served_rankings
from tools.importers import generic_csv
from tools.provenance import commit

if TYPE_CHECKING:
    from tools.evaluation.cold_start import ColdStartReport


def evaluate(
    protocol: Annotated[
        str,
        typer.Option(
            help="retail-temporal, random-holdout or leave-last-out (Online Retail), or sim-popular, "
            "sim-taste, sim-bunched or sim-bestseller (simulated shops of different kinds, each also "
            "scored by the simulator's truth, its ceiling; see docs/validation.md). Default: "
            "retail-temporal, or your own data with --events."
        ),
    ] = "",
    events: Annotated[
        Path | None,
        typer.Option(
            help="Evaluate on your own events CSV instead of a bundled protocol, read as `recsys data "
            "import csv` reads it (same --mapping, --items, --default-type); its purchases are judged.",
        ),
    ] = None,
    mapping: Annotated[
        str, typer.Option(help="With --events: JSON object field -> column, or a file holding one.")
    ] = "",
    items: Annotated[
        Path | None,
        typer.Option(help="With --events: an items CSV with columns named after the item fields."),
    ] = None,
    default_type: Annotated[
        str, typer.Option(help="With --events: event type for rows without one, e.g. purchase.")
    ] = "",
    split: Annotated[
        str,
        typer.Option(
            help="With --events: what is held out: time (the latest 20% of the purchases), random "
            "(a random 20% of shopper-item pairs) or last (each shopper's latest new item)."
        ),
    ] = "time",
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines", help="Most popular, item-kNN and EASE, tuned on a validation split."
        ),
    ] = True,
    served: Annotated[
        bool,
        typer.Option(
            "--served",
            help="Also evaluate the served pipeline: a fresh suite on free ports learns the "
            "training part through its APIs, then every test user is asked over gRPC.",
        ),
    ] = False,
    candidates: Annotated[
        bool,
        typer.Option(
            "--candidates",
            help="Also evaluate the candidate sources on their own (the GAN, item-kNN, popular) and "
            "their merge with RECSYS_CANDIDATES_QUOTAS; trains the GAN on the training part "
            "(a few minutes on CPU).",
        ),
    ] = False,
    ranking: Annotated[
        bool,
        typer.Option(
            "--ranking",
            help="Also evaluate the learned ranker offline: candidates alone, the ranker, and the ranker "
            "with each feature group removed (an ablation; with the GAN unless --no-gan).",
        ),
    ] = False,
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            help="With --ranking: remove only this feature group (repeatable; default: each group in "
            "turn). Groups: retrieval, collaborative, profile, item, vae, embedding, graph, sentiment, "
            "context (ml/ranking/features.py).",
        ),
    ] = None,
    cold_start: Annotated[
        bool,
        typer.Option(
            "--cold-start",
            help="Also measure cold start (retail-temporal only): Recall@50 of items first sold after "
            "the cutoff, for the shoppers who bought them, by the item text encoder beside random and "
            "most-popular; and Recall@20 for shoppers new after the cutoff, from the item they look at "
            "and from their country's favourites, beside most-popular and random (about two minutes on CPU).",
        ),
    ] = False,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            help="With --ranking: train each ranker variant this many times (seeds 0..N-1) and report "
            "the mean, with the spread of NDCG@20; the ablation's differences are often within one "
            "seed's noise. With --served: the same suite retrains its ranker with each seed "
            "(RECSYS_RANKER_SEED) and is asked again (about 4 more minutes per seed on CPU).",
        ),
    ] = 1,
    gan: Annotated[
        bool,
        typer.Option(
            "--gan/--no-gan",
            help="With --served: run the suite with the candidate GAN behind the local model server, "
            "trained on the training part like the other models (a few minutes on CPU); with "
            "--ranking: include the GAN's candidates.",
        ),
    ] = True,
    out: Annotated[Path | None, typer.Option(help="Folder for results.md, results.json, curves.png.")] = None,
) -> None:
    """Offline evaluation on the bundled data sets or your own events, with baselines from the same run."""
    if events is not None and protocol:
        errors.print("[red]pass either --protocol or --events, not both[/red]")
        raise typer.Exit(2)
    if events is None and not protocol:
        protocol = "retail-temporal"
    if events is None and protocol not in PROTOCOLS:
        errors.print(f"[red]unknown protocol {protocol!r}; choose {', '.join(PROTOCOLS)}[/red]")
        raise typer.Exit(2)
    if events is not None and split not in SPLITS:
        errors.print(f"[red]unknown split {split!r}; choose {', '.join(SPLITS)}[/red]")
        raise typer.Exit(2)
    if not (baselines or served or candidates or ranking or cold_start):
        errors.print(
            "[red]nothing to evaluate: pass --baselines, --candidates, --ranking, --served "
            "and/or --cold-start[/red]"
        )
        raise typer.Exit(2)
    if cold_start and protocol != "retail-temporal":
        errors.print("[red]--cold-start needs --protocol retail-temporal (a time cutoff)[/red]")
        raise typer.Exit(2)
    ablated = _ablated_groups(group)
    config = settings()
    if events is None:
        chosen = PROTOCOLS[protocol]
        dataset = chosen.data()
        held_out = chosen.split(dataset.interactions)
        console.print(f"{protocol} ({chosen.description}): {held_out.stats}")
        truth = chosen.truth
        source = f"--protocol {protocol}"
    else:
        dataset = _own_dataset(events, mapping, items, default_type)
        protocol = f"{events.name.split('.')[0]}-{split}"
        held_out = own_split(dataset, split, protocol)
        console.print(f"{protocol} ({dataset.origin}, split: {split}): {held_out.stats}")
        truth = None
        source = (
            f"--events {events}"
            + (f" --mapping '{mapping}'" if mapping else "")
            + (f" --items {items}" if items else "")
            + (f" --default-type {default_type}" if default_type else "")
            + f" --split {split}"
        )
    origin = provenance(seeds, dataset)  # the code and data as the run starts
    results = run_baselines(held_out, console.print) if baselines else []
    if truth is not None and (baselines or served):
        results.append(truth(held_out))
    if candidates:
        results.extend(_evaluate_candidates(config, held_out))
    if ranking:
        from pipelines.train import fit_candidate_gan
        from tools.evaluation.ranking import ablation  # TensorFlow: loaded only by the runs that train

        with_gan = training(config.overriding(RECSYS_CANDIDATES_GAN="1" if gan else "0"))
        results.extend(
            ablation(
                held_out,
                dataset.items,
                with_gan,
                (lambda s: fit_candidate_gan(s, with_gan)) if gan else None,
                console.print,
                seeds,
                groups=ablated,
                reviews=dataset.reviews,
            )
        )
    if served:
        results.extend(_evaluate_served(config, held_out, dataset, gan, seeds))
    if cold_start:
        from tools.evaluation.cold_start import evaluate_cold_start  # TensorFlow, as above

        _print_cold_start(evaluate_cold_start(dataset.interactions, dataset.items, say=console.print))
        _print_new_shoppers(
            evaluate_new_shoppers(
                dataset.interactions, training(config).sources.popularity_half_life_days, console.print
            )
        )
    if not results:
        console.print("reproduce: recsys eval --protocol retail-temporal --no-baselines --cold-start")
        return
    adversarial = training(config).gan_adversarial
    command = (
        (
            f"RECSYS_GAN_ADVERSARIAL={adversarial:g} "
            if adversarial != 1.0 and gan and (served or ranking)
            else ""
        )
        + "recsys eval "
        + source
        + ("" if baselines else " --no-baselines")
        + (" --candidates" if candidates else "")
        + (" --ranking" if ranking else "")
        + "".join(f" --group {name}" for name in group or ())
        + (f" --seeds {seeds}" if (ranking or served) and seeds > 1 else "")
        + (" --served" if served else "")
        + (" --cold-start" if cold_start else "")
        + (" --no-gan" if (served or ranking) and not gan else "")
    )
    report = Report(protocol, held_out.stats, results, command, origin)
    folder = out or config.home / "eval" / f"{protocol}-{time.strftime('%Y%m%dT%H%M%S')}"
    paths = report.write(folder)
    console.print(report.markdown())
    console.print("written: " + ", ".join(str(p) for p in paths.values()))


def _own_dataset(events: Path, mapping: str, items: Path | None, default_type: str) -> Dataset:
    """The purchases of the operator's events file (tools/evaluation/own_data.py); a clear error
    and exit 2 when it cannot be read or holds none."""
    from tools.cli.data import columns_of

    if not events.is_file() or (items is not None and not items.is_file()):
        errors.print(f"[red]no such file: {events if not events.is_file() else items}[/red]")
        raise typer.Exit(2)
    problems: Counter[str] = Counter()
    try:
        dataset = csv_dataset(events, columns_of(mapping, events), items, default_type, problems)
    except (generic_csv.MappingError, NoPurchases) as error:
        errors.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    for reason, count in problems.most_common():
        console.print(f"  left out {count:,} rows: {reason}")
    return dataset


def _ablated_groups(named: list[str] | None) -> tuple[str, ...]:
    """The feature groups the ranking ablation removes one at a time: `named`, else every group."""
    from ml.ranking.features import GROUPS

    unknown = [name for name in named or () if name not in GROUPS]
    if unknown:
        errors.print(f"[red]unknown feature group(s) {', '.join(unknown)}; choose {', '.join(GROUPS)}[/red]")
        raise typer.Exit(2)
    return tuple(named) if named else tuple(GROUPS)


def provenance(seeds: int, dataset: Dataset) -> dict[str, str]:
    """The commit (with "+changes" when the tree differs from it), the seeds and the data's hash."""
    return {
        "commit": commit(),
        "seeds": ", ".join(str(seed) for seed in range(seeds)),
        "data": dataset.origin,
        "data sha256": dataset.digest,
    }


def _print_cold_start(report: ColdStartReport) -> None:
    from tools.evaluation.cold_start import K as COLD_K

    table = Table(
        title=f"cold start: Recall@{COLD_K} of the {report.cold_items} items first sold after the cutoff, "
        f"{report.shoppers} shoppers ({report.pairs} purchases), whole catalog of {report.catalog_items}"
    )
    for column in ("method", f"Recall@{COLD_K}", "vs random", "seconds"):
        table.add_column(column, justify="left" if column == "method" else "right")
    random_recall = next(r.recall for r in report.results if r.method.startswith("random"))
    for result in report.results:
        ratio = f"{result.recall / random_recall:.1f}x" if random_recall else "-"
        table.add_row(result.method, f"{result.recall:.4f}", ratio, f"{result.seconds:.0f}")
    console.print(table)


def _print_new_shoppers(report: NewShopperReport) -> None:
    table = Table(
        title=f"new shoppers: Recall@{NEW_K} of their later purchases, {report.shoppers} shoppers first seen "
        f"after the cutoff ({report.outside_largest} outside {report.largest_segment}); "
        f"{report.segments_known} countries have their own popularity ranking"
    )
    for column in ("method", f"Recall@{NEW_K}", "vs most popular", f"outside {report.largest_segment}"):
        table.add_column(column, justify="left" if column == "method" else "right")
    popular = next(r for r in report.results if r.method.startswith("most popular"))
    for result in report.results:
        ratio = f"{result.recall / popular.recall:.2f}x" if popular.recall else "-"
        away = "-" if result.recall_outside_largest is None else f"{result.recall_outside_largest:.4f}"
        table.add_row(result.method, f"{result.recall:.4f}", ratio, away)
    console.print(table)


def _evaluate_candidates(config: Settings, split: Split) -> list[ModelResult]:
    from pipelines.train import fit_candidate_gan  # here: `recsys --help` does not load the model code

    section = training(config)
    found = source_rankings(
        split, section.sources, lambda snapshot: fit_candidate_gan(snapshot, section), console.print
    )
    weights = ", ".join(f"{name} {share:g}" for name, share in section.sources.fusion.weights.items())
    results = []
    for name, rankings in found.rankings.items():
        label = f"candidates: {name}" + (f" (weights {weights})" if name == MERGED else "")
        seconds = found.seconds[name]
        results.append(score(label, rankings, split, {}, seconds))
    return results


GREEDY = "greedy"


def _evaluate_served(
    config: Settings, split: Split, dataset: Dataset, gan: bool, seeds: int
) -> list[ModelResult]:
    """A fresh suite learns the training part through its APIs and is asked for every test user,
    with the greedy policy (the pipeline's own order) and with the default policy (its exploration).

    With the GAN, candidates reports SERVING only once the model server has it: the data
    goes in through profile and items first, the GAN is trained and published first,
    and only then is the whole suite awaited. With several seeds the ranker and the
    serving choice are retrained for each (the other models do not depend on the seed)
    and the suite asked again; each row is the mean, with the spread of NDCG@20. Every
    call is a shadow call: the suite learns nothing while it is being measured, and it trains
    without a time budget, so that the same seeds train the same models on any machine. The suite is told
    the kind of task it is judged on (RECSYS_VALIDATION), as an operator who knows it would: its
    models are then chosen and gated on a validation split of the same kind.
    """
    home = config.home / "eval-suite" / time.strftime("%Y%m%dT%H%M%S")
    section = training(config)
    removed = section.ranker_left_out
    left_out = ", ranker without " + ", ".join(removed) if removed else ""
    generator = "without the candidate GAN"
    if gan:
        weight = section.gan_adversarial
        generator = "with the candidate GAN" + ("" if weight == 1.0 else f" (adversarial weight {weight:g})")
    from pipelines.train import SERVED  # here: `recsys --help` does not load the model code
    from tools.cli.training import run_training

    base = f"served pipeline (gRPC, {generator}{left_out})"
    policies = {GREEDY: f"{base}, greedy", "": f"{base}, default policy"}
    first = ["candidates", *SERVED] if gan else SERVED
    per_seed: dict[str, list[ModelResult]] = {name: [] for name in policies.values()}
    mode = split.kind
    env = {
        "RECSYS_CANDIDATES_GAN": "1" if gan else "0",
        "RECSYS_VALIDATION": mode,
        "RECSYS_POLICY_SEED": "0",
        # no time budget: with one, what is trained would depend on the machine's speed
        "RECSYS_TRAIN_MAX_MINUTES": "0",
    }
    with fresh_suite(home, env) as (suite, suite_config):
        stored = with_clients(lambda c: load_training_part(c, split, dataset.items), suite_config)
        console.print(
            f"served suite in {home}: {stored} training purchases loaded through the APIs; "
            f"validation split for its choices: {mode}"
        )
        for seed in range(seeds):
            seeded = suite_config.overriding(RECSYS_RANKER_SEED=str(seed))
            run_training(seeded, first if seed == 0 else ["ranking", "serving"])
            suite.wait_ready()
            for policy, name in policies.items():
                per_seed[name].append(_served_result(name, policy, split, suite_config, seed))
    return [mean_of_seeds(results) for results in per_seed.values()]


def _served_result(name: str, policy: str, split: Split, suite_config: Settings, seed: int) -> ModelResult:
    started = time.perf_counter()
    rankings, latencies = with_clients(
        lambda c: served_rankings(c, read_key(suite_config), split, max(CURVE_KS), policy), suite_config
    )
    seconds = time.perf_counter() - started
    p50 = statistics.median(latencies) if latencies else float("nan")
    result = score(name, rankings, split, {}, seconds)
    console.print(
        f"{name} (seed {seed}): {len(rankings)} users in {seconds:.1f}s, Recommend p50 "
        f"{p50:.1f} ms, NDCG@20 {result.at_k[20]['ndcg']:.4f}, R@20 {result.at_k[20]['recall']:.4f}"
    )
    failed = len(rankings) - len(latencies)
    if failed:
        console.print(f"[yellow]{failed} Recommend calls failed; those users count as misses[/yellow]")
    return result
