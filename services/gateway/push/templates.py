"""Push titles and bodies per occasion and language, filled only with real facts.

Every template names its slots; rendering refuses a template whose slot is
missing or empty (the occasion does not apply), so no empty slot ever reaches
the text. Item titles are the only slots that may be shortened (with an
ellipsis) to keep within the length limits of a notification.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

LANGUAGES = ("en", "zh-CN")
# Characters of title and body a notification shows without cutting (Chinese characters are wider).
LIMITS = {"en": (50, 160), "zh-CN": (25, 80)}
# Slots holding item titles: the only ones shortened to fit.
SHORTENABLE = ("item", "anchor")
MIN_SHORTENED = 8
ELLIPSIS = "…"
ALIASES = {
    "en": "en",
    "zh": "zh-CN",
    "zh-cn": "zh-CN",
    "zh-hans": "zh-CN",
    "zh-hans-cn": "zh-CN",
    "zh-sg": "zh-CN",
}


class SlotMissing(ValueError):
    """A template needs a fact that is not at hand."""


class TooLong(ValueError):
    """The text does not fit its limit even with item titles shortened."""


@dataclass(frozen=True)
class Template:
    """Alternatives for title and body, tried in order: the first whose facts are all at hand is used
    (items without a known price, for example, get the alternative that does not name it)."""

    titles: tuple[str, ...]
    bodies: tuple[str, ...]


def _template(title: str | tuple[str, ...], body: str | tuple[str, ...]) -> Template:
    return Template(
        title if isinstance(title, tuple) else (title,), body if isinstance(body, tuple) else (body,)
    )


# Occasions, in the order they are tried for an item: the most specific news first.
TEMPLATES: dict[str, dict[str, Template]] = {
    "price_drop": {
        "en": _template("Price drop: {item}", "{item} is now {price}, down from {previous_price}."),
        "zh-CN": _template("降价：{item}", "{item}现价{price}，原价{previous_price}。"),
    },
    "back_in_stock": {
        "en": _template(
            "Back in stock: {item}",
            (
                "{item}, which you looked at, is available again for {price}.",
                "{item}, which you looked at, is available again.",
            ),
        ),
        "zh-CN": _template(
            "到货提醒：{item}", ("你看过的{item}又有货了，{price}。", "你看过的{item}又有货了。")
        ),
    },
    "completes_purchase": {
        "en": _template(
            "Goes with your {anchor}",
            (
                "Shoppers who bought {anchor} also buy {item}, {price}.",
                "Shoppers who bought {anchor} also buy {item}.",
            ),
        ),
        "zh-CN": _template(
            "{anchor}的好搭档",
            ("买了{anchor}的顾客也买了{item}，{price}。", "买了{anchor}的顾客也买了{item}。"),
        ),
    },
    "new_arrival": {
        "en": _template(
            "New in {category}",
            (
                "{item} just arrived, {price}. You often shop {category}.",
                "{item} just arrived. You often shop {category}.",
            ),
        ),
        "zh-CN": _template(
            "{category}上新",
            ("{item}刚刚上架，{price}。你常逛{category}。", "{item}刚刚上架。你常逛{category}。"),
        ),
    },
    "cross_domain": {
        "en": _template("A {kind} for you", "{item}: linked to {anchor}, from your recent items, by {link}."),
        "zh-CN": _template("为你推荐的{kind}", "{item}：与你最近看过的{anchor}同属{link}。"),
    },
    "top_pick": {
        "en": _template("Picked for you: {item}", ("{item}, {price}. {reason}.", "{item}. {reason}.")),
        "zh-CN": _template("为你精选：{item}", ("{item}，{price}。{reason}。", "{item}。{reason}。")),
    },
}
OCCASIONS = tuple(TEMPLATES)
# How the kind of a content or promotion item reads, where the catalog's English word will not do.
KIND_WORDS = {
    "zh-CN": {"article": "文章", "video": "视频", "coupon": "优惠券", "activity": "活动", "promotion": "促销"}
}
# The sentence a top pick gives, by the kind of its first fact (and "+link" when a knowledge-graph
# fact follows); also the push's `reason` for the other occasions.
REASONS: dict[str, dict[str, str]] = {
    "bought_with": {"en": "Often bought together with {anchor}", "zh-CN": "常与{anchor}一起购买"},
    "recent_item": {
        "en": "Much like {anchor}, from your recent items",
        "zh-CN": "与你最近看过的{anchor}相似",
    },
    "recent_item+link": {
        "en": "Shares {link} with {anchor}, from your recent items",
        "zh-CN": "与你最近看过的{anchor}同属{link}",
    },
    "context_item": {
        "en": "Much like {anchor}, which you are looking at",
        "zh-CN": "与你正在看的{anchor}相似",
    },
    "context_item+link": {
        "en": "Shares {link} with {anchor}, which you are looking at",
        "zh-CN": "与你正在看的{anchor}同属{link}",
    },
    "segment": {
        "en": "Popular in {segment}: {buyers} shoppers bought it",
        "zh-CN": "{segment}热卖：{buyers}位顾客已购买",
    },
    "buyers": {
        "en": "Popular lately: {buyers} shoppers bought it",
        "zh-CN": "近期热卖：{buyers}位顾客已购买",
    },
    "purchases": {
        "en": "Shoppers whose purchases look like your {purchases} bought it",
        "zh-CN": "与你{purchases}次购买相似的顾客买了它",
    },
    "favourite_category": {
        "en": "From {category}, a category you often buy",
        "zh-CN": "来自你常买的{category}",
    },
    "price_band": {"en": "In your usual price range ({band})", "zh-CN": "在你常买的价位（{band}）"},
    "price_drop": {
        "en": "Its price fell from {previous_price} to {price}",
        "zh-CN": "价格从{previous_price}降到{price}",
    },
    "back_in_stock": {"en": "You looked at it and it is back in stock", "zh-CN": "你看过它，现已补货"},
    "new_arrival": {"en": "New in {category}, a category you often buy", "zh-CN": "你常买的{category}有新品"},
}


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str


def language_of(tag: str) -> str | None:
    """The supported language a BCP 47 tag asks for ("en-GB" is "en", "zh-Hans" is "zh-CN")."""
    lowered = tag.strip().lower().replace("_", "-")
    if lowered in ALIASES:
        return ALIASES[lowered]
    primary = lowered.split("-")[0]
    return "en" if primary == "en" else None


def slots_of(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


def _shorten(value: str, by: int) -> str:
    keep = max(MIN_SHORTENED, len(value) - by - len(ELLIPSIS))
    return value if keep >= len(value) else value[:keep].rstrip() + ELLIPSIS


def fill(text: str, slots: Mapping[str, str], limit: int) -> str:
    """`text` with its slots filled, item titles shortened as needed to fit `limit` characters."""
    names = slots_of(text)
    missing = [name for name in names if not str(slots.get(name, "")).strip()]
    if missing:
        raise SlotMissing(f"no fact for {', '.join(missing)}")
    values = {name: str(slots[name]).strip() for name in names}
    filled = text.format(**values)
    while len(filled) > limit:
        longest = max((n for n in names if n in SHORTENABLE), key=lambda n: len(values[n]), default=None)
        if longest is None or len(values[longest]) <= MIN_SHORTENED + len(ELLIPSIS):
            raise TooLong(f"{len(filled)} characters, more than {limit}")
        over = len(filled) - limit
        values[longest] = _shorten(values[longest], max(over // names.count(longest), 1))
        filled = text.format(**values)
    return filled


def _first_filled(alternatives: tuple[str, ...], slots: Mapping[str, str], limit: int) -> str:
    problems = []
    for text in alternatives:
        try:
            return fill(text, slots, limit)
        except (SlotMissing, TooLong) as problem:
            problems.append(problem)
    raise problems[-1]


def render(occasion: str, language: str, slots: Mapping[str, str]) -> Rendered:
    """Title and body of an occasion's template; SlotMissing or TooLong when it cannot be written."""
    template = TEMPLATES[occasion][language]
    if "kind" in slots:
        slots = {**slots, "kind": KIND_WORDS.get(language, {}).get(slots["kind"], slots["kind"])}
    title_limit, body_limit = LIMITS[language]
    return Rendered(
        _first_filled(template.titles, slots, title_limit), _first_filled(template.bodies, slots, body_limit)
    )


def reason(key: str, language: str, slots: Mapping[str, str]) -> str:
    """The reason sentence for a fact kind, in the language, within half the body's limit (a top
    pick's body holds it)."""
    return fill(REASONS[key][language], slots, LIMITS[language][1] // 2)
