"""Sections 3 and 4, the write path and end to end: POST /api/posts against the app in a process of its own
(bench/serve_app.py) in each publish mode, beside the store alone through pymongo; for the kafka + in-app
listener mode also the time until the activities are stored."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from bench import common
from bench.app import services
from bench.common import RESULTS, Run, Sizes, median, percentile
from bench.ingest import STORE_FAILED
from bench.loadgen import get_json, post_many
from bench.report import Row, Table, fmt

WRITE_MODES = {  # name: (serve_app --transport, in-app listener, activities stored before the run)
    "none": ("none", False, 0),
    "kafka": ("kafka", False, 0),
    "kafka+listener": ("kafka", True, 0),
    "feign": ("feign", False, 0),
    "feign@5k": ("feign", False, 5_000),
}


def start_app(
    run: Run,
    label: str,
    transport: str,
    log_path: Path,
    *,
    listener: bool = False,
    database: str | None = None,
    prefix: str | None = None,
    outbox: bool = True,
) -> tuple[subprocess.Popen, str]:
    """bench/serve_app.py (the app under waitress, as `dailyfeed serve` wires it) in a process of its own;
    returns the process and its URL once it serves. `outbox` False: without the publication registry."""
    args = [
        common.PYTHON,
        "-m",
        "bench.serve_app",
        "--transport",
        transport,
        "--database",
        database or run.db(label),
        "--topic-prefix",
        prefix or run.prefix(label),
        "--group-id",
        run.group(label),
    ]
    if listener:
        args.append("--listener")
    if not outbox:
        args.append("--no-outbox")
    proc = common.start_process(args, common.bench_env(), log_path)
    try:
        url = common.wait_for_line(log_path, r"READY (\S+)", proc, timeout=60).group(1)
    except BaseException:
        common.stop_process(proc)
        raise
    return proc, url


def write_store_rep(run: Run, rep: int, n: int, concurrency: int) -> dict[str, Any]:
    """What the store alone allows a post write, with pymongo from `concurrency` threads and no HTTP: the
    counter $inc + insert that dailyfeed.store.insert_with_next_id does, and a plain insert for comparison."""
    client = common.mongo()
    db = client[run.db(f"s{rep}")]

    failures: list[str] = []

    def hammer(one: Callable[[int], None]) -> float:
        counter = iter(range(n))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                try:
                    one(i)
                except Exception as exc:  # noqa: BLE001 - counted: insert_with_next_id gives up after 50 draws
                    failures.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return n / (time.perf_counter() - started)

    def counter_insert(i: int) -> None:
        from dailyfeed.store import insert_with_next_id

        insert_with_next_id(db, "posts", {"author_id": i % 8 + 1, "title": "bench", "content": "x" * 100})

    def plain_insert(i: int) -> None:
        db["posts_plain"].insert_one({"_id": i + 1, "author_id": i % 8 + 1, "title": "bench", "content": "x" * 100})

    try:
        result = {"counter_insert_per_s": hammer(counter_insert)}
        result["counter_insert_failures"] = len(failures)
        result["insert_per_s"] = hammer(plain_insert)
        return result
    finally:
        client.drop_database(db.name)
        client.close()


def post_load(tokens: dict[int, str]) -> tuple[Callable[[int], dict], Callable[[int], dict]]:
    """Headers (the members' tokens in turn) and bodies (each post distinct) for post_many."""
    members = sorted(tokens)
    counter = iter(range(10**9))

    def headers(i: int) -> dict:
        return {"Authorization": f"Bearer {tokens[members[i % len(members)]]}"}

    def body(i: int) -> dict:
        return {"title": "bench", "content": f"benchmark post {next(counter)} " + "x" * 80}

    return headers, body


def write_rep(run: Run, rep: int, mode: str, sizes: Sizes, tokens: dict[int, str]) -> dict[str, Any]:
    transport, listener, preload = WRITE_MODES[mode]
    label = f"w{rep}{re.sub(r'[^a-z0-9]', '', mode)}"
    if preload:
        preload_activities(run.db(label), preload)
    log_path = RESULTS / "logs" / f"{run.id}-serve-{label}.log"
    proc, url = start_app(run, label, transport, log_path, listener=listener)
    headers, body = post_load(tokens)

    rss: list[int] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.1):
            rss.append(common.proc_status(proc.pid).get("VmRSS", 0))

    try:
        warm, _ = post_many(url, "/api/posts", sizes.warmup, sizes.concurrency, headers, body)
        if listener:  # the in-app listener has joined and stored the warm-up's activities
            wait_stored(url, len([r for r in warm if r.status == 201]), 0, timeout=120)
        stored_before = len(get_json(f"{url}/_bench/stored?from=0"))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # a store that slows with every stored activity gets fewer requests, to keep the run short
        requests = max(50, sizes.writes // 6) if preload else sizes.writes
        results, elapsed = post_many(url, "/api/posts", requests, sizes.concurrency, headers, body)
        ok = [r for r in results if r.status == 201]
        out: dict[str, Any] = {
            "req_per_s": len(ok) / elapsed,
            "errors": len(results) - len(ok),
            "p50_ms": percentile([r.latency_s for r in ok], 50) * 1000,
            "p99_ms": percentile([r.latency_s for r in ok], 99) * 1000,
        }
        if listener:
            out.update(end_to_end(url, ok, stored_before))
        stop_sampling.set()
        out["failed_statuses"] = failed_statuses(results, 201)
        server_log = log_path.read_text()
        out["store_failures"] = len(STORE_FAILED.findall(server_log))
        out["no_free_id"] = server_log.count("RuntimeError: no free id")
        out["hwm_kib"] = common.proc_status(proc.pid).get("VmHWM", 0)
        out["rss_kib"] = max(rss) if rss else 0
        return out
    finally:
        stop_sampling.set()
        common.stop_process(proc)


def failed_statuses(results: list, expected: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for result in results:
        if result.status != expected:
            found[str(result.status)] = found.get(str(result.status), 0) + 1
    return found


def preload_activities(database: str, n: int) -> None:
    """n member_activities of other members, as if the app had been running for a while, stored by the app's
    repository (unordered bulk inserts)."""
    dailyfeed = services({"mongo.uri": common.MONGO_URI, "mongo.database": database})
    try:
        events = common.make_events(n, start=10**8, members=1000)
        for start in range(0, n, 5000):
            dailyfeed.activity_service.record_activities(events[start : start + 5000])
    finally:
        dailyfeed.close()


def wait_stored(url: str, count: int, start: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = get_json(f"{url}/_bench/stored?from={start}")
        if len(stored) >= count:
            return stored
        time.sleep(0.05)
    raise TimeoutError(f"only {len(stored)} of {count} activities stored within {timeout:.0f} s")


def end_to_end(url: str, ok: list, stored_before: int) -> dict[str, Any]:
    """From the first POST to the last activity stored; per post, its createdAt to its activity's store time."""
    stored = wait_stored(url, len(ok), stored_before, timeout=max(300.0, len(ok)))
    stored_at: dict[int, float] = {}
    for key, at in stored:
        post_id = int(key.split("###")[1])
        stored_at.setdefault(post_id, at)
    delays = []
    for result in ok:
        data = result.body["data"]
        created = datetime.fromisoformat(data["createdAt"].replace("Z", "+00:00")).timestamp()
        delays.append(stored_at[data["id"]] - created)
    first_sent = min(r.sent_at for r in ok)
    last_stored = max(stored_at[r.body["data"]["id"]] for r in ok)
    return {
        "e2e_events_per_s": len(ok) / (last_stored - first_sent),
        "e2e_seconds": last_stored - first_sent,
        "delay_p50_s": percentile(delays, 50),
        "delay_p99_s": percentile(delays, 99),
    }


def write_label(sizes: dict) -> str:
    return f"{sizes['writes']:,} × {sizes['concurrency']} clients"


def rows(table: Table) -> None:
    w = write_label(table.sizes)
    base = table.values("write:none", "req_per_s")
    base_p50, base_p99 = table.values("write:none", "p50_ms"), table.values("write:none", "p99_ms")
    store_ceiling = table.values("write:store", "counter_insert_per_s")
    row = table.figure("3s store alone: counter $inc + insert, 8 threads, pymongo (/s)", w, store_ceiling)
    store_failures = sum(table.values("write:store", "counter_insert_failures"))
    if store_failures:
        row.target = f"{store_failures:.0f} gave up (no free id)"
    table.figure(
        "3s   store alone: plain insert_one, 8 threads (/s)",
        w,
        table.values("write:store", "insert_per_s"),
        "3s",
        store_ceiling,
    )
    table.figure("3a write, no publish (FakeTransport) (req/s)", w, base, "3s", store_ceiling)
    table.add(Row("3a   p50 / p99 latency (ms)", w, f"{fmt(median(base_p50))} / {fmt(median(base_p99))}"))
    for mode, label in (
        ("kafka", "3b write, kafka publish (listener off)"),
        ("kafka+listener", "3c write, kafka + in-app listener (as `serve`)"),
        ("feign", "3d write, feign to own activity pool"),
        ("feign@5k", "3e write, feign, 5k activities already stored"),
    ):
        section = f"write:{mode}"
        if mode == "feign@5k":
            table.figure(
                f"{label} (req/s)",
                w,
                table.values(section, "req_per_s"),
                "3d",
                table.values("write:feign", "req_per_s"),
            )
        else:
            target = "≥ 0.7× 3a (cost ≤ 30 %)" if mode == "kafka" else "report" if mode == "feign" else ""
            table.figure(
                f"{label} (req/s)",
                w,
                table.values(section, "req_per_s"),
                "3a",
                base,
                target,
                check=(lambda m, r: r >= 0.7) if mode == "kafka" else None,
            )
        p50, p99 = table.values(section, "p50_ms"), table.values(section, "p99_ms")
        r50 = median(p50) / median(base_p50) if base_p50 else float("nan")
        r99 = median(p99) / median(base_p99) if base_p99 else float("nan")
        latency = table.add(
            Row(
                f"{label.split(',')[0]}   p50 / p99 latency (ms)",
                w,
                f"{fmt(median(p50))} / {fmt(median(p99))}",
                "",
                f"3a {fmt(median(base_p50))} / {fmt(median(base_p99))}",
                f"{r50:.2f}× / {r99:.2f}×",
            )
        )
        errors = sum(table.values(section, "errors"))
        if errors:
            statuses: dict[str, int] = {}
            for rep in table.reps(section):
                for status, count in (rep.get("failed_statuses") or {}).items():
                    statuses[status] = statuses.get(status, 0) + count
            no_free_id = sum(table.values(section, "no_free_id"))
            latency.target = (
                f"{errors:.0f} failed: "
                + ", ".join(f"{n} × HTTP {s}" for s, n in sorted(statuses.items()))
                + (f" ({no_free_id:.0f} × 'no free id')" if no_free_id else "")
            )

    e2e = table.values("write:kafka+listener", "e2e_events_per_s")
    table.figure(
        "4a end to end: first POST → last activity stored (ev/s)",
        w,
        e2e,
        "3c req/s",
        table.values("write:kafka+listener", "req_per_s"),
    )
    d50 = table.values("write:kafka+listener", "delay_p50_s")
    d99 = table.values("write:kafka+listener", "delay_p99_s")
    k50, k99 = table.values("write:kafka+listener", "p50_ms"), table.values("write:kafka+listener", "p99_ms")
    table.add(
        Row(
            "4b   post createdAt → activity stored, p50 / p99 (s)",
            w,
            f"{fmt(median(d50))} / {fmt(median(d99))}",
            "",
            f"3c request {fmt(median(k50) / 1000)} / {fmt(median(k99) / 1000)}",
            f"{median(d50) / (median(k50) / 1000):.1f}× / {median(d99) / (median(k99) / 1000):.1f}×"
            if k50 and d50
            else "—",
        )
    )
