"""The capacity model: for a target load, how many of each part dailyfeed needs, each with the formula behind it.

    .venv/bin/python -m bench.capacity --members 10000,1000000,100000000 [--daily-active 0.2] [--actions 20] ...
    make capacity

It needs no service. Every figure comes from a measured row or from a named assumption, and says which:

- the latest committed benchmark table (docs/benchmarks.md, between its table markers; `--bench`), read row by
  row by the figure's name (`MEASURED`); a row that is missing is reported and its named fallback used;
- the document and index sizes measured on the store here from documents the app wrote (bench/measured/storage.json,
  written by `python -m bench.storage`);
- the followings feed's cost against stored and matched activities (bench/measured/feed.json, `python -m bench.feed`);
- the shipped settings (config/default.toml: partitions, replication, topic retention) and the app's own event
  builder (the bytes of a Kafka record);
- the target and the assumptions given on the command line (`Target`; `--help` lists them with their defaults).

docs/scaling.md holds its output for three targets and what follows from it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.common import DOCS as BENCH_DOCS
from bench.common import REPO
from bench.feed import FEED_RESULTS as FEED_FILE
from bench.report import TABLE_END, TABLE_START
from bench.storage import STORAGE_RESULTS as STORAGE_FILE
from dailyfeed.activity.service import MAX_FOLLOWINGS
from dailyfeed.web import DEFAULT_PAGE_SIZE as PAGE  # a feed page; it reads one more to tell if a next one exists

SCALING_DOCS = REPO / "docs" / "scaling.md"
DAY_S = 86_400
GIB = 1024**3
EXPLODE_LIMIT = 200  # MongoDB's internalQueryMaxScansToExplode: past it the sort after an $in is done in memory


# --- the measured rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """A rate the model takes from the benchmark table: the rows it may come from (regular expressions on the
    figure's name, the first that is present wins, each with why it stands for this rate), else a fallback."""

    name: str
    what: str
    rows: tuple[tuple[str, str], ...]
    fallback: float
    fallback_why: str


MEASURED = (
    Measure(
        "produce",
        "raw produce to one date topic, every partition (ev/s)",
        ((r"^1a ceiling: raw produce", "the broker's own ceiling"),),
        10_000,
        "assumed 10,000 ev/s: a third of what row 1a measured before",
    ),
    Measure(
        "listener",
        "one `dailyfeed listen` process (ev/s)",
        (
            (r"^2[a-z]?\s+listener ingest", "the listener's ingest"),
            (r"^1c ceiling", "no listener row: the ceiling it is held to, raw consume + the app's insert_many"),
        ),
        1_000,
        "assumed 1,000 ev/s",
    ),
    Measure(
        "write_kafka",
        "writes per serving process, kafka transport (req/s)",
        ((r"^3b write, kafka publish", "POST /api/posts, kafka publish, listener in its own process"),),
        100,
        "assumed 100 req/s",
    ),
    Measure(
        "write_feign",
        "writes per serving process, feign transport (req/s)",
        ((r"^3d write, feign", "POST /api/posts, feign to the process's own activity pool"),),
        50,
        "assumed 50 req/s",
    ),
    Measure(
        "read",
        "feed reads per serving process (req/s)",
        (
            (
                r"^3a write, no publish",
                "assumed: a feed page costs the process what a write without publish does "
                "(one authenticated request, two store round trips, one JSON answer); the "
                "read rows (7) are the store's scans, not the process",
            ),
        ),
        100,
        "assumed 100 req/s",
    ),
    Measure(
        "store_insert",
        "inserts into the store here, 8 writers (/s)",
        ((r"^3s\s+store alone: plain insert_one", "one FerretDB, pymongo, 8 threads"),),
        500,
        "assumed 500/s",
    ),
    Measure(
        "record_dead_letter",
        "dead letters recorded by the write path (/s)",
        ((r"^5c\s+recording a dead letter", "DeadLetterStore, one writer"),),
        30,
        "assumed 30/s",
    ),
    Measure(
        "relay",
        "outstanding events published again by the relay (/s)",
        (
            (r"relay", "the outbox relay"),
            (r"^5b restore-publisher", "no relay row: restore-publisher republishes the same way"),
        ),
        50,
        "assumed 50/s",
    ),
    Measure(
        "restore_publisher",
        "publisher dead letters restored by one restore-publisher (/s)",
        ((r"^5b restore-publisher", "restore-publisher, republish by kafka"),),
        50,
        "assumed 50/s",
    ),
)


@dataclass(frozen=True)
class Figure:
    value: float
    source: str
    missing: bool = False


def table_rows(text: str) -> dict[str, list[str]]:
    """The benchmark table's rows by figure name (cells after the first), from the marked block if there is one."""
    if TABLE_START in text and TABLE_END in text:
        text = text[text.index(TABLE_START) : text.index(TABLE_END)]
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(cells) >= 3 and not set(cells[0]) <= set("-: "):
            rows.setdefault(cells[0], cells[1:])  # a repeated name (7a at three sizes): the first, the smallest
    return rows


def number(cell: str) -> float | None:
    """The first number of a table cell ("7,556", "16.3 / 162", "0.06 / 0.24"), or None."""
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?", cell)
    return float(match.group().replace(",", "")) if match else None


def resolve(measure: Measure, rows: dict[str, list[str]], source_name: str) -> Figure:
    tried = []
    for pattern, why in measure.rows:
        for name, cells in rows.items():
            value = number(cells[1]) if len(cells) > 1 else None  # the median column
            if re.search(pattern, name) and value is not None:
                note = f"row '{name}' of {source_name}: {why}"
                if tried:
                    note = f"{'; '.join(tried)}; so {note}"
                return Figure(value, note)
        tried.append(f"no row matching /{pattern}/")
    return Figure(
        measure.fallback, f"MISSING: {'; '.join(tried)} in {source_name}; {measure.fallback_why}", missing=True
    )


# --- the target and its assumptions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A load to plan for. Every field is a stated assumption, given on the command line (`--help`)."""

    members: int
    daily_active: float = 0.2  # share of members active on a day
    actions: float = 20.0  # writes (posts, comments, likes, follows) per active member per day
    peak_factor: float = 3.0  # the busiest hour's rate / the day's mean rate
    retention_days: int = 30  # how long activities and what they describe are planned to be kept
    outage_minutes: float = 60.0  # the broker is unreachable this long, at the peak rate
    feed_reads: float = 10.0  # feed pages per active member per day
    followings: int = 100  # mean followings of a member (MAX_FOLLOWINGS is 999)
    utilization: float = 0.5  # the share of a measured rate a process is planned to run at
    transport: str = "kafka"  # how the content services publish: kafka | feign
    restore_processes: int = 1
    title_chars: int = 40  # user text per post title, post and comment (bytes: UTF-8, ASCII assumed)
    post_chars: int = 280
    comment_chars: int = 120
    reads_per_write: float = 1.0  # store reads a write makes (the post looked up, its likes counted)
    shard_storage_gib: float = 1024.0  # data + indexes one shard is planned to hold
    insert_cost_keys: float = 10.0  # what a replicated, indexed insert costs, in index keys read from cache
    # the share of actions by what they create (follows are recorded in-process: no Kafka event)
    mix: tuple[tuple[str, float], ...] = (
        ("posts", 0.10),
        ("comments", 0.25),
        ("post_likes", 0.40),
        ("comment_likes", 0.20),
        ("follows", 0.05),
    )

    def __post_init__(self):
        if self.members < 1:
            raise ValueError("members must be at least 1")
        for name in ("daily_active", "utilization"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        for name in (
            "actions",
            "peak_factor",
            "feed_reads",
            "post_chars",
            "comment_chars",
            "title_chars",
            "shard_storage_gib",
            "insert_cost_keys",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.peak_factor < 1:
            raise ValueError("peak_factor must be at least 1 (the peak is never below the mean)")
        if abs(sum(share for _, share in self.mix) - 1) > 1e-6:
            raise ValueError("the action mix must add up to 1")
        if self.transport not in ("kafka", "feign"):
            raise ValueError("transport must be kafka or feign")

    def share(self, collection: str) -> float:
        return dict(self.mix).get(collection, 0.0)


@dataclass
class Inputs:
    """Everything measured or configured that the model reads, with where each came from."""

    rates: dict[str, Figure]
    partitions: int  # kafka.topic.partitions: the topics the bench measured had as many
    replication: int  # kafka.topic.replication-factor
    topic_retention_days: float  # kafka.topic.retention-ms
    record_bytes: int  # key + value of a Kafka record the app builds
    storage: dict[str, Any] | None = None  # bench/measured/storage.json
    feed: dict[str, Any] | None = None  # bench/measured/feed.json
    notes: list[str] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)  # where the storage and feed figures were read

    def rate(self, name: str) -> float:
        return self.rates[name].value


def record_bytes() -> int:
    """Key + value of the Kafka record of a like, with ids of nine digits, built by the app's own code."""
    from dailyfeed.events import ActivityEvent, ActivityType

    event = ActivityEvent.new(ActivityType.LIKE_POST, 10**8, post_id=10**8)
    return len(event.message_key.encode()) + len(event.to_bytes())


def load_inputs(bench: Path = BENCH_DOCS, storage: Path = STORAGE_FILE, feed: Path = FEED_FILE) -> Inputs:
    from dailyfeed.config import load_settings

    settings = load_settings(environ={})  # the shipped defaults, whatever this shell exports
    notes = []
    rows: dict[str, list[str]] = {}
    if bench.exists():
        rows = table_rows(bench.read_text())
    else:
        notes.append(f"MISSING: {bench} does not exist; every rate is its fallback")
    rates = {m.name: resolve(m, rows, display(bench)) for m in MEASURED}

    def optional(path: Path, what: str) -> dict[str, Any] | None:
        if path.exists():
            return json.loads(path.read_text())
        notes.append(f"MISSING: {display(path)} does not exist, so no {what} (run `make capacity-measure`)")
        return None

    return Inputs(
        rates=rates,
        partitions=settings["kafka.topic.partitions"],
        replication=settings["kafka.topic.replication-factor"],
        topic_retention_days=settings["kafka.topic.retention-ms"] / (DAY_S * 1000),
        record_bytes=record_bytes(),
        storage=optional(storage, "storage figures"),
        feed=optional(feed, "feed read figures"),
        notes=notes,
        paths={"storage": display(storage), "feed": display(feed)},
    )


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# --- the model ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    name: str
    value: float
    unit: str
    formula: str


def ceil(x: float) -> int:
    return max(1, math.ceil(round(x, 9)))  # rounding first: 3.0000000001 from float error is 3 processes


def n(x: float) -> str:
    """A number as the output prints it: thousands separated, a few significant digits."""
    if x != x:
        return "—"
    if abs(x) >= 100 or x == int(x):
        return f"{x:,.0f}"
    return f"{x:,.3g}" if abs(x) >= 0.01 else f"{x:.2e}"


def size(b: float) -> str:
    for unit, scale in (("TiB", 1024**4), ("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if b >= scale:
            return f"{b / scale:,.1f} {unit}"
    return f"{b:,.0f} B"


@dataclass(frozen=True)
class Load:
    """The rates a target makes, before any part is sized."""

    active: float
    actions_per_day: float
    mean_per_s: float
    peak_per_s: float
    events_peak_per_s: float  # through Kafka: every action but follows (recorded in-process)
    feed_peak_per_s: float


def load_of(t: Target) -> Load:
    active = t.members * t.daily_active
    per_day = active * t.actions
    mean = per_day / DAY_S
    peak = mean * t.peak_factor
    return Load(
        active, per_day, mean, peak, peak * (1 - t.share("follows")), active * t.feed_reads / DAY_S * t.peak_factor
    )


def load_parts(t: Target, ld: Load) -> list[Part]:
    return [
        Part("active members", ld.active, "", f"members {n(t.members)} × daily active {t.daily_active}"),
        Part("actions per day", ld.actions_per_day, "", f"active {n(ld.active)} × actions {n(t.actions)}"),
        Part(
            "actions per second at the peak",
            ld.peak_per_s,
            "/s",
            f"{n(ld.actions_per_day)} / {DAY_S:,} s × peak factor {t.peak_factor}",
        ),
        Part(
            "events per second at the peak (Kafka)",
            ld.events_peak_per_s,
            "ev/s",
            f"{n(ld.peak_per_s)} × (1 − follows {t.share('follows')}: recorded in-process, no event)",
        ),
        Part(
            "feed reads per second at the peak",
            ld.feed_peak_per_s,
            "/s",
            f"active {n(ld.active)} × {n(t.feed_reads)} pages / {DAY_S:,} s × {t.peak_factor}",
        ),
    ]


def process_parts(t: Target, ld: Load, inp: Inputs) -> list[Part]:
    u = t.utilization
    listener = inp.rate("listener")
    listeners = ceil(ld.events_peak_per_s / (listener * u)) if t.transport == "kafka" else 0
    per_partition_produce = inp.rate("produce") / inp.partitions
    by_produce = ceil(ld.events_peak_per_s / (per_partition_produce * u))
    partitions = max(inp.partitions, listeners, by_produce)
    write = inp.rate(f"write_{t.transport}")
    writers = ceil(ld.peak_per_s / (write * u))
    readers = ceil(ld.feed_peak_per_s / (inp.rate("read") * u))
    parts = []
    if t.transport == "kafka":
        parts.append(
            Part(
                "listener processes (`dailyfeed listen`, one group)",
                listeners,
                "",
                f"⌈events {n(ld.events_peak_per_s)}/s / (listener {n(listener)} ev/s × utilization {u})⌉",
            )
        )
    parts += [
        Part(
            "partitions per date topic",
            partitions,
            "",
            f"max(kafka.topic.partitions {inp.partitions}; listeners {listeners}: a partition feeds one member of a "
            f"group; ⌈events {n(ld.events_peak_per_s)}/s / (produce {n(inp.rate('produce'))} ev/s / "
            f"{inp.partitions} partitions × {u})⌉ = {by_produce}). Each day's topic is new, so this can change "
            "from one day to the next without moving a record",
        ),
        Part(
            "serving processes for writes",
            writers,
            "",
            f"⌈actions {n(ld.peak_per_s)}/s / (write_{t.transport} {n(write)} req/s × {u})⌉",
        ),
        Part(
            "serving processes for feed reads",
            readers,
            "",
            f"⌈feed reads {n(ld.feed_peak_per_s)}/s / (read {n(inp.rate('read'))} req/s × {u})⌉",
        ),
        Part("serving processes in all", writers + readers, "", f"{writers} + {readers}"),
    ]
    return parts


def store_rate_parts(t: Target, ld: Load, inp: Inputs) -> list[Part]:
    writes = ld.peak_per_s * 2
    reads = ld.peak_per_s * t.reads_per_write + ld.feed_peak_per_s * 2
    insert = inp.rate("store_insert")
    return [
        Part(
            "store writes per second at the peak",
            writes,
            "/s",
            f"actions {n(ld.peak_per_s)}/s × 2 (the content document, its activity; a follow: the follow, its "
            "activity)",
        ),
        Part(
            "store reads per second at the peak",
            reads,
            "/s",
            f"actions {n(ld.peak_per_s)} × reads per write {t.reads_per_write} + feed reads "
            f"{n(ld.feed_peak_per_s)} × 2 (the followings, the page)",
        ),
        Part(
            "the store here: its share of one FerretDB's inserts",
            writes / insert,
            "×",
            f"writes {n(writes)}/s / store_insert {n(insert)}/s (one FerretDB v1, one SQLite writer: it does not "
            "shard)",
        ),
    ]


@dataclass(frozen=True)
class CollectionSize:
    name: str
    per_doc_bson: float  # BSON bytes a document (MongoDB's uncompressed size)
    per_doc_store: float  # data bytes a document on the store here
    per_doc_indexes: float  # index bytes a document on the store here, every index
    indexes: int


def collection_size(t: Target, name: str, measured: dict[str, Any]) -> CollectionSize:
    """A document's bytes at the target's text lengths: the measured document less its measured text, plus the
    text the target assumes (posts: title and content; comments: content)."""
    text = {"posts": t.title_chars + t.post_chars, "comments": t.comment_chars}.get(name, 0)
    extra = text - measured["text_bytes"]
    return CollectionSize(
        name,
        measured["bson_bytes"] + extra,
        measured["store_data_bytes"] + extra,
        sum(measured["store_index_bytes"].values()),
        len(measured["store_index_bytes"]),
    )


# collections whose documents a day of actions adds: every action is an activity, each kind of action its document
DAILY = ("member_activities", "posts", "comments", "post_likes", "comment_likes", "follows")
OUTAGE = {"kafka": "kafka_publisher_dead_letters", "feign": "feign_dead_letters"}
NOT_DAILY = {
    "counters": "one document per id sequence, not per action",
    "ops_readiness_probes": "one document per readiness probe",
    "kafka_listener_dead_letters": "only when the store keeps refusing a record (not a broker outage)",
    "dead_letter_claims": "one per dead letter restored (the outage section)",
    **{c: "written during an outage (the outage section)" for c in OUTAGE.values()},
}


def storage_parts(t: Target, ld: Load, inp: Inputs) -> tuple[list[Part], float]:
    """Per collection: documents, data and indexes per day and over the retention. Returns also what the retention
    holds as BSON plus the indexes as measured here: what sizes the shards of a MongoDB cluster (its indexes are not
    measured here; FerretDB's own data is JSON text, 2-3× the BSON, so it is shown but not used for them)."""
    if inp.storage is None:
        return [Part("storage", float("nan"), "", f"no storage figures ({inp.paths['storage']})")], float("nan")
    measured = inp.storage["collections"]
    parts, here, cluster = [], 0.0, 0.0
    for name in DAILY:
        docs = ld.actions_per_day * (1 if name == "member_activities" else t.share(name))
        if name not in measured:
            parts.append(Part(f"{name}", float("nan"), "", f"MISSING from {inp.paths['storage']}: not measured"))
            continue
        c = collection_size(t, name, measured[name])
        per_day = docs * (c.per_doc_bson + c.per_doc_indexes)
        cluster += per_day * t.retention_days
        here += docs * (c.per_doc_store + c.per_doc_indexes) * t.retention_days
        share = "every action" if name == "member_activities" else f"{t.share(name)} of the actions"
        parts += [
            Part(f"{name}: documents per day", docs, "", f"actions {n(ld.actions_per_day)} × {share}"),
            Part(
                f"{name}: bytes per day, BSON + indexes",
                per_day,
                "B",
                f"{n(docs)} × ({n(c.per_doc_bson)} B BSON + {n(c.per_doc_indexes)} B in {c.indexes} indexes) = "
                f"{size(docs * c.per_doc_bson)} + {size(docs * c.per_doc_indexes)} (data here "
                f"{n(c.per_doc_store)} B a document)",
            ),
            Part(
                f"{name}: over the retention",
                per_day * t.retention_days,
                "B",
                f"{size(per_day)} × {t.retention_days} days",
            ),
        ]
    unmodelled = sorted(set(measured) - set(DAILY) - set(NOT_DAILY))
    for name in unmodelled:
        parts.append(
            Part(
                f"{name}: measured ({n(measured[name]['bson_bytes'])} B BSON a document) but not in "
                "the model's action mix",
                float("nan"),
                "",
                "add it to DAILY or NOT_DAILY",
            )
        )
    parts += [
        Part(
            f"everything retained ({t.retention_days} days), BSON + indexes", cluster, "B", "the sum of the lines above"
        ),
        Part("   the same on the store here (its data is JSON text)", here, "B", "documents × (data here + indexes)"),
    ]
    return parts, cluster


def outage_parts(t: Target, ld: Load, inp: Inputs) -> list[Part]:
    seconds = t.outage_minutes * 60
    rate = ld.events_peak_per_s if t.transport == "kafka" else ld.peak_per_s * (1 - t.share("follows"))
    dead = rate * seconds
    collection = OUTAGE[t.transport]
    record = inp.rate("record_dead_letter")
    restore = inp.rate("restore_publisher") * t.restore_processes
    relay = inp.rate("relay")
    parts = [
        Part(
            "dead letters kept during the outage",
            dead,
            "",
            f"events {n(rate)}/s × {n(seconds)} s (the outage at the peak)",
        ),
        Part(
            "dead letters recorded per second during it, against what the write path records",
            rate / record,
            "×",
            f"{n(rate)}/s / record_dead_letter {n(record)}/s: above 1× the writes wait on the dead-letter store",
        ),
    ]
    storage = inp.storage["collections"] if inp.storage else {}
    if collection in storage:
        dl = storage[collection]
        parts.append(
            Part(
                f"{collection}: their bytes, here (data + indexes)",
                dead * (dl["store_data_bytes"] + sum(dl["store_index_bytes"].values())),
                "B",
                f"{n(dead)} × ({n(dl['store_data_bytes'])} + "
                f"{n(sum(dl['store_index_bytes'].values()))}) B; BSON {size(dead * dl['bson_bytes'])}",
            )
        )
    if "dead_letter_claims" in storage:
        claim = storage["dead_letter_claims"]
        parts.append(
            Part(
                "dead_letter_claims: one per restored dead letter, here (data + indexes)",
                dead * (claim["store_data_bytes"] + sum(claim["store_index_bytes"].values())),
                "B",
                f"{n(dead)} × ({n(claim['store_data_bytes'])} + {n(sum(claim['store_index_bytes'].values()))}) B",
            )
        )
    parts += [
        Part(
            "restore time to drain them (restore-publisher)",
            dead / restore,
            "s",
            f"{n(dead)} / (restore_publisher {n(inp.rate('restore_publisher'))}/s × {t.restore_processes} "
            f"process(es)) = {hours(dead / restore)}",
        ),
        Part(
            "the same drained by the relay",
            dead / relay,
            "s",
            f"{n(dead)} / relay {n(relay)}/s = {hours(dead / relay)}",
        ),
    ]
    if t.transport == "kafka":
        listeners = ceil(ld.events_peak_per_s / (inp.rate("listener") * t.utilization))
        spare = listeners * inp.rate("listener") - ld.events_peak_per_s
        backlog = ld.events_peak_per_s * seconds
        parts.append(
            Part(
                "a store outage instead: the listeners' catch-up afterwards",
                backlog / spare,
                "s",
                f"backlog {n(backlog)} events / (listeners {listeners} × {n(inp.rate('listener'))} − "
                f"{n(ld.events_peak_per_s)}) ev/s = {hours(backlog / spare)} (nothing is dead-lettered: "
                "offsets wait)",
            )
        )
    return parts


def hours(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:,.2g} s"
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def kafka_parts(t: Target, ld: Load, inp: Inputs) -> list[Part]:
    per_day = ld.actions_per_day * (1 - t.share("follows"))
    bytes_kept = per_day * inp.record_bytes * inp.replication * inp.topic_retention_days
    return [
        Part(
            "Kafka: bytes kept on the brokers (records only)",
            bytes_kept,
            "B",
            f"{n(per_day)} events/day × {inp.record_bytes} B (key + value the app builds) × replication "
            f"{inp.replication} × {n(inp.topic_retention_days)} days of topic retention = {size(bytes_kept)}",
        )
    ]


def examined_keys(followings: int, per_member: float) -> float:
    """Index keys one feed page examines on MongoDB under index member_newest: up to the explode limit, one scan per
    followed member merged in order (each yields at least its first key, the page the rest); past it, every key
    of every followed member, sorted in memory."""
    return followings + PAGE if followings <= EXPLODE_LIMIT else followings * per_member


def feed_parts(t: Target, ld: Load, inp: Inputs, retained: float) -> list[Part]:
    per_member = t.daily_active * t.actions * t.retention_days  # a member's activities within the retention
    matched = t.followings * per_member
    stored = ld.actions_per_day * t.retention_days
    parts = [
        Part(
            "activities a feed page chooses from",
            matched,
            "",
            f"followings {t.followings} × a member's {n(per_member)} (daily active {t.daily_active} × "
            f"{n(t.actions)} × {t.retention_days} days)",
        )
    ]
    if inp.feed is not None and "ferretdb" in inp.feed.get("stores", {}):
        f = inp.feed["stores"]["ferretdb"]["fit"]
        ms = f["base_ms"] + f["per_stored_ms"] * stored + f["per_matched_ms"] * matched
        parts.append(
            Part(
                "a feed page on the store here (FerretDB v1: every query decodes the collection)",
                ms / 1000,
                "s",
                f"{n(f['base_ms'])} + {f['per_stored_ms']:.3g} × stored {n(stored)} + "
                f"{f['per_matched_ms']:.3g} × matched {n(matched)} ms (the fit of {inp.paths['feed']})",
            )
        )
    keys = examined_keys(t.followings, per_member)
    how = (
        f"≤ {EXPLODE_LIMIT} followings: one index scan per followed member merged, so followings + a page"
        if t.followings <= EXPLODE_LIMIT
        else f"> {EXPLODE_LIMIT} followings: the sort after the $in is done in memory over every matching key"
    )
    most = examined_keys(MAX_FOLLOWINGS, per_member)
    shards = ceil(retained / (t.shard_storage_gib * GIB)) if retained == retained else 1
    touched = shards * (1 - (1 - 1 / shards) ** t.followings)
    timeline_writes = ld.events_peak_per_s * t.followings
    parts += [
        Part("index keys a page examines on MongoDB (index member_newest)", keys, "", how),
        Part(
            f"   for a member following {MAX_FOLLOWINGS} (the most allowed)",
            most,
            "",
            f"> {EXPLODE_LIMIT}: every key of {MAX_FOLLOWINGS} × {n(per_member)} activities, sorted in memory",
        ),
        Part(
            "shards for the retained data",
            shards,
            "",
            f"⌈{size(retained)} / shard_storage {t.shard_storage_gib:,.0f} GiB⌉",
        ),
        Part(
            "shards a feed page asks (member_activities sharded by member_id)",
            touched,
            "",
            f"shards {shards} × (1 − (1 − 1/{shards})^followings {t.followings}); each answers its best "
            f"{PAGE + 1}, mongos merges",
        ),
        Part(
            "index keys examined per second at the peak, every shard",
            ld.feed_peak_per_s * touched * keys,
            "/s",
            f"feed reads {n(ld.feed_peak_per_s)}/s × shards asked {n(touched)} × {n(keys)} (each shard is sent "
            "the whole $in and seeks every member in it, its own or not)",
        ),
        Part(
            "a timeline per member instead: timeline inserts per second at the peak",
            timeline_writes,
            "/s",
            f"events {n(ld.events_peak_per_s)}/s × mean followers {t.followings} (each follow has two ends, so "
            f"the mean followers = the mean followings); {n(timeline_writes / max(ld.events_peak_per_s, 1e-9))}× "
            f"the activity writes; a page then reads {PAGE + 1} keys of one shard",
        ),
    ]
    if inp.storage is not None and "member_activities" in inp.storage["collections"]:
        c = collection_size(t, "member_activities", inp.storage["collections"]["member_activities"])
        entries = ld.actions_per_day * (1 - t.share("follows")) * t.followings * t.retention_days
        parts.append(
            Part(
                "   their storage over the retention, an entry the size of an activity (BSON)",
                entries * c.per_doc_bson,
                "B",
                f"{n(entries)} entries × {n(c.per_doc_bson)} B = {size(entries * c.per_doc_bson)}",
            )
        )
    reads = ld.feed_peak_per_s * keys
    parts.append(
        Part(
            "   the timeline costs less once a page asks this many shards",
            t.insert_cost_keys * timeline_writes / reads if reads else float("inf"),
            "",
            f"insert cost {t.insert_cost_keys} keys × timeline inserts {n(timeline_writes)}/s / (feed reads "
            f"{n(ld.feed_peak_per_s)}/s × {n(keys)} keys a shard)",
        )
    )
    return parts


def model(t: Target, inp: Inputs) -> list[tuple[str, list[Part]]]:
    """The target's parts, by section, in the order they print."""
    ld = load_of(t)
    storage, retained = storage_parts(t, ld, inp)
    return [
        ("load", load_parts(t, ld)),
        ("processes", process_parts(t, ld, inp)),
        ("store rates", store_rate_parts(t, ld, inp)),
        ("storage", storage),
        ("Kafka", kafka_parts(t, ld, inp)),
        ("broker outage", outage_parts(t, ld, inp)),
        ("followings feed", feed_parts(t, ld, inp, retained)),
    ]


# --- output ---------------------------------------------------------------------------------------------------


def value_text(p: Part) -> str:
    if p.unit == "B":
        return size(p.value)
    if p.unit == "s":
        return hours(p.value)
    if p.unit == "×":
        return f"{p.value:,.2f}×" if p.value >= 0.01 else f"{p.value:.1g}×"
    return f"{n(p.value)} {p.unit}".strip()


def render_inputs(inp: Inputs) -> str:
    lines = ["measured inputs (rates from the benchmark table, read by row name):"]
    for m in MEASURED:
        fig = inp.rates[m.name]
        lines.append(f"  {m.name:18} {n(fig.value):>8}  {m.what}\n  {'':18} {'':>8}  ← {fig.source}")
    lines.append(
        f"  partitions {inp.partitions}, replication {inp.replication} (config/default.toml); a Kafka record "
        f"{inp.record_bytes} B (key + value, dailyfeed.events)"
    )
    if inp.storage is not None:
        store = inp.storage["store"]
        lines.append(
            f"  storage: run {inp.storage['run']} of {inp.storage['started']} on {store['uri_scheme']}:// "
            f"(wire version {store.get('version')}), {inp.paths['storage']}"
        )
    if inp.feed is not None:
        lines.append(f"  feed: run {inp.feed['run']}, {inp.paths['feed']}")
    lines += [f"  {note}" for note in inp.notes]
    return "\n".join(lines)


def render_target(t: Target, inp: Inputs) -> str:
    assumed = ", ".join(f"{f.name} {getattr(t, f.name)}" for f in fields(t) if f.name not in ("members", "mix"))
    mix = ", ".join(f"{k} {v}" for k, v in t.mix)
    lines = [f"== {n(t.members)} members ==", f"assumed: {assumed}; mix {mix}"]
    for title, parts in model(t, inp):
        lines.append(f"-- {title}")
        for p in parts:
            lines.append(f"  {p.name}: {value_text(p)}")
            lines.append(f"      = {p.formula}")
    return "\n".join(lines)


def render_summary(targets: list[Target], inp: Inputs) -> str:
    """One markdown table: every part of every section, a column per target (the formulas: the text output)."""
    models = [model(t, inp) for t in targets]
    head = ["part"] + [f"{n(t.members)} members" for t in targets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s, (title, parts) in enumerate(models[0]):
        lines.append(f"| **{title}** |" + " |" * len(targets))
        for p in parts:
            cells = []
            for m in models:
                same = [q for q in m[s][1] if q.name == p.name]
                cells.append(value_text(same[0]) if same else "—")
            lines.append(f"| {p.name.strip()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_feed(feed: dict[str, Any]) -> str:
    """The feed measurement as a table: raw query p50 (ms) per store and stored activities, a column per
    followings count, then the fit."""
    followings = sorted({p["followings"] for r in feed["stores"].values() for p in r["points"]})
    lines = [
        "| store, activities per member → stored | " + " | ".join(f"{f} followings" for f in followings) + " |",
        "|---|" + "---|" * len(followings),
    ]
    for store, result in feed["stores"].items():
        for a in sorted({p["per_member"] for p in result["points"]}):
            points = {p["followings"]: p for p in result["points"] if p["per_member"] == a}
            cells = [f"{points[f]['raw_ms']:,.0f} ({points[f]['samples']})" if f in points else "—" for f in followings]
            stored = next(iter(points.values()))["stored"]
            lines.append(f"| {store}, {a} → {stored:,} | " + " | ".join(cells) + " |")
    fits = "; ".join(
        f"{store} ≈ {r['fit']['base_ms']:,.0f} ms + {r['fit']['per_stored_ms']:.3f} ms per stored "
        f"+ {r['fit']['per_matched_ms']:.3f} ms per matched activity"
        for store, r in feed["stores"].items()
    )
    load = ", ".join(f"{x:.1f}" for x in feed["load_before"][:1] + feed.get("load_after", [])[:1])
    return "\n".join(lines) + (
        f"\n\nRaw query p50 in ms (pairs in brackets), run {feed['run']}, load average "
        f"before / after {load}. Least squares: {fits}.\n"
    )


def write_docs(path: Path, blocks: dict[str, str]) -> None:
    """Replace what stands between each pair of the model's markers in `path` (docs/scaling.md)."""
    text = path.read_text()
    for name, block in blocks.items():
        start_mark, end_mark = f"<!-- capacity:{name}:start -->", f"<!-- capacity:{name}:end -->"
        start, end = text.index(start_mark) + len(start_mark), text.index(end_mark)
        text = text[:start] + "\n" + block + text[end:]
    path.write_text(text)


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    pairs = []
    for item in text.split(","):
        name, _, share = item.partition("=")
        pairs.append((name.strip(), float(share)))
    return tuple(pairs)


def main(argv: list[str] | None = None) -> int:
    defaults = Target(members=1)
    parser = argparse.ArgumentParser(description="dailyfeed's capacity model (no service needed)")
    parser.add_argument("--members", default="10000,1000000,100000000", help="comma-separated targets")
    for f in fields(Target):
        if f.name in ("members", "mix"):
            continue
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)), default=getattr(defaults, f.name)
        )
    parser.add_argument(
        "--mix", default=",".join(f"{k}={v}" for k, v in defaults.mix), help="share of the actions by what they create"
    )
    parser.add_argument("--bench", type=Path, default=BENCH_DOCS, help="the benchmark table (markdown)")
    parser.add_argument("--storage", type=Path, default=STORAGE_FILE)
    parser.add_argument("--feed", type=Path, default=FEED_FILE)
    parser.add_argument("--markdown", action="store_true", help="one table of every part, a column per target")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"put the inputs and that table into {display(SCALING_DOCS)}"
    )
    args = parser.parse_args(argv)
    try:
        targets = [
            Target(
                members=int(m),
                mix=parse_mix(args.mix),
                **{f.name: getattr(args, f.name) for f in fields(Target) if f.name not in ("members", "mix")},
            )
            for m in args.members.split(",")
        ]
    except ValueError as exc:
        parser.error(str(exc))
    inp = load_inputs(args.bench, args.storage, args.feed)
    if args.write_docs:
        blocks = {"table": f"```text\n{render_inputs(inp)}\n```\n\n{render_summary(targets, inp)}\n"}
        if inp.feed is not None:
            blocks["feed"] = render_feed(inp.feed)
        write_docs(SCALING_DOCS, blocks)
        print(f"written to {display(SCALING_DOCS)}")
        return 0
    print(render_inputs(inp))
    if args.markdown:
        print()
        print(render_summary(targets, inp))
        return 0
    for t in targets:
        print()
        print(render_target(t, inp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
