"""Index coverage: every query shape the app sends to the store is served by an index of `store.ensure_indexes`.

No store that runs here uses secondary indexes (FerretDB v1 evaluates every filter but `_id` in Go), so index use
cannot be measured: it is checked from the queries themselves. This pytest plugin (loaded by tests/conftest.py)

1. registers a pymongo CommandListener for every client the test process creates, and keeps the commands sent
   by the app's own code (`dailyfeed/`): the nearest frame of ours on the calling stack decides, so a test's own
   reads and writes of the store are left out. mongomock sends no commands: the FerretDB runs of the store-contract
   tests (api, restore, listener) are what is recorded;
2. reduces each find / count / aggregate / distinct / update / delete / findAndModify to its shape: equality
   fields, sort fields, range fields (`Shape`);
3. moves the check (tests/test_index_coverage.py, marker `index_coverage`) to the very end of the session, after
   whatever other hook reordered the tests, so it sees every command the other tests sent. A test rather than a
   session-finish hook: it is reported (and fails) like any test, and it can be selected or deselected.

The rule (MongoDB's equality-sort-range rule, strict): an index serves a shape when its keys start with the
equality fields (in any order), then the sort fields that are not equality fields (in order, all in the index's
direction or all reversed), then the range fields that are not sort fields (in any order). A unique index all of
whose keys are equality fields serves any shape (a point lookup: at most one document per value). A shape with
no field at all (no filter, no sort) is a collection scan: no index serves it. With `$or` each branch, together
with the fields outside the `$or`, must be served (MongoDB plans each clause on its own index).

Decisions: `$in` counts as equality (its values are a set of point bounds, and MongoDB serves a sort after it by
merging one index scan per value). That holds up to 200 combinations (`internalQueryMaxScansToExplode`); beyond
that the sort after an `$in` is done in memory. The tests follow fewer members than that, so the check cannot see
it: a member following more than 200 makes the followings feed sort in memory on MongoDB. `$ne`, `$nin`, `$not`,
`$exists`, `$regex` and comparisons are range fields. A sort on a field the filter binds by equality is no sort.
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pytest
from pymongo import monitoring

from . import ROOT

APP_DIR = str(ROOT / "dailyfeed") + "/"
TESTS_DIR = str(ROOT / "tests") + "/"
RANGE_OPERATORS = {
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$ne",
    "$nin",
    "$not",
    "$exists",
    "$regex",
    "$type",
    "$mod",
    "$size",
    "$all",
    "$elemMatch",
}
UNSERVABLE = {"$expr", "$where", "$text", "$jsonSchema", "$nor"}  # no index bounds can come from these
MARKER = "index_coverage"


@dataclass(frozen=True)
class Shape:
    """What an index needs to know of a query: which fields are bound by equality, which are ranges, the sort."""

    equality: frozenset[str] = frozenset()
    sort: tuple[tuple[str, int], ...] = ()
    range: frozenset[str] = frozenset()
    unservable: str = ""  # an operator no index can serve

    def __str__(self) -> str:
        parts = [f"eq({', '.join(sorted(self.equality))})"] if self.equality else []
        if self.sort:
            parts.append(f"sort({', '.join(f + ('-' if d < 0 else '') for f, d in self.sort)})")
        if self.range:
            parts.append(f"range({', '.join(sorted(self.range))})")
        if self.unservable:
            parts.append(f"unservable({self.unservable})")
        return " ".join(parts) or "scan"


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[tuple[str, Any], ...]
    unique: bool = False

    def __str__(self) -> str:
        keys = ", ".join(f"{f}: {d}" for f, d in self.keys)
        return f"{self.name} {{{keys}}}{' unique' if self.unique else ''}"


def shapes_of(query: Mapping[str, Any] | None, sort: Iterable[tuple[str, Any]] = ()) -> list[Shape]:
    """The shapes a filter and sort reduce to: one, or one per `$or` branch."""
    sort = tuple((str(f), int(d)) for f, d in sort if isinstance(d, int))
    return [Shape(frozenset(eq), sort, frozenset(rng), bad) for eq, rng, bad in _branches(query or {})]


def _branches(query: Mapping[str, Any]) -> list[tuple[set[str], set[str], str]]:
    """(equality fields, range fields, unservable operator) for each branch of a filter."""
    eq: set[str] = set()
    rng: set[str] = set()
    bad = ""
    alternatives: list[list[tuple[set[str], set[str], str]]] = []
    for key, value in query.items():
        if key == "$and":
            for clause in value:
                alternatives.append(_branches(clause))
        elif key == "$or":
            alternatives.append([branch for clause in value for branch in _branches(clause)])
        elif key.startswith("$"):
            bad = bad or key if key in UNSERVABLE else bad
        elif isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
            operators = set(value)
            if operators & {"$eq", "$in"} and not operators - {"$eq", "$in"}:
                eq.add(key)
            else:
                rng.add(key)
        else:
            eq.add(key)  # a value, None or an embedded document: equality
    branches = [(eq, rng, bad)]
    for options in alternatives:  # every combination of the alternatives' branches
        branches = [(e | oe, (r | orng) - (e | oe), b or ob) for e, r, b in branches for oe, orng, ob in options]
    return branches


def serves(index: Index, shape: Shape) -> bool:
    if shape.unservable:
        return False
    keys = [(f, d) for f, d in index.keys]
    fields = [f for f, _ in keys]
    if index.unique and set(fields) <= shape.equality:
        return True  # a point lookup
    if not shape.equality and not shape.sort and not shape.range:
        return False  # nothing to bound or order by: a collection scan
    at = len(shape.equality)
    if set(fields[:at]) != shape.equality:
        return False
    sort = [(f, d) for f, d in shape.sort if f not in shape.equality]
    if sort:
        walked = keys[at : at + len(sort)]
        if [f for f, _ in walked] != [f for f, _ in sort]:
            return False
        if any(not isinstance(d, int) for _, d in walked):
            return False
        same = all(d == i for (_, d), (_, i) in zip(sort, walked))
        reversed_ = all(d == -i for (_, d), (_, i) in zip(sort, walked))
        if not (same or reversed_):
            return False
        at += len(sort)
    rest = shape.range - {f for f, _ in sort}
    return set(fields[at : at + len(rest)]) == rest


ID_INDEX = Index("_id_", (("_id", 1),), unique=True)


def declared_indexes() -> dict[str, list[Index]]:
    """The indexes `store.ensure_indexes` declares, by collection, read back from an in-process store it ran on.
    Every collection also has the unique `_id_` (`indexes_of`)."""
    import mongomock

    from dailyfeed.store import ensure_indexes

    db = mongomock.MongoClient()["declared"]
    ensure_indexes(db)
    return {
        name: [
            Index(index_name, tuple((f, d) for f, d in info["key"]), bool(info.get("unique")) or index_name == "_id_")
            for index_name, info in db[name].index_information().items()
        ]
        for name in db.list_collection_names()
    }


def indexes_of(declared: Mapping[str, list[Index]], collection: str) -> list[Index]:
    return declared.get(collection) or [ID_INDEX]


@dataclass
class Seen:
    count: int = 0
    origins: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class AppCommands(monitoring.CommandListener):
    """Records the query shapes of the commands the app's code sends, by (collection, shape)."""

    def __init__(self):
        self.shapes: dict[tuple[str, Shape], Seen] = defaultdict(Seen)
        self.commands = 0
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        reduced = _reduce(event.command_name, event.command)
        if not reduced:
            return
        origin = _app_origin()
        if origin is None:
            return
        with self._lock:
            self.commands += 1
            for collection, shape in reduced:
                seen = self.shapes[collection, shape]
                seen.count += 1
                seen.origins[origin] += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def _reduce(name: str, command: Mapping[str, Any]) -> list[tuple[str, Shape]]:
    collection = command.get(name)
    if not isinstance(collection, str):
        return []
    if name == "find":
        return [(collection, s) for s in shapes_of(command.get("filter"), (command.get("sort") or {}).items())]
    if name == "findAndModify":
        return [(collection, s) for s in shapes_of(command.get("query"), (command.get("sort") or {}).items())]
    if name in ("count", "distinct"):
        return [(collection, s) for s in shapes_of(command.get("query"))]
    if name == "update":
        return [(collection, s) for statement in command.get("updates", []) for s in shapes_of(statement.get("q"))]
    if name == "delete":
        return [(collection, s) for statement in command.get("deletes", []) for s in shapes_of(statement.get("q"))]
    if name == "aggregate":
        stages = list(command.get("pipeline", []))
        match = stages[0].get("$match") if stages else None
        if match is None:
            return [(collection, Shape(unservable="pipeline without a leading $match"))]
        following = stages[1].get("$sort", {}) if len(stages) > 1 else {}
        return [(collection, s) for s in shapes_of(match, following.items())]
    return []


def _app_origin(skip: int = 2) -> str | None:
    """file:line (function) of the app code that sent the command, or None when a test (or nobody of ours) did.
    `skip`: the frames above the caller's to start from (2: this and the listener's `started`)."""
    frame = sys._getframe(skip)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(APP_DIR):
            return f"{filename[len(str(ROOT)) + 1 :]}:{frame.f_lineno} ({frame.f_code.co_name})"
        if filename.startswith(TESTS_DIR):
            return None
        frame = frame.f_back
    return None


RECORDER = AppCommands()
monitoring.register(RECORDER)  # every MongoClient created from now on reports to it


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}: the index coverage check; runs after every other test")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """The check runs last, whatever order the other tests were put in."""
    last = [item for item in items if item.get_closest_marker(MARKER)]
    items[:] = [item for item in items if not item.get_closest_marker(MARKER)] + last
