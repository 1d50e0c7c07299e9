"""Section 8, scale-out: two app processes (the load generator's threads spread over both) and two `dailyfeed
listen` processes in one consumer group, against one app and one listener, on the same broker and store.

One repetition per process count, on a fresh database, date topic and group:
  1. the listeners start in one group; nothing is timed until the group is Stable with all of them, so no
     rebalance falls into a figure (joining costs seconds, with nothing consumed meanwhile);
  2. the apps (kafka publish, no in-app listener) take the warm-up and then the timed POST load (8 client
     threads per app, = server.threads, the same number of requests in all), while the listeners store;
     then the apps stop (their producers flush) and the group catches up;
  3. ingest: a raw producer sends as many events as section 2 ingests in one burst; timed from its first send
     until the group has committed the last record;
  4. the store is read back: documents, distinct message keys, and the post ids of the app's events must equal
     what was sent (the 201 answers and the produced events): exactly once, checked.
CPU seconds of the bench's processes and how busy the whole machine was are kept to name the limiter.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from bench import common
from bench.common import RESULTS, Run, Sizes, median, percentile
from bench.ingest import listener_env, start_listener, watch_group
from bench.loadgen import post_many
from bench.report import Row, Table, fmt
from bench.write import failed_statuses, post_load, start_app
from dailyfeed.store import MEMBER_ACTIVITIES

PROCESSES = (1, 2)
PRODUCED_FROM = 10**7  # post ids of the raw producer's events, far above the apps' ids


class CpuMeter:
    """How busy all CPUs were, and how much CPU the given processes used, between start and stop."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self._proc0 = [common.cpu_seconds(pid) for pid in pids]
        self._stat0 = _stat()
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        total1, idle1 = _stat()
        total0, idle0 = self._stat0
        wall = time.perf_counter() - self._t0
        used = sum(common.cpu_seconds(pid) - before for pid, before in zip(self.pids, self._proc0))
        return {
            "machine_busy": 1 - (idle1 - idle0) / max(1, total1 - total0),
            "procs_cpu_share": used / wall / (os.cpu_count() or 1),
        }


def _stat() -> tuple[int, int]:
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def scale_rep(run: Run, rep: int, procs: int, sizes: Sizes, tokens: dict[int, str]) -> dict[str, Any]:
    label = f"x{rep}p{procs}"
    database, prefix, group = run.db(label), run.prefix(label), run.group(label)
    topic = common.today_topic(prefix)
    asyncio.run(common.create_topic(topic))
    out: dict[str, Any] = {"processes": procs}
    logs = [RESULTS / "logs" / f"{run.id}-listen-{label}-{k}.log" for k in range(procs)]
    env = listener_env(run, label, prefix, group)
    listeners = [start_listener(env, log) for log in logs]
    apps = []
    try:
        # 1. the listeners have joined their group and hold their partitions (no rebalance in what is timed)
        for proc, log in zip(listeners, logs):
            common.wait_for_line(log, r"listener consuming", proc, timeout=60)
        asyncio.run(common.wait_group_stable(group, procs))

        # 2. writes through `procs` apps, while the listeners store their activities
        for k in range(procs):
            log = RESULTS / "logs" / f"{run.id}-serve-{label}-{k}.log"
            apps.append(start_app(run, f"{label}a{k}", "kafka", log, database=database, prefix=prefix))
        urls = [url for _, url in apps]
        headers, body = post_load(tokens)
        clients = sizes.concurrency * procs
        warm, _ = post_many(urls, "/api/posts", sizes.warmup * procs, clients, headers, body)
        cpu = CpuMeter([proc.pid for proc, _ in apps])
        results, elapsed = post_many(urls, "/api/posts", sizes.writes, clients, headers, body)
        out["write_cpu"] = cpu.stop()
        for proc, _ in apps:
            common.stop_process(proc)  # SIGTERM: the app closes its producer, which flushes what it holds
        ok = [r for r in results if r.status == 201]
        out.update(
            {
                "req_per_s": len(ok) / elapsed,
                "errors": len(results) - len(ok),
                "failed_statuses": failed_statuses(results, 201),
                "p50_ms": percentile([r.latency_s for r in ok], 50) * 1000,
                "p99_ms": percentile([r.latency_s for r in ok], 99) * 1000,
            }
        )
        app_posts = {r.body["data"]["id"] for r in warm + results if r.status == 201}
        watch_group(group, len(app_posts), listeners, [], timeout=120, log_paths=logs)

        # 3. ingest: a burst of as many events as section 2 ingests, timed from its first send until the group
        # has committed the last record
        events = common.make_events(sizes.ingest, start=PRODUCED_FROM)
        sent = len(app_posts) + sizes.ingest
        cpu = CpuMeter([proc.pid for proc in listeners])
        started = time.time()
        asyncio.run(common.produce(topic, events))
        done_at = watch_group(group, sent, listeners, [], timeout=max(120.0, sent / 5), log_paths=logs)
        out["ingest_cpu"] = cpu.stop()
    finally:
        for proc in listeners + [proc for proc, _ in apps]:
            common.stop_process(proc)
    out.update(
        {"events": sizes.ingest, "events_per_s": sizes.ingest / (done_at - started), "ingest_s": done_at - started}
    )

    # 4. exactly once, read back from the store
    client = common.mongo()
    try:
        activities = client[database][MEMBER_ACTIVITIES]
        out["stored"] = activities.count_documents({})
        out["distinct_keys"] = len(activities.distinct("message_key"))
        stored_posts = {doc["post_id"] for doc in activities.find({"post_id": {"$lt": PRODUCED_FROM}}, {"post_id": 1})}
        out["app_events_missing"] = len(app_posts - stored_posts)
        out["app_events_unexpected"] = len(stored_posts - app_posts)
    finally:
        client.close()
    out["sent"] = sent
    out["exactly_once"] = (
        out["stored"] == out["distinct_keys"] == sent
        and not out["app_events_missing"]
        and not out["app_events_unexpected"]
    )
    return out


def rows(table: Table) -> None:
    one, two = "scale:1", "scale:2"
    if not table.reps(one) and not table.reps(two):
        return
    w = f"{table.sizes['writes']:,} × 8 clients per app"
    table.figure(
        "8a scale-out write: 2 apps, kafka publish (req/s)",
        w,
        table.values(two, "req_per_s"),
        "1 app",
        table.values(one, "req_per_s"),
        "report",
    )
    for section, who in ((one, "1 app"), (two, "2 apps")):
        p50, p99 = table.values(section, "p50_ms"), table.values(section, "p99_ms")
        busy = table.values(section, "write_cpu", "machine_busy")
        share = table.values(section, "write_cpu", "procs_cpu_share")
        row = table.add(
            Row(
                f"8a   {who}: p50 / p99 latency (ms); CPU busy, machine / apps",
                w,
                f"{fmt(median(p50))} / {fmt(median(p99))}",
                "",
                "—",
                "—",
                f"CPU {_pct(busy)} / {_pct(share)}",
            )
        )
        errors = sum(table.values(section, "errors"))
        if errors:
            row.target += f"; {errors:.0f} failed"
    n = f"{table.sizes['ingest']:,} events"
    table.figure(
        "8b scale-out ingest: 2 `dailyfeed listen`, one group (ev/s)",
        n,
        table.values(two, "events_per_s"),
        "1 listener",
        table.values(one, "events_per_s"),
        "report",
    )
    for section, who in ((one, "1 listener"), (two, "2 listeners")):
        busy = table.values(section, "ingest_cpu", "machine_busy")
        share = table.values(section, "ingest_cpu", "procs_cpu_share")
        table.add(Row(f"8b   {who}: CPU busy, machine / listeners", n, f"{_pct(busy)} / {_pct(share)}"))
    for section, who in ((one, "1 app + 1 listener"), (two, "2 apps + 2 listeners")):
        reps = [rep for rep in table.reps(section) if "exactly_once" in rep]
        if not reps:
            continue
        good = sum(1 for rep in reps if rep["exactly_once"])
        detail = "; ".join(
            f"{rep['stored']:,} docs = {rep['distinct_keys']:,} keys = {rep['sent']:,} sent"
            if rep["exactly_once"]
            else f"{rep['stored']:,} docs, {rep['distinct_keys']:,} keys, {rep['sent']:,} sent, "
            f"{rep['app_events_missing']} missing, {rep['app_events_unexpected']} unexpected"
            for rep in reps
        )
        table.add(
            Row(
                f"8c   stored exactly once, {who} (runs)",
                "writes + ingest",
                f"{good} of {len(reps)}",
                "",
                detail,
                "—",
                "every event once ✅" if good == len(reps) else "❌",
            )
        )


def _pct(values: list[float]) -> str:
    m = median(values)
    return "—" if m != m else f"{m * 100:.0f} %"
