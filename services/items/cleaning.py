"""The `clean-items` stage: every item passes it on UpsertItems.

Items without an id, with an over-long title or an impossible price are
rejected (and quarantined); titles are normalized (control characters removed,
runs of whitespace collapsed, ends trimmed), each repair counted by reason. A
missing domain becomes `product`, the contract's default, which is not a repair
and is not counted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from recsys.common.v1 import common_pb2
from shared.limits import MAX_ID_LENGTH
from shared.timestamps import OUT_OF_RANGE, in_range

MAX_TITLE_LENGTH = 1000
# Bounds on what one item may carry: each category level and attribute becomes a fact of the
# knowledge graph (a path's every prefix, so a long path costs its square), and the description
# feeds the text encoder. Real catalogs sit far inside them.
MAX_CATEGORY_LEVELS = 12
MAX_NAME_LENGTH = 200  # a category level, the brand, the kind, an attribute's key
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_VALUE_LENGTH = 1000
MAX_DESCRIPTION_LENGTH = 20_000
TITLE_FIXED = "title whitespace or control characters normalized"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")


@dataclass
class CleanedItems:
    accepted: list[common_pb2.Item] = field(default_factory=list)
    dropped: list[tuple[int, common_pb2.Item, str]] = field(default_factory=list)
    fixes: Counter[str] = field(default_factory=Counter)


def normalize_title(title: str) -> str:
    return _SPACES.sub(" ", _CONTROL.sub(" ", title)).strip()


def _problem(item: common_pb2.Item) -> str | None:
    if not item.item_id.strip():
        return "item_id is empty"
    if len(item.item_id) > MAX_ID_LENGTH:
        return f"item_id is longer than {MAX_ID_LENGTH} characters"
    if len(item.title) > MAX_TITLE_LENGTH:
        return f"title is longer than {MAX_TITLE_LENGTH} characters"
    return _size_problem(item) or _value_problem(item)


def _size_problem(item: common_pb2.Item) -> str | None:
    if len(item.category_path) > MAX_CATEGORY_LEVELS:
        return f"category_path has more than {MAX_CATEGORY_LEVELS} levels"
    if any(len(level) > MAX_NAME_LENGTH for level in item.category_path):
        return f"a category_path level is longer than {MAX_NAME_LENGTH} characters"
    for name, value in (("brand", item.brand), ("kind", item.kind)):
        if len(value) > MAX_NAME_LENGTH:
            return f"{name} is longer than {MAX_NAME_LENGTH} characters"
    if len(item.description) > MAX_DESCRIPTION_LENGTH:
        return f"description is longer than {MAX_DESCRIPTION_LENGTH} characters"
    if len(item.attributes) > MAX_ATTRIBUTES:
        return f"attributes has more than {MAX_ATTRIBUTES} entries"
    for key, value in item.attributes.items():
        if len(key) > MAX_NAME_LENGTH or len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
            return (
                f"attributes[{key[:40]!r}]: keys hold at most {MAX_NAME_LENGTH} characters, "
                f"values {MAX_ATTRIBUTE_VALUE_LENGTH}"
            )
    return None


def _value_problem(item: common_pb2.Item) -> str | None:
    if not item.price >= 0 or item.price == float("inf"):
        return "price must be a finite number >= 0"
    if item.HasField("listed_time") and not in_range(item.listed_time):
        return f"listed_time: {OUT_OF_RANGE}"
    return None


def clean_items(items: Sequence[common_pb2.Item]) -> CleanedItems:
    result = CleanedItems()
    for index, item in enumerate(items):
        problem = _problem(item)
        if problem:
            result.dropped.append((index, item, problem))
            continue
        fixed = common_pb2.Item()
        fixed.CopyFrom(item)
        title = normalize_title(item.title)
        if title != item.title:
            fixed.title = title
            result.fixes[TITLE_FIXED] += 1
        if item.domain == common_pb2.DOMAIN_UNSPECIFIED:
            fixed.domain = common_pb2.DOMAIN_PRODUCT
        result.accepted.append(fixed)
    return result
