"""Reasons come from the ranker's strongest feature that has a fact behind it, and carry that fact."""

from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2
from services.gateway.reasons import Evidence, Reason, explain
from shared import sources

RED_MUG = common_pb2.Item(item_id="mug", title="RED MUG")
TEA_SET = common_pb2.Item(item_id="tea", title="TEA SET")
KETTLE = common_pb2.Item(item_id="kettle", title="KETTLE", category_path=["Home", "Kitchen"], price=12.0)
PORTRAIT = profile_pb2.Portrait(
    categories=[profile_pb2.Affinity(name="Home>Kitchen", score=0.6)], price_low=5.0, price_high=20.0
)


def test_a_co_buy_feature_names_the_co_bought_item() -> None:
    found = explain(Evidence(sources.POPULAR, anchor=RED_MUG, top_features=["cooccurrence_max", "buyers"]))
    assert found == Reason("Often bought together with RED MUG", (("bought_with", "mug"),))


def test_a_feature_whose_fact_is_missing_is_skipped() -> None:
    # No co-bought item and no portrait category: the next feature with a fact speaks.
    found = explain(
        Evidence(
            sources.ITEM_KNN,
            item=KETTLE,
            top_features=["cooccurrence_max", "category_affinity", "gan_score"],
            purchases=7,
        )
    )
    assert found == Reason(
        "Bought by shoppers whose purchases look like your 7 purchases", (("purchases", "7"),)
    )
    found = explain(
        Evidence(sources.ITEM_KNN, item=KETTLE, top_features=["category_affinity"], portrait=PORTRAIT)
    )
    assert found == Reason(
        "From Kitchen, a category you often buy", (("favourite_category", "Home>Kitchen"),)
    )


def test_the_price_reason_quotes_the_portrait_band_and_only_when_the_price_is_inside_it() -> None:
    found = explain(
        Evidence(sources.ITEM_KNN, item=KETTLE, top_features=["price_vs_usual"], portrait=PORTRAIT)
    )
    assert found == Reason("In your usual price range (5.00-20.00)", (("price_band", "5.00-20.00"),))
    pricey = common_pb2.Item(item_id="k2", title="K2", price=99.0)
    assert (
        explain(Evidence(sources.ITEM_KNN, item=pricey, top_features=["price_vs_usual"], portrait=PORTRAIT))
        is None
    )


def test_popular_reasons_quote_the_buyers_and_the_segment() -> None:
    found = explain(Evidence(sources.POPULAR, top_features=["hour_sin", "fused_rank"], buyers=312))
    assert found == Reason("Popular lately: bought by 312 shoppers", (("buyers", "312"),))
    found = explain(Evidence(sources.POPULAR, buyers=41, segment="France"))
    assert found == Reason(
        "Popular in France: bought by 41 shoppers there", (("segment", "France"), ("buyers", "41"))
    )
    # a popular item whose buyers are not known has no fact, hence no reason
    assert explain(Evidence(sources.POPULAR, top_features=["buyers"])) is None


def test_features_without_a_fact_fall_back_to_the_anchor_then_the_source() -> None:
    assert explain(Evidence(sources.GENERATOR, anchor=TEA_SET, top_features=["hour_sin"])).text == (
        "Often bought together with TEA SET"
    )
    assert explain(Evidence(sources.GENERATOR, purchases=1)).text == (
        "Bought by shoppers whose purchases look like your 1 purchase"
    )


def test_a_text_neighbour_names_the_recent_item_it_is_described_like() -> None:
    found = explain(Evidence(sources.ITEM_TEXT, related=RED_MUG, top_features=["hour_sin"]))
    assert found == Reason("Described much like RED MUG, from your recent items", (("recent_item", "mug"),))
    # a co-bought item, when the ranker found one, is the stronger fact
    assert explain(Evidence(sources.ITEM_TEXT, anchor=TEA_SET, related=RED_MUG)).text == (
        "Often bought together with TEA SET"
    )


def test_context_items_are_named_as_what_the_shopper_is_looking_at() -> None:
    context = frozenset({"mug"})
    found = explain(Evidence(sources.ITEM_TEXT, related=RED_MUG, context=context))
    assert found == Reason(
        "Described much like RED MUG, which you are looking at", (("context_item", "mug"),)
    )
    found = explain(Evidence(sources.ITEM_KNN, anchor=RED_MUG, context=context))
    assert found.text == "Often bought together with RED MUG, which you are looking at"


def test_a_graph_neighbour_names_the_rarest_fact_it_shares_with_a_recent_item() -> None:
    path = [("brand", "Acme"), ("category", "Home>Kitchen")]
    found = explain(Evidence(sources.KNOWLEDGE_GRAPH, related=RED_MUG, graph_path=path))
    assert found == Reason(
        "Same brand (Acme) as RED MUG, from your recent items", (("recent_item", "mug"), ("brand", "Acme"))
    )
    found = explain(Evidence(sources.KNOWLEDGE_GRAPH, related=RED_MUG, graph_path=path[1:]))
    assert found.text == "Also in Kitchen, like RED MUG from your recent items"
    found = explain(
        Evidence(sources.KNOWLEDGE_GRAPH, related=RED_MUG, graph_path=[("attribute", "color=red")])
    )
    assert found.text == "Also color: red, like RED MUG from your recent items"
