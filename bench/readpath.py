"""Section 7, the read paths: four GET endpoints over HTTP (the app under waitress on the real store) at growing
numbers of stored activities, each next to the raw pymongo query of the same shape (filter, sort, skip, limit)
timed in the same run, one request at a time, HTTP and raw alternating.

The store holds what the app would have stored: member 1 follows members 2-101 (through the activity service,
so with their MEMBER_FOLLOW activities), and the other activities are posts and comments, half each, every one
with its POST_CREATE / COMMENT_CREATE activity. Posts, comments and activities are bulk-inserted from the app's
own document builders (content.repository.post_document / comment_document, the activity repository's bulk
write), so their shape is the app's. Each size adds to the previous one's data; the app process stays up.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Callable

from bench import common
from bench.app import services
from bench.common import RESULTS, Run, Sizes, percentile
from bench.loadgen import Client
from bench.report import Row, Table, fmt, ratio_of, times
from bench.write import start_app
from dailyfeed.content.repository import comment_document, post_document
from dailyfeed.events import ActivityEvent, ActivityType, utcnow
from dailyfeed.store import COMMENTS, FOLLOWS, MEMBER_ACTIVITIES, POSTS

FOLLOWER = 1
FOLLOWINGS = list(range(2, 102))  # the member whose feed is read follows 100 members
MEMBERS = 1000  # authors of the seeded posts and comments, in turn
AUTHOR = 2  # whose posts and activities are read (followed by FOLLOWER)
THREAD_POST, THREAD = 1, 25  # the post whose comments are read has a full first page of them
PAGE = 20  # the endpoints' default page size; they fetch one more to tell whether a next page exists
NEWEST_FIRST = [("created_at", -1), ("_id", -1)]

# name: (figure label, HTTP path, raw query (db, followings) -> cursor). The raw queries are written out here,
# on purpose, as what a page of each endpoint asks the store for (dailyfeed/activity, dailyfeed/content).
ENDPOINTS: dict[str, tuple[str, str, Callable[[Any, list[int]], Any]]] = {
    "feed": (
        "7a followings feed, 100 followings",
        "/api/member-activities/followings",
        lambda db, fol: (
            db[MEMBER_ACTIVITIES].find({"member_id": {"$in": fol}}).sort(NEWEST_FIRST).skip(0).limit(PAGE + 1)
        ),
    ),
    "member": (
        "7b one member's activities",
        f"/api/members/{AUTHOR}/activities",
        lambda db, fol: db[MEMBER_ACTIVITIES].find({"member_id": AUTHOR}).sort(NEWEST_FIRST).skip(0).limit(PAGE + 1),
    ),
    "posts": (
        "7c posts by author",
        f"/api/posts?authorId={AUTHOR}",
        lambda db, fol: (
            db[POSTS].find({"is_deleted": False, "author_id": AUTHOR}).sort("_id", -1).skip(0).limit(PAGE + 1)
        ),
    ),
    "comments": (
        "7d a post's comments",
        f"/api/posts/{THREAD_POST}/comments",
        lambda db, fol: (
            db[COMMENTS].find({"post_id": THREAD_POST, "is_deleted": False}).sort("_id", 1).skip(0).limit(PAGE + 1)
        ),
    ),
}


class Seeder:
    """Grows the read database to n stored activities, a bulk insert at a time."""

    def __init__(self, database: str):
        self.dailyfeed = services({"mongo.uri": common.MONGO_URI, "mongo.database": database})
        self.db = self.dailyfeed.db
        self.posts = self.comments = 0
        self.base = utcnow() - timedelta(days=1)
        self.clock = 0  # milliseconds after base: every stored time distinct, newest last

    def follows(self) -> None:
        for member in FOLLOWINGS:  # the app's own follow: the follow document and its activity
            self.dailyfeed.activity_service.follow(FOLLOWER, member)

    def grow_to(self, n: int, chunk: int = 5000) -> None:
        stored = self.db[MEMBER_ACTIVITIES].estimated_document_count()
        while stored < n:
            k = min(chunk, n - stored)
            posts = max(1, k // 2) if self.posts == 0 else k // 2
            self._add(posts, k - posts)
            stored += k

    def _add(self, posts: int, comments: int) -> None:
        docs, events = [], []
        for _ in range(posts):
            self.posts += 1
            author = (self.posts - 1) % MEMBERS + 1
            at = self._tick()
            docs.append({**post_document(author, "bench", f"read-path post {self.posts}", at), "_id": self.posts})
            events.append(ActivityEvent.new(ActivityType.POST_CREATE, author, post_id=self.posts, at=at))
        if docs:
            self.db[POSTS].insert_many(docs, ordered=False)
        docs = []
        for _ in range(comments):
            self.comments += 1
            post = THREAD_POST if self.comments <= THREAD else (self.comments * 7919) % self.posts + 1
            author = (self.comments - 1) % MEMBERS + 1
            at = self._tick()
            docs.append(
                {**comment_document(post, None, 0, author, f"comment {self.comments}", at), "_id": self.comments}
            )
            events.append(
                ActivityEvent.new(ActivityType.COMMENT_CREATE, author, post_id=post, comment_id=self.comments, at=at)
            )
        if docs:
            self.db[COMMENTS].insert_many(docs, ordered=False)
        self.dailyfeed.activity_service.record_activities(events)

    def _tick(self):
        self.clock += 1
        return self.base + timedelta(milliseconds=self.clock)

    def close(self) -> None:
        self.dailyfeed.close()


def measure(
    client: Client,
    db,
    name: str,
    followings: list[int],
    token: str,
    budget_s: float,
    max_samples: int,
    warm_up: bool,
    min_samples: int = 3,
) -> dict[str, Any]:
    """Alternate one HTTP request and its raw query until max_samples pairs or the time budget is spent (at
    least min_samples pairs). With `warm_up` (the first size) a first pair is not counted; at the larger sizes
    that would cost seconds, and the connections and code paths are warm by then. The first pair's pages are
    compared: the raw query must return the page the endpoint returned."""
    _, path, raw_query = ENDPOINTS[name]
    headers = {"Authorization": f"Bearer {token}"}
    http_s, raw_s, failed = [], [], 0
    first_http, first_raw = None, None
    started = time.perf_counter()
    first = 0 if warm_up else 1
    for i in range(first, max_samples + 1):
        if i > min_samples and time.perf_counter() - started > budget_s:
            break
        for kind in ("http", "raw") if i % 2 else ("raw", "http"):  # neither always goes first
            if kind == "http":
                result = client.get(path, headers)
                if result.status != 200:
                    failed += 1
                elif i:
                    http_s.append(result.latency_s)
                if first_http is None and result.status == 200:
                    first_http = result.body["data"]["content"]
            else:
                t = time.perf_counter()
                docs = list(raw_query(db, followings))
                if i:
                    raw_s.append(time.perf_counter() - t)
                if first_raw is None:
                    first_raw = docs
    same = (
        first_http is not None
        and first_raw is not None
        and [str(item["id"]) for item in first_http] == [str(doc["_id"]) for doc in first_raw[:PAGE]]
    )
    return {
        "http_p50_ms": percentile(http_s, 50) * 1000,
        "http_p99_ms": percentile(http_s, 99) * 1000,
        "raw_p50_ms": percentile(raw_s, 50) * 1000,
        "raw_p99_ms": percentile(raw_s, 99) * 1000,
        "samples": len(http_s),
        "failed": failed,
        "same_answer": same,
        "pair_ratios": [raw / http for raw, http in zip(raw_s, http_s) if http],  # each pair ran back to back
        "items": len(first_http) if first_http is not None else 0,
    }


def read_run(run: Run, sizes: Sizes, tokens: dict[int, str]) -> dict[str, Any]:
    label = "read"
    database = run.db(label)
    seeder = Seeder(database)
    out: dict[str, Any] = {"sizes": sizes.read, "seed_s": {}, "endpoints": {name: {} for name in ENDPOINTS}}
    proc = None
    client = None
    try:
        t = time.perf_counter()
        seeder.follows()
        out["follow_s"] = time.perf_counter() - t
        proc, url = start_app(run, label, "none", RESULTS / "logs" / f"{run.id}-serve-read.log", database=database)
        client = Client(url)
        followings = [doc["following_id"] for doc in seeder.db[FOLLOWS].find({"follower_id": FOLLOWER})]
        for n in sizes.read:
            t = time.perf_counter()
            seeder.grow_to(n)
            out["seed_s"][str(n)] = time.perf_counter() - t
            for name in ENDPOINTS:
                token = tokens[FOLLOWER]
                out["endpoints"][name][str(n)] = measure(
                    client,
                    seeder.db,
                    name,
                    followings,
                    token,
                    sizes.read_budget_s,
                    sizes.read_samples,
                    warm_up=n == sizes.read[0],
                )
            print(
                f" [{n:,}: "
                + " ".join(f"{name}={out['endpoints'][name][str(n)]['http_p50_ms']:.0f}ms" for name in ENDPOINTS)
                + "]",
                end="",
                flush=True,
            )
        out["stored"] = seeder.db[MEMBER_ACTIVITIES].estimated_document_count()
        return out
    finally:
        if client is not None:
            client.close()
        if proc is not None:
            common.stop_process(proc)
        seeder.close()


def rows(table: Table) -> None:
    read = (table.reps("read") or [{}])[0]
    if "endpoints" not in read:
        return
    ns = [str(n) for n in read["sizes"]]
    for name, (label, _, _) in ENDPOINTS.items():
        by_size = read["endpoints"][name]
        for n in ns:
            m = by_size.get(n)
            if not m:
                continue
            ratio = ratio_of(m["raw_p50_ms"], m["http_p50_ms"])
            status = "" if ratio != ratio else " ✅" if ratio >= 0.8 else " ❌"
            notes = "" if m["same_answer"] else "; HTTP page ≠ raw page"
            if m["failed"]:
                notes += f"; {m['failed']} requests failed"
            table.add(
                Row(
                    f"{label}: HTTP p50 / p99 (ms)",
                    f"{int(n):,} activities, {m['samples']} samples",
                    f"{fmt(m['http_p50_ms'])} / {fmt(m['http_p99_ms'])}",
                    _pair_spread(m.get("pair_ratios")),
                    f"raw {fmt(m['raw_p50_ms'])} / {fmt(m['raw_p99_ms'])}",
                    times(ratio),
                    f"≥ 0.8× (raw / HTTP p50){status}{notes}",
                    ratio if ratio == ratio else None,
                    _pair_band(m.get("pair_ratios")),
                )
            )
        low, high = by_size.get(ns[0]), by_size.get(ns[-1])
        if low and high:
            grow_http = ratio_of(high["http_p50_ms"], low["http_p50_ms"])
            grow_raw = ratio_of(high["raw_p50_ms"], low["raw_p50_ms"])
            # what part of the HTTP time the larger store added is the raw query's own growth
            d_http, d_raw = high["http_p50_ms"] - low["http_p50_ms"], high["raw_p50_ms"] - low["raw_p50_ms"]
            table.add(
                Row(
                    f"{label.split(',')[0]}   growth of p50, HTTP / raw",
                    f"{int(ns[0]):,} → {int(ns[-1]):,} activities ({int(ns[-1]) / int(ns[0]):.0f}×)",
                    f"{times(grow_http, 1)} / {times(grow_raw, 1)}",
                    "",
                    f"added: HTTP +{fmt(d_http)} ms, raw +{fmt(d_raw)} ms",
                    times(ratio_of(d_raw, d_http)),
                    "raw's share of the added HTTP time",
                )
            )


def _pair_band(ratios: list[float] | None) -> tuple[float, float] | None:
    return (min(ratios), max(ratios)) if ratios and len(ratios) > 1 else None


def _pair_spread(ratios: list[float] | None) -> str:
    """The range of raw / HTTP over the pairs: how far the shared machine moved one pair against another."""
    band = _pair_band(ratios)
    return f"pairs {band[0]:.2f}–{band[1]:.2f}×" if band else ""
