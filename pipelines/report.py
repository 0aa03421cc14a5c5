"""The validation report as a table: printed by `recsys train`, and again by `recsys models`."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table

from pipelines.progress import console


def weights_text(weights: Mapping[str, float]) -> str:
    """The non-zero weights as `source weight, ...`."""
    return ", ".join(f"{source} {weight:g}" for source, weight in weights.items() if weight) or "none"


def print_report(report: Mapping[str, object]) -> None:
    """Every configuration scored on the validation shoppers, the chosen one marked, then the
    ranker's gate."""
    chosen = report["chosen"]["weights"]  # type: ignore[index]
    table = Table(
        title=f"validation: {report['protocol']} split, {report['scored_shoppers']:,} shoppers scored",
        title_justify="left",
    )
    for column in ("configuration", "weights", "NDCG@20", "Recall@20", ""):
        table.add_column(column, justify="right" if column.endswith("20") else "left")
    for row in report["rows"]:  # type: ignore[union-attr]
        mark = "served" if row["weights"] == chosen else ""
        table.add_row(
            row["name"],
            weights_text(row["weights"]),
            f"{row['ndcg_at_20']:.4f}",
            f"{row['recall_at_20']:.4f}",
            mark,
        )
    console.print(table)
    console.print(f"why this split: {report['reason']}")
    decays = report.get("recency_decays")
    if isinstance(decays, Mapping) and decays.get("chosen"):
        chosen_decays = ", ".join(f"{source} {decay:g}" for source, decay in decays["chosen"].items())
        console.print(f"recency decay of the neighbour sources: {chosen_decays}")
    dropped = report.get("dropped")
    if isinstance(dropped, Mapping) and dropped:
        console.print(
            f"dropped, not asked when serving: {', '.join(dropped)} (no weight, and the quota added no "
            "bought item to the candidates)"
        )
    ranker = report.get("ranker")
    if isinstance(ranker, Mapping) and ranker.get("published"):
        mean, low, high = ranker["gain"]
        console.print(
            f"ranker: NDCG@20 {ranker['validation_ndcg_at_20']:.4f} against "
            f"{ranker['candidate_order_ndcg_at_20']:.4f} for the candidate order on "
            f"{ranker['validation_lists']} lists, gain {mean:+.4f} [{low:+.4f}, {high:+.4f}]"
        )
    elif isinstance(ranker, Mapping) and "why" in ranker:
        console.print(f"ranker: not published ({ranker['why']})")
    if "order" in report:
        console.print(f"served order: {report['order']}")
