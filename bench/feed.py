"""The followings feed against the number of followings and the activities per followed member, on the store here
(FerretDB) and on mongomock, one page (the endpoint's first, size 20) at a time; bench/capacity.py reads the fit.

    .venv/bin/python -m bench.feed [--per-member 1,5,20] [--mongomock-per-member 1,2] [--samples 7]

Per activities-per-member value A, a fresh database holds A activities of each of 999 members (POST_CREATE, as the
activity service stores them, every time distinct) and four followers following the first 1, 10, 100 and 999 of
them (the follow documents of FollowRepository). For each follower, alternating, until --samples pairs or
--budget seconds (at least 3 pairs): the service's page (`ActivityService.followings_feed`: the followings read,
then one `$in` sorted newest first, what GET /api/member-activities/followings runs) and the raw query of the same
shape through pymongo. The first pair's pages must hold the same activities. Then a least-squares fit per store,
raw p50 = base + per_stored × stored + per_matched × matched (stored: the collection's documents; matched: the
followed members' activities, F × A), which is what the capacity model scales.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from bench import common
from bench.app import services
from bench.common import Run
from bench.storage import MEASURED, save_results
from dailyfeed.activity.service import MAX_FOLLOWINGS
from dailyfeed.web import DEFAULT_PAGE_SIZE as PAGE

FEED_RESULTS = MEASURED / "feed.json"
FOLLOWINGS = (1, 10, 100, 999)
FOLLOWED = MAX_FOLLOWINGS  # every follower follows the first F of these members
FOLLOWER_BASE = 100_000  # followers' member ids: FOLLOWER_BASE + F
NEWEST_FIRST = [("created_at", -1), ("_id", -1)]
STORES = {"ferretdb": lambda: common.MONGO_URI, "mongomock": lambda: "mongomock://bench-feed"}


def seed(dailyfeed: Any, per_member: int, chunk: int = 5000) -> int:
    """A activities of each followed member and the four followers' follows; returns the activities stored."""
    from dailyfeed.activity.repository import FollowRepository
    from dailyfeed.events import ActivityEvent, ActivityType, utcnow

    base = utcnow() - timedelta(days=1)
    events = [
        ActivityEvent.new(
            ActivityType.POST_CREATE,
            member,
            post_id=k * FOLLOWED + member,
            at=base + timedelta(milliseconds=k * FOLLOWED + member),
        )
        for k in range(per_member)
        for member in range(1, FOLLOWED + 1)
    ]
    for start in range(0, len(events), chunk):
        dailyfeed.activity_service.record_activities(events[start : start + chunk])
    follows = FollowRepository(dailyfeed.db)
    for followings in FOLLOWINGS:
        for member in range(1, followings + 1):
            follows.add(FOLLOWER_BASE + followings, member)
    return len(events)


def timed(fn: Callable[[], list]) -> tuple[float, list]:
    t = time.perf_counter()
    page = fn()
    return (time.perf_counter() - t) * 1000, page


def measure(dailyfeed: Any, followings: int, samples: int, budget_s: float) -> dict[str, Any]:
    from dailyfeed.store import MEMBER_ACTIVITIES

    follower = FOLLOWER_BASE + followings
    members = list(range(1, followings + 1))
    collection = dailyfeed.db[MEMBER_ACTIVITIES]

    def service() -> list:
        return [a["messageKey"] for a in dailyfeed.activity_service.followings_feed(follower, 0, PAGE, None)]

    def raw() -> list:
        cursor = collection.find({"member_id": {"$in": members}}).sort(NEWEST_FIRST).skip(0).limit(PAGE + 1)
        return [doc["message_key"] for doc in cursor]

    service_ms, raw_ms = [], []
    started = time.perf_counter()
    for i in range(samples):
        if i >= 3 and time.perf_counter() - started > budget_s:
            break
        order = (service, raw) if i % 2 == 0 else (raw, service)  # which goes first alternates
        (ms_a, page_a), (ms_b, page_b) = timed(order[0]), timed(order[1])
        if i == 0 and page_a != page_b:
            raise AssertionError(f"{followings} followings: the service's page and the raw query's differ")
        (service_ms if order[0] is service else raw_ms).append(ms_a)
        (raw_ms if order[0] is service else service_ms).append(ms_b)
    return {
        "followings": followings,
        "samples": len(raw_ms),
        "service_ms": statistics.median(service_ms),
        "raw_ms": statistics.median(raw_ms),
        "raw_min_ms": min(raw_ms),
        "raw_max_ms": max(raw_ms),
    }


def fit(points: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares of raw_ms = base + per_stored × stored + per_matched × matched (normal equations, 3 × 3)."""
    rows = [(1.0, float(p["stored"]), float(p["matched"]), float(p["raw_ms"])) for p in points]
    a = [[sum(r[i] * r[j] for r in rows) for j in range(3)] for i in range(3)]
    b = [sum(r[i] * r[3] for r in rows) for i in range(3)]

    def det(m: list[list[float]]) -> float:
        return (
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        )

    d = det(a)
    if not d:
        raise ValueError("the points do not separate stored from matched: measure more than one size")
    coef = [det([[b[r] if c == k else a[r][c] for c in range(3)] for r in range(3)]) / d for k in range(3)]
    return {"base_ms": coef[0], "per_stored_ms": coef[1], "per_matched_ms": coef[2]}


def run_store(run: Run, store: str, per_member: list[int], samples: int, budget_s: float) -> dict[str, Any]:
    points = []
    for a in per_member:
        uri = STORES[store]()
        dailyfeed = services({"mongo.uri": uri, "mongo.database": run.db(f"feed{a}")})
        try:
            t = time.perf_counter()
            stored = seed(dailyfeed, a)
            print(
                f"{store}: {stored:,} activities ({a} per member) stored in {time.perf_counter() - t:.1f} s", flush=True
            )
            for followings in FOLLOWINGS:
                point = {
                    "per_member": a,
                    "stored": stored,
                    "matched": followings * a,
                    **measure(dailyfeed, followings, samples, budget_s),
                }
                points.append(point)
                print(
                    f"  {followings:>4} followings, {point['matched']:>6,} matched: service p50 "
                    f"{point['service_ms']:8.1f} ms, raw p50 {point['raw_ms']:8.1f} ms "
                    f"({point['samples']} pairs)",
                    flush=True,
                )
        finally:
            if uri.startswith("mongodb"):
                dailyfeed.db.client.drop_database(dailyfeed.db.name)
            else:
                from dailyfeed.store import forget_mock

                forget_mock(uri)
            dailyfeed.close()
    return {"points": points, "fit": fit(points)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the followings feed against followings and activities per member")
    parser.add_argument("--per-member", default="1,5,20", help="activities per followed member, comma-separated")
    # mongomock filters and indexes in Python: its inserts slow with the collection, so it stays small
    parser.add_argument("--mongomock-per-member", default="1,2", help="the same on mongomock; empty: skip it")
    parser.add_argument("--samples", type=int, default=7, help="pairs per point at most")
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per point, after 3 pairs")
    parser.add_argument("--out", type=Path, default=FEED_RESULTS)
    args = parser.parse_args(argv)
    per_store = {"ferretdb": args.per_member, "mongomock": args.mongomock_per_member}
    run = Run.new()
    data: dict[str, Any] = {
        "run": run.id,
        "load_before": os.getloadavg(),
        "page": PAGE,
        "followed": FOLLOWED,
        "stores": {},
    }
    try:
        for store, per_member in per_store.items():
            if per_member:
                data["stores"][store] = run_store(
                    run, store, [int(x) for x in per_member.split(",")], args.samples, args.budget
                )
    finally:
        common.drop_databases(run)
    data["load_after"] = os.getloadavg()
    for store, f in ((store, result["fit"]) for store, result in data["stores"].items()):
        print(
            f"{store}: raw p50 ≈ {f['base_ms']:.2f} ms + {f['per_stored_ms'] * 1000:.3f} ms per 1,000 stored "
            f"+ {f['per_matched_ms'] * 1000:.3f} ms per 1,000 matched"
        )
    save_results(args.out, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
