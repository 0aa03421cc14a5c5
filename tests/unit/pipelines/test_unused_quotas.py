"""A source validation gives no weight keeps its quota only when the quota finds bought items the
fused candidate list would miss; otherwise it is dropped and serving stops asking it."""

from ml.retrieval import Retrieved
from pipelines.validation import CANDIDATES, _unused_quotas


def _list(source: str, prefix: str) -> list[Retrieved]:
    return [Retrieved(f"{prefix}{rank}", source, 1.0 / (rank + 1)) for rank in range(CANDIDATES)]


def test_a_weightless_source_is_dropped_unless_its_quota_finds_what_the_rest_miss() -> None:
    lists = {
        f"u{n}": {
            "ranked": _list("ranked", "a"),
            "noise": _list("noise", "b"),
            "finder": _list("finder", "c"),
        }
        for n in range(10)
    }
    # each shopper bought an item the ranked source puts first, and one only the finder has
    relevant = {user: {"a0", "c0"} for user in lists}
    weights = {"ranked": 1.0, "noise": 0.0, "finder": 0.0}
    quotas = {"ranked": 0.1, "noise": 0.1, "finder": 0.1}

    unused = _unused_quotas(lists, relevant, weights, quotas, ["ranked", "noise", "finder"])

    assert set(unused) == {"noise"}  # "ranked" has a weight; "finder"'s quota adds c0
    assert unused["noise"].with_quota == unused["noise"].without == 1.0  # the finder still adds c0


def test_a_source_without_a_quota_or_with_a_weight_is_left_alone() -> None:
    lists = {"u": {"ranked": _list("ranked", "a"), "noise": _list("noise", "b")}}
    relevant = {"u": {"a0"}}
    unused = _unused_quotas(
        lists, relevant, {"ranked": 1.0, "noise": 0.0}, {"noise": 0.0}, ["ranked", "noise"]
    )
    assert unused == {}
