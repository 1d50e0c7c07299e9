"""Section 9, the cost of crash-safe publishing (issue 18, docs/outbox.md), measured interleaved in each
repetition:

- 9a: POST /api/posts with the Kafka transport **and** the event publication registry (what `dailyfeed serve` runs)
  against the bare write: no publish and no registry (`serve_app --transport none --no-outbox`); beside them the
  Kafka write without the registry. Same load as 3.
- 9b: the relay: M posts stored with their events owed (their writer "died" after the change: the service's
  checkpoint raises at `applied`), then `PublicationRelay.run_pass` until nothing is due, republishing by Kafka;
  against the store's one-update baseline (one document updated by _id through pymongo, as 5d measures it).
"""

from __future__ import annotations

import time
from typing import Any

from bench import common
from bench.app import services
from bench.common import RESULTS, Run, Sizes, percentile
from bench.loadgen import post_many
from bench.report import Table
from bench.write import failed_statuses, post_load, start_app, write_label

# name: (serve_app --transport, registry); "kafka" (no registry) shows what of the cost is the registry's
WRITES = {"bare": ("none", False), "kafka+registry": ("kafka", True), "kafka": ("kafka", False)}


def write_rep(run: Run, rep: int, mode: str, sizes: Sizes, tokens: dict[int, str]) -> dict[str, Any]:
    transport, registry = WRITES[mode]
    label = f"o{rep}{mode[0]}{'r' if registry else ''}"
    proc, url = start_app(run, label, transport, RESULTS / "logs" / f"{run.id}-serve-{label}.log", outbox=registry)
    headers, body = post_load(tokens)
    try:
        post_many(url, "/api/posts", sizes.warmup, sizes.concurrency, headers, body)
        results, elapsed = post_many(url, "/api/posts", sizes.writes, sizes.concurrency, headers, body)
        ok = [r for r in results if r.status == 201]
        return {
            "req_per_s": len(ok) / elapsed,
            "errors": len(results) - len(ok),
            "p50_ms": percentile([r.latency_s for r in ok], 50) * 1000,
            "p99_ms": percentile([r.latency_s for r in ok], 99) * 1000,
            "failed_statuses": failed_statuses(results, 201),
        }
    finally:
        common.stop_process(proc)


def relay_rep(run: Run, rep: int, m: int) -> dict[str, Any]:
    from dailyfeed.content import outbox
    from dailyfeed.content.outbox import SimulatedCrash

    label = f"o{rep}r"
    dailyfeed = services(
        {
            "mongo.uri": common.MONGO_URI,
            "mongo.database": run.db(label),
            "kafka.bootstrap-servers": common.BOOTSTRAP,
            "kafka.topic.prefix": run.prefix(label),
            "publish-type.post-service": "kafka",
            "publish-type.comment-service": "kafka",
            "outbox.grace-s": 0.001,
        }
    )
    out: dict[str, Any] = {}
    try:
        content = dailyfeed.content_service

        def died(step: str, key: str) -> None:
            if step == outbox.APPLIED:
                raise SimulatedCrash

        content.checkpoint = died
        for n in range(m):
            try:
                content.create_post(n % 8 + 1, "bench", f"owed post {n} " + "x" * 80)
            except SimulatedCrash:
                pass
        content.checkpoint = outbox.no_checkpoint
        dailyfeed.transports["post-service"].publish(common.make_events(1, start=10**7)[0])  # producer is up
        time.sleep(0.01)  # past the grace
        relay = dailyfeed.relay()

        def baseline() -> float:
            raw = dailyfeed.db["bench_raw_updates"]
            raw.insert_many([{"_id": n, "n": n} for n in range(m)])
            t = time.perf_counter()
            for n in range(m):  # one document updated by _id: the least a relayed event could cost (5d)
                raw.update_one({"_id": n}, {"$set": {"bench_mark": True}})
            return m / (time.perf_counter() - t)

        if rep % 2:  # which goes first alternates between repetitions
            out["raw_update_per_s"] = baseline()
        t = time.perf_counter()
        settled = 0
        while True:
            summary = relay.run_pass()
            settled += summary.settled
            if summary.total == 0:
                break
        out["relay_per_s"] = settled / (time.perf_counter() - t)
        out["relayed"] = settled
        out["left_owed"] = dailyfeed.publications.stats().outstanding
        if not rep % 2:
            out["raw_update_per_s"] = baseline()
        return out
    finally:
        dailyfeed.close()


def rows(table: Table) -> None:
    if not table.reps("outbox:bare"):
        return
    w = write_label(table.sizes)
    bare = table.values("outbox:bare", "req_per_s")
    table.figure(
        "9a write, kafka publish + publication registry (req/s)",
        w,
        table.values("outbox:kafka+registry", "req_per_s"),
        "no publish, no registry",
        bare,
        "≥ 0.7×",
        check=lambda v, r: r >= 0.7,
    )
    table.figure(
        "9a   kafka publish without the registry (req/s)",
        w,
        table.values("outbox:kafka", "req_per_s"),
        "no publish, no registry",
        bare,
    )
    table.figure("9a   the bare write: no publish, no registry (req/s)", w, bare)
    m = f"{table.sizes['restore']:,}"
    table.figure(
        "9b relay: owed events republished by kafka (events/s)",
        m,
        table.values("outbox:relay", "relay_per_s"),
        "5d",
        table.values("outbox:relay", "raw_update_per_s"),
        "≥ 0.8× 5d",
        check=lambda v, r: r >= 0.8,
    )
