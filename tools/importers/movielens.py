"""MovieLens ratings as review events with their rating, and the movies as the catalog.

Reads the 100K layout (u.data, u.item), the 1M layout (ratings.dat, movies.dat)
and the CSV layout (ratings.csv, movies.csv), whichever the folder holds.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from recsys.common.v1 import common_pb2

U_ITEM_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


class FormatError(ValueError):
    """The folder holds none of the known MovieLens layouts."""


def _movie(movie_id: str, title: str, genres: list[str]) -> common_pb2.Item:
    return common_pb2.Item(
        item_id=f"movie:{movie_id}",
        title=title.strip(),
        category_path=["Movies", *genres[:1]],
        attributes={"genres": "|".join(genres)} if genres else {},
        domain=common_pb2.DOMAIN_CONTENT,
        kind="video",
    )


def read_items(folder: Path) -> list[common_pb2.Item]:
    if (folder / "u.item").exists():
        items = []
        with (folder / "u.item").open(encoding="latin-1") as handle:
            for line in handle:
                fields = line.rstrip("\n").split("|")
                if len(fields) < 5:
                    continue
                flags = fields[5:]
                genres = [g for g, flag in zip(U_ITEM_GENRES, flags, strict=False) if flag == "1"]
                items.append(_movie(fields[0], fields[1], genres))
        return items
    if (folder / "movies.dat").exists():
        with (folder / "movies.dat").open(encoding="latin-1") as handle:
            rows = [line.rstrip("\n").split("::") for line in handle if line.strip()]
        return [_movie(r[0], r[1], r[2].split("|") if r[2] else []) for r in rows]
    if (folder / "movies.csv").exists():
        with (folder / "movies.csv").open(newline="", encoding="utf-8") as handle:
            return [
                _movie(
                    r["movieId"],
                    r["title"],
                    [] if r["genres"] == "(no genres listed)" else r["genres"].split("|"),
                )
                for r in csv.DictReader(handle)
            ]
    raise FormatError(f"{folder}: no u.item, movies.dat or movies.csv")


def _ratings(folder: Path) -> Iterator[tuple[str, str, float, int]]:
    """(user, movie, rating, unix time) from whichever ratings file the folder holds."""
    if (folder / "u.data").exists():
        with (folder / "u.data").open(encoding="latin-1") as handle:
            for line in handle:
                user, movie, rating, stamp = line.split()
                yield user, movie, float(rating), int(stamp)
    elif (folder / "ratings.dat").exists():
        with (folder / "ratings.dat").open(encoding="latin-1") as handle:
            for line in handle:
                user, movie, rating, stamp = line.strip().split("::")
                yield user, movie, float(rating), int(stamp)
    elif (folder / "ratings.csv").exists():
        with (folder / "ratings.csv").open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                yield row["userId"], row["movieId"], float(row["rating"]), int(row["timestamp"])
    else:
        raise FormatError(f"{folder}: no u.data, ratings.dat or ratings.csv")


def read_events(folder: Path) -> Iterator[common_pb2.Event]:
    """One review event per rating; half stars round up (the contract's ratings are 1 to 5)."""
    for user, movie, rating, stamp in _ratings(folder):
        event = common_pb2.Event(
            event_id=f"movielens:{user}:{movie}:{stamp}",
            user_id=f"ml:{user}",
            item_id=f"movie:{movie}",
            type=common_pb2.EVENT_TYPE_REVIEW,
            rating=min(5, max(1, math.ceil(rating))),
        )
        event.timestamp.FromDatetime(datetime.fromtimestamp(stamp, UTC))
        yield event
