"""What the operating surface costs: `/metrics` scrape time with many dead letters stored, and write throughput with
the metrics on and off.

    .venv/bin/python -m bench.metrics_cost [--dead-letters 10000] [--writes 200] [--rounds 5]
        [--transport kafka|fake] [--scrape-every 15]

Against the real services (DAILYFEED_MONGO_URI, DAILYFEED_KAFKA_BOOTSTRAP_SERVERS; the defaults are the local
ones), in a scratch database and topic prefix of its own, dropped at the end.

1. Scrape: N dead letters (spread over the three collections, statuses and categories) are stored; timed: the
   read behind the dead-letter gauges (one pass per collection), and `GET /metrics` through the app cold (the
   cached counts expired: a read starts, the scrape waits for it at most 2 s) and warm (within
   `metrics.deadletters-cache-s`), the median of several. The dead letters are inserted
   in bulk with the fields the write path gives them: writing 10,000 one at a time would take minutes on FerretDB.
2. Writes: `POST /api/posts` one after another through the app (Flask test client: no socket, so what is measured
   is the app's own work), publishing by the Kafka transport to the real broker (`--transport fake`: no publish,
   the harshest ratio), in rounds alternating metrics off (`metrics.set_enabled(False)`: every counter call
   returns at once) and on (counting, with a scrape at the start of the round and every `--scrape-every` seconds,
   as Prometheus would, with the app's own dead-letter cache: `metrics.deadletters-cache-s` and the spacing after
   slow reads decide when the N dead letters are read again). An "off" round starts once no dead-letter read is
   under way. Writes per second, median of the rounds, and the ratio on / off (target >= 0.95).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DAILYFEED_CONFIG", str(ROOT / "config" / "test.toml"))

from dailyfeed import create_app  # noqa: E402
from dailyfeed.deadletters import Status  # noqa: E402
from dailyfeed.events import ActivityEvent, ActivityType  # noqa: E402
from dailyfeed.extension import get_container  # noqa: E402
from dailyfeed.store import DEAD_LETTER_COLLECTIONS  # noqa: E402
from dailyfeed.telemetry import metrics  # noqa: E402
from dailyfeed.tokens import issue_member_token  # noqa: E402
from dailyfeed.transport.fake import FakeTransport  # noqa: E402

MONGO_URI = os.environ.get("DAILYFEED_MONGO_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
BOOTSTRAP = os.environ.get("DAILYFEED_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
TYPES = [ActivityType.POST_CREATE, ActivityType.COMMENT_CREATE, ActivityType.LIKE_POST, ActivityType.LIKE_COMMENT]


def seed_dead_letters(db, n: int) -> None:
    """n dead letters shaped as DeadLetterStore._record writes them: 70 % kafka publisher, 20 % feign, 10 %
    listener; 80 % pending, the rest completed or failed."""
    now = datetime.now(timezone.utc)
    shares = [(DEAD_LETTER_COLLECTIONS[0], 0.7), (DEAD_LETTER_COLLECTIONS[1], 0.2), (DEAD_LETTER_COLLECTIONS[2], 0.1)]
    start = 0
    for collection, share in shares:
        count = int(n * share)
        docs = []
        for i in range(start, start + count):
            kind = TYPES[i % len(TYPES)]
            event = ActivityEvent.new(kind, 7, post_id=i + 1, comment_id=i + 1, at=now - timedelta(seconds=n - i))
            status = Status.PENDING if i % 10 < 8 else (Status.COMPLETED if i % 10 == 8 else Status.FAILED)
            docs.append(
                {
                    "message_key": event.message_key,
                    "category": event.category.value,
                    "payload": event.to_bytes().decode(),
                    "created_at": event.created_at,
                    "topic": None,
                    "origin": None,
                    "attempts": 1,
                    "traceparent": None,
                    "error": {"type": "TransportUnavailable", "message": "bench"},
                    "last_attempt_at": now,
                    "updated_at": now,
                    "status": status.value,
                    "is_completed": status is Status.COMPLETED,
                    "is_editing": False,
                }
            )
        for chunk in range(0, len(docs), 1000):
            db[collection].insert_many(docs[chunk : chunk + 1000], ordered=False)
        start += count


def timed(call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dead-letters", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=600, help="writes per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each (off, on, off, on, ...)")
    parser.add_argument("--transport", choices=["kafka", "fake"], default="kafka")
    parser.add_argument(
        "--with-stats",
        action="store_true",
        help="also time DeadLetterStore.stats() once (minutes with 10,000 on FerretDB v1)",
    )
    parser.add_argument("--scrape-every", type=float, default=15.0, help="seconds between scrapes in 'on' rounds")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    overrides = {
        "mongo.uri": MONGO_URI,
        "mongo.database": f"bench_{tag}_metrics",
        "kafka.bootstrap-servers": BOOTSTRAP,
        "kafka.topic.prefix": f"bench-{tag}-metrics-member-activity-",
        "kafka.consumer.group-id": f"bench-{tag}-metrics",
        "publish-type.post-service": args.transport if args.transport == "kafka" else "feign",
    }
    transports = (
        {"post-service": FakeTransport(), "comment-service": FakeTransport()} if args.transport == "fake" else None
    )
    app = create_app(overrides, transports=transports, run_background=False)
    dailyfeed = get_container(app)
    client = app.test_client()
    try:
        print(f"seeding {args.dead_letters} dead letters in {MONGO_URI} ...", flush=True)
        seed_dead_letters(dailyfeed.db, args.dead_letters)

        # 1. scrape time
        from dailyfeed.ops import state_of

        cache = state_of(app).dead_letters

        def cold_scrapes(repeat: int) -> list[float]:
            times = []
            for _ in range(repeat):
                cache.expire()
                times.extend(timed(lambda: client.get("/metrics"), 1))
                while cache.reading:  # let the read finish before the next scrape (not timed)
                    time.sleep(0.05)
            return times

        def warm_scrape():
            assert client.get("/metrics").status_code == 200

        from dailyfeed.ops.sources import read_dead_letter_stats

        one_pass = timed(lambda: read_dead_letter_stats(dailyfeed.db, DEAD_LETTER_COLLECTIONS), 3)
        stats = timed(dailyfeed.dead_letters.stats, 1) if args.with_stats else []
        cold = cold_scrapes(5)
        warm = timed(warm_scrape, 20)
        print(f"one pass per collection (what /metrics reads) with {args.dead_letters} dead letters: {ms(one_pass)}")
        if stats:
            print(f"DeadLetterStore.stats() (a count per collection, status and category): {ms(stats)}")
        print(f"/metrics cold (a read starts, awaited at most 2 s): {ms(cold)}")
        print(f"/metrics warm (cached):     {ms(warm)}")

        # 2. write throughput, metrics off vs on
        headers = {"Authorization": "Bearer " + issue_member_token(dailyfeed.settings["auth.jwt-secret"], 7, 3600)}
        for _ in range(30):  # warm-up: producer connected, topic created
            assert client.post("/api/posts", json={"content": "warm-up"}, headers=headers).status_code == 201

        def round_(enabled: bool) -> float:
            while not enabled and cache.reading:  # an "off" round measures no read of the "on" round before
                time.sleep(0.1)
            metrics.set_enabled(enabled)
            stop = threading.Event()
            scraper = None
            if enabled:

                def scrape_loop():
                    while True:
                        app.test_client().get("/metrics")
                        if stop.wait(args.scrape_every):
                            return

                scraper = threading.Thread(target=scrape_loop, daemon=True)
                scraper.start()
            started = time.perf_counter()
            for i in range(args.writes):
                response = client.post("/api/posts", json={"content": f"bench {i}"}, headers=headers)
                assert response.status_code == 201, response.json
            elapsed = time.perf_counter() - started
            stop.set()
            if scraper is not None:
                scraper.join()
            return args.writes / elapsed

        off, on = [], []
        for _ in range(args.rounds):
            off.append(round_(False))
            on.append(round_(True))
        metrics.set_enabled(True)
        off_m, on_m = statistics.median(off), statistics.median(on)
        print(f"writes/s ({args.transport}, {args.writes} sequential writes x {args.rounds} rounds each):")
        print(f"  metrics off: {off_m:.0f} (rounds {', '.join(f'{v:.0f}' for v in off)})")
        print(f"  metrics on:  {on_m:.0f} (rounds {', '.join(f'{v:.0f}' for v in on)})")
        print(f"  ratio on/off: {on_m / off_m:.3f} (target >= 0.95)")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        dailyfeed.close()
        if MONGO_URI.startswith("mongodb"):
            dailyfeed.db.client.drop_database(dailyfeed.db.name)
        if args.transport == "kafka":
            _drop_topics(overrides["kafka.topic.prefix"])


def _drop_topics(prefix: str) -> None:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def drop():
        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="dailyfeed-bench")
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()

    try:
        asyncio.run(drop())
    except Exception as exc:  # best effort: the topics are the run's own
        print(f"could not delete topics {prefix}*: {exc}")


if __name__ == "__main__":
    main()
