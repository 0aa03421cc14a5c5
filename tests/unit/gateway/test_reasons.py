"""Reasons come from the ranker's strongest feature that has a fact behind it."""

from services.gateway.reasons import reason
from shared import sources


def test_a_co_buy_feature_names_the_co_bought_item() -> None:
    text = reason(sources.POPULAR, "RED MUG", ["cooccurrence_max", "buyers"])
    assert text == "Often bought together with RED MUG"


def test_a_feature_whose_fact_is_missing_is_skipped() -> None:
    # No co-bought item and no category: the next feature with a sentence speaks.
    assert reason(sources.ITEM_KNN, "", ["cooccurrence_max", "category_affinity", "gan_score"]) == (
        "Bought by shoppers whose purchases look like yours"
    )
    assert reason(sources.ITEM_KNN, "", ["category_affinity"], "Kitchen") == (
        "From Kitchen, a category you often buy"
    )


def test_features_without_a_sentence_fall_back_to_the_anchor_then_the_source() -> None:
    assert reason(sources.POPULAR, "", ["hour_sin", "fused_rank"]) == "Popular in the shop lately"
    assert reason(sources.GENERATOR, "TEA SET", ["hour_sin"]) == "Often bought together with TEA SET"
    assert reason(sources.ITEM_KNN, "TEA SET") == "Often bought together with TEA SET"


def test_a_text_neighbour_names_the_recent_item_it_is_described_like() -> None:
    text = reason(sources.ITEM_TEXT, "", ["hour_sin"], related_title="RED MUG")
    assert text == "Described much like RED MUG, from your recent items"
    # a co-bought item, when the ranker found one, is the stronger fact
    assert reason(sources.ITEM_TEXT, "TEA SET", [], related_title="RED MUG") == (
        "Often bought together with TEA SET"
    )


def test_a_graph_neighbour_names_the_rarest_fact_it_shares_with_a_recent_item() -> None:
    path = [("brand", "Acme"), ("category", "Home>Kitchen")]
    assert reason(sources.KNOWLEDGE_GRAPH, "", [], related_title="RED MUG", graph_path=path) == (
        "Same brand (Acme) as RED MUG, from your recent items"
    )
    assert reason(sources.KNOWLEDGE_GRAPH, "", [], related_title="RED MUG", graph_path=path[1:]) == (
        "Also in Kitchen, like RED MUG from your recent items"
    )
    assert reason(
        sources.KNOWLEDGE_GRAPH, "", [], related_title="RED MUG", graph_path=[("attribute", "color=red")]
    ) == ("Also color: red, like RED MUG from your recent items")
