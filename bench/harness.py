"""`make bench`: dailyfeed against the real Kafka and FerretDB, one table of figures with their ratios.

Every figure is paired with a baseline measured in the same run, each measurement is repeated (--reps, default 3)
with the repetitions of different figures interleaved, and the median is reported with the spread (min-max).
The app and the listener run in processes of their own, so the load generator never shares their GIL.

Sections (docs/benchmarks.md explains each):
  1 ceiling   raw aiokafka produce / consume and the app's insert_many via pymongo, no app
  2 ingest    `dailyfeed listen` on N events already on the topic
  3 write     POST /api/posts: the store alone; no publish (FakeTransport); kafka; kafka + in-app listener; feign
              on an empty store and with 5k activities stored
  4 e2e       first POST → last activity stored (kafka + in-app listener)
  5 restore   restore-listener and restore-publisher over M dead letters
  6 memory    peak RSS of app and listener; RSS flatness of the listener over a long run
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import re
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from dailyfeed.extension import get_container

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo.errors import BulkWriteError  # noqa: E402

from bench import common  # noqa: E402
from bench.common import Run, median, percentile  # noqa: E402
from bench.loadgen import get_json, post_many  # noqa: E402

RESULTS = common.REPO / "bench" / "results"
DOCS = common.REPO / "docs" / "benchmarks.md"
TABLE_START, TABLE_END = "<!-- bench:table:start -->", "<!-- bench:table:end -->"


# ==== sizes ====

class Sizes:
    def __init__(self, scale: float, reps: int, flat_events: int | None):
        def scaled(n: int, low: int) -> int:
            return max(low, int(n * scale))

        self.scale = scale
        self.reps = reps
        self.ingest = scaled(20_000, 2_000)  # events per ceiling / listener run
        self.writes = scaled(600, 100)  # POSTs per write-path run, after the warm-up
        self.warmup = 30
        self.concurrency = 8  # client threads = server.threads
        self.restore = scaled(300, 60)  # dead letters per restore run
        self.flat = flat_events if flat_events is not None else scaled(100_000, 10_000)


# ==== 1 ceiling ====

MAX_RECORDS = 500  # kafka.consumer.max-records default: the ceiling polls batches as large as the listener's

def activity_doc(value: bytes, key: bytes) -> dict:
    """The member_activities document of a record, as dailyfeed.activity.repository.activity_document makes it."""
    body = json.loads(value)
    return {"member_id": body["memberId"], "post_id": body["postId"], "comment_id": body.get("commentId"),
            "member_activity_type": body["memberActivityType"], "message_key": key.decode(),
            "created_at": datetime.fromisoformat(body["createdAt"].replace("Z", "+00:00")),
            "updated_at": body.get("updatedAt")}


def write_batch(collection, records) -> None:
    """The app's write (ActivityRepository.insert_all_if_absent): one unordered insert_many; a key already stored
    is refused by the unique message_key index (code 11000) and counts as recorded."""
    try:
        collection.insert_many([activity_doc(value, key) for value, key in records], ordered=False)
    except BulkWriteError as exc:
        if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
            raise


async def consume(topic: str, group: str, n: int, write: Callable | None, collection=None) -> dict[str, float]:
    """Consume n records in batches of MAX_RECORDS, write each batch (if asked) in a worker thread, commit
    after it, like the listener. Timed from the consumer's start to the commit of the n-th record."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=common.BOOTSTRAP, group_id=group,
                                client_id="dailyfeed-bench", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    started = time.perf_counter()
    done = 0
    store_s = 0.0
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
            records = [(r.value, r.key) for recs in batches.values() for r in recs]
            if not records:
                continue
            if write is not None:
                t = time.perf_counter()
                await asyncio.to_thread(write, collection, records)
                store_s += time.perf_counter() - t
            await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs})
            done += len(records)
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"events_per_s": n / elapsed, "seconds": elapsed, "store_share": store_s / elapsed}


def ceiling_rep(run: Run, rep: int, n: int) -> dict[str, Any]:
    label = f"c{rep}"
    topic = common.today_topic(run.prefix(label))
    events = common.make_events(n)
    client = common.mongo()
    db = client[run.db(label)]
    db["member_activities"].create_index("message_key", unique=True, name="uniq_message_key")

    async def go() -> dict[str, Any]:
        await common.create_topic(topic)
        produce_s = await common.produce(topic, events)
        read = await consume(topic, run.group(label + "-read"), n, None)
        stored = await consume(topic, run.group(label + "-store"), n, write_batch, db["member_activities"])
        return {"produce": n / produce_s, "consume": read["events_per_s"], "store": stored["events_per_s"],
                "store_share": stored["store_share"]}

    try:
        result = asyncio.run(go())
        result["stored"] = db["member_activities"].count_documents({})
        return result
    finally:
        client.drop_database(db.name)
        client.close()


# ==== 2 listener ingest ====

LOG_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) .*listener consuming", re.M)


def ingest_rep(run: Run, rep: int, n: int) -> dict[str, Any]:
    """N events already on the topic, then `dailyfeed listen`: time from its consumer starting until the group
    has committed all N (it commits only after a batch is stored), RSS sampled meanwhile."""
    label = f"l{rep}"
    prefix = run.prefix(label)
    topic = common.today_topic(prefix)
    group = run.group(label)
    events = common.make_events(n)

    async def setup() -> None:
        await common.create_topic(topic)
        await common.produce(topic, events)

    asyncio.run(setup())
    env = common.bench_env(**{"mongo.database": run.db(label), "kafka.topic.prefix": prefix,
                              "kafka.consumer.group-id": group})
    log_path = RESULTS / "logs" / f"{run.id}-listen-{rep}.log"
    proc = common.start_process([str(Path(common.PYTHON).parent / "dailyfeed"), "listen"], env, log_path)
    samples: list[tuple[float, int, int]] = []  # (time, committed, rss KiB)
    try:
        common.wait_for_line(log_path, r"listener consuming", proc, timeout=60)
        done_at = _watch_group(group, n, proc, samples, timeout=max(120.0, n / 5), log_path=log_path)
        hwm = common.proc_status(proc.pid).get("VmHWM", 0)
    finally:
        common.stop_process(proc)
    consuming_at = _consuming_at(log_path)
    client = common.mongo()
    try:
        stored = client[run.db(label)]["member_activities"].count_documents({})
    finally:
        client.close()
    return {"events_per_s": n / (done_at - consuming_at), "seconds": done_at - consuming_at, "stored": stored,
            "hwm_kib": hwm, "rss_at": _rss_at(samples, n)}


def _consuming_at(log_path: Path) -> float:
    """When the listener logged `listener consuming` (its consumer started), as a Unix time."""
    match = LOG_TIME.search(log_path.read_text())
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(match.group(2)) / 1000


STORE_FAILED = re.compile(r"storing \d+ activities failed.*")


def _watch_group(group: str, n: int, proc, samples: list, timeout: float, interval: float = 0.02,
                 log_path: Path | None = None) -> float:
    """Poll the group's committed offsets until they reach n; returns the wall time it did. Gives up at once when
    the listener logs a failed store: from then on it only retries (and the store is busy with the retries)."""

    async def go() -> float:
        deadline = time.monotonic() + timeout
        last_rss = 0.0
        async with common.OffsetWatcher(group) as watcher:
            while time.monotonic() < deadline:
                done = await watcher.committed()
                now = time.time()
                if done >= n or now - last_rss >= 0.1:
                    samples.append((now, done, common.proc_status(proc.pid).get("VmRSS", 0)))
                    last_rss = now
                if done >= n:
                    return now
                if proc.poll() is not None:
                    raise RuntimeError(f"the listener ended with {proc.returncode} after {done} of {n} records")
                if log_path is not None and len(samples) % 10 == 0:
                    failed = STORE_FAILED.search(log_path.read_text())
                    if failed:
                        raise RuntimeError(f"the listener could not store a batch after {done} of {n} records: "
                                           f"{failed.group(0)[:200]}")
                await asyncio.sleep(interval)
        raise TimeoutError(f"group {group} committed fewer than {n} records within {timeout:.0f} s")

    return asyncio.run(go())


def _rss_at(samples: list[tuple[float, int, int]], n: int) -> dict[str, int]:
    """RSS (KiB) at the first sample at or past 10 %, 50 % and 100 % of the run."""
    found = {}
    for share in (10, 50, 100):
        for _, done, rss in samples:
            if done >= n * share / 100 and rss:
                found[f"{share}%"] = rss
                break
    return found


# ==== 3 + 4 write path and end to end ====

WRITE_MODES = {  # name: (serve_app --transport, in-app listener, activities stored before the run)
    "none": ("none", False, 0),
    "kafka": ("kafka", False, 0),
    "kafka+listener": ("kafka", True, 0),
    "feign": ("feign", False, 0),
    "feign@5k": ("feign", False, 5_000),
}


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


def write_rep(run: Run, rep: int, mode: str, sizes: Sizes, tokens: dict[int, str]) -> dict[str, Any]:
    transport, listener, preload = WRITE_MODES[mode]
    label = f"w{rep}{re.sub(r'[^a-z0-9]', '', mode)}"
    if preload:
        _preload_activities(run.db(label), preload)
    args = [common.PYTHON, str(common.REPO / "bench" / "serve_app.py"), "--transport", transport,
            "--database", run.db(label), "--topic-prefix", run.prefix(label), "--group-id", run.group(label)]
    if listener:
        args.append("--listener")
    log_path = RESULTS / "logs" / f"{run.id}-serve-{label}.log"
    proc = common.start_process(args, common.bench_env(), log_path)
    members = sorted(tokens)
    counter = iter(range(10**9))

    def headers(i: int) -> dict:
        return {"Authorization": f"Bearer {tokens[members[i % len(members)]]}"}

    def body(i: int) -> dict:
        return {"title": "bench", "content": f"benchmark post {next(counter)} " + "x" * 80}

    rss: list[int] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.1):
            rss.append(common.proc_status(proc.pid).get("VmRSS", 0))

    try:
        url = common.wait_for_line(log_path, r"READY (\S+)", proc, timeout=60).group(1)
        warm, _ = post_many(url, "/api/posts", sizes.warmup, sizes.concurrency, headers, body)
        if listener:  # the in-app listener has joined and stored the warm-up's activities
            _wait_stored(url, len([r for r in warm if r.status == 201]), 0, timeout=120)
        stored_before = len(get_json(f"{url}/_bench/stored?from=0"))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # a store that slows with every stored activity gets fewer requests, to keep the run short
        requests = max(50, sizes.writes // 6) if preload else sizes.writes
        results, elapsed = post_many(url, "/api/posts", requests, sizes.concurrency, headers, body)
        ok = [r for r in results if r.status == 201]
        out: dict[str, Any] = {
            "req_per_s": len(ok) / elapsed, "errors": len(results) - len(ok),
            "p50_ms": percentile([r.latency_s for r in ok], 50) * 1000,
            "p99_ms": percentile([r.latency_s for r in ok], 99) * 1000}
        if listener:
            out.update(_end_to_end(url, ok, stored_before))
        stop_sampling.set()
        failed_statuses: dict[str, int] = {}
        for result in results:
            if result.status != 201:
                failed_statuses[str(result.status)] = failed_statuses.get(str(result.status), 0) + 1
        out["failed_statuses"] = failed_statuses
        server_log = log_path.read_text()
        out["store_failures"] = len(STORE_FAILED.findall(server_log))
        out["no_free_id"] = server_log.count("RuntimeError: no free id")
        out["hwm_kib"] = common.proc_status(proc.pid).get("VmHWM", 0)
        out["rss_kib"] = max(rss) if rss else 0
        return out
    finally:
        stop_sampling.set()
        common.stop_process(proc)


def _preload_activities(database: str, n: int) -> None:
    """n member_activities of other members, as if the app had been running for a while."""
    client = common.mongo()
    try:
        records = [(e.to_bytes(), e.message_key.encode()) for e in common.make_events(n, start=10**8, members=1000)]
        collection = client[database]["member_activities"]
        for start in range(0, n, 5000):
            write_batch(collection, records[start:start + 5000])
    finally:
        client.close()


def _wait_stored(url: str, count: int, start: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = get_json(f"{url}/_bench/stored?from={start}")
        if len(stored) >= count:
            return stored
        time.sleep(0.05)
    raise TimeoutError(f"only {len(stored)} of {count} activities stored within {timeout:.0f} s")


def _end_to_end(url: str, ok: list, stored_before: int) -> dict[str, Any]:
    """From the first POST to the last activity stored; per post, its createdAt to its activity's store time."""
    stored = _wait_stored(url, len(ok), stored_before, timeout=max(300.0, len(ok)))
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
    return {"e2e_events_per_s": len(ok) / (last_stored - first_sent), "e2e_seconds": last_stored - first_sent,
            "delay_p50_s": percentile(delays, 50), "delay_p99_s": percentile(delays, 99)}


# ==== 5 restore ====

def restore_rep(run: Run, rep: int, m: int) -> dict[str, Any]:
    """M listener dead letters → ListenerRestore; M publisher dead letters → PublisherRestore (republish by
    Kafka): the jobs' API, as `dailyfeed restore-listener` / `restore-publisher` run it (default options)."""
    from dailyfeed import create_app
    from dailyfeed.restore.jobs import ListenerRestore, PublisherRestore, RestoreOptions
    from dailyfeed.transport.base import TransportUnavailable

    label = f"r{rep}"
    prefix = run.prefix(label)
    app = create_app({"mongo.uri": common.MONGO_URI, "mongo.database": run.db(label),
                      "kafka.bootstrap-servers": common.BOOTSTRAP, "kafka.topic.prefix": prefix,
                      "publish-type.post-service": "kafka", "publish-type.comment-service": "kafka"},
                     run_background=False)
    dailyfeed = get_container(app)
    store = dailyfeed.dead_letters
    out: dict[str, Any] = {}
    try:
        events = common.make_events(m)
        t = time.perf_counter()
        for i, event in enumerate(events):
            store.record_listener_failure(origin={"topic": common.today_topic(prefix), "partition": 0, "offset": i,
                                                  "key": event.message_key, "value": event.to_bytes()},
                                          error=RuntimeError("bench: store down"), event=event)
        out["record_dl_per_s"] = m / (time.perf_counter() - t)
        t = time.perf_counter()
        summary = ListenerRestore(store, dailyfeed.activity_service, RestoreOptions()).run()
        out["listener_dl_per_s"] = m / (time.perf_counter() - t)
        out["listener_summary"] = summary.line()

        # baseline: the same M activities written as the app writes them (insert_many, batches of the restore's
        # default 50) with pymongo, into a fresh collection
        raw = dailyfeed.db["bench_raw_activities"]
        raw.create_index("message_key", unique=True, name="uniq_message_key")
        records = [(e.to_bytes(), e.message_key.encode()) for e in events]
        t = time.perf_counter()
        for start in range(0, m, 50):
            write_batch(raw, records[start:start + 50])
        out["raw_store_per_s"] = m / (time.perf_counter() - t)
        ids = [doc["_id"] for doc in raw.find({}, {"_id": 1})]
        t = time.perf_counter()
        for doc_id in ids:  # one document updated by _id: what claiming or marking a dead letter costs at least
            raw.update_one({"_id": doc_id}, {"$set": {"bench_mark": True}})
        out["raw_update_per_s"] = len(ids) / (time.perf_counter() - t)

        pub_events = common.make_events(m, start=10**6)
        for event in pub_events:
            store.record_publisher_failure("kafka", event, TransportUnavailable("bench: broker down"),
                                           topic=common.today_topic(prefix))
        dailyfeed.transports["post-service"].publish(common.make_events(1, start=10**7)[0])  # producer is up
        t = time.perf_counter()
        summary = PublisherRestore(store, dailyfeed.transports, RestoreOptions()).run()
        out["publisher_dl_per_s"] = m / (time.perf_counter() - t)
        out["publisher_summary"] = summary.line()

        # baseline: the same M events sent with a raw producer, each send awaited before the next
        raw_topic = common.today_topic(run.prefix(label + "raw"))

        async def raw_sends() -> float:
            await common.create_topic(raw_topic)
            await common.produce(raw_topic, pub_events[:1])  # the new topic has a leader before the clock starts
            return await common.produce(raw_topic, pub_events, awaited_one_by_one=True)

        seconds = asyncio.run(raw_sends())
        out["raw_serial_send_per_s"] = m / seconds
        return out
    finally:
        dailyfeed.close()


# ==== 6 memory flatness ====

def flat_run(run: Run, n: int) -> dict[str, Any]:
    """n events through `dailyfeed listen` into the real store, RSS sampled: is its memory flat?"""
    label = "flat"
    prefix = run.prefix(label)
    topic = common.today_topic(prefix)
    group = run.group(label)

    async def setup() -> None:
        await common.create_topic(topic)
        for start in range(0, n, 20_000):  # a chunk at a time: the bench's own memory stays small
            await common.produce(topic, common.make_events(min(20_000, n - start), start=start + 1))

    asyncio.run(setup())
    env = common.bench_env(**{"mongo.database": run.db(label), "kafka.topic.prefix": prefix,
                              "kafka.consumer.group-id": group})
    log_path = RESULTS / "logs" / f"{run.id}-listen-flat.log"
    proc = common.start_process([str(Path(common.PYTHON).parent / "dailyfeed"), "listen"], env, log_path)
    samples: list[tuple[float, int, int]] = []
    try:
        common.wait_for_line(log_path, r"listener consuming", proc, timeout=60)
        done_at = _watch_group(group, n, proc, samples, timeout=max(300.0, n / 50), interval=0.05,
                               log_path=log_path)
        hwm = common.proc_status(proc.pid).get("VmHWM", 0)
    finally:
        common.stop_process(proc)
    started = _consuming_at(log_path)
    return {"events": n, "events_per_s": n / (done_at - started), "rss_at": _rss_at(samples, n), "hwm_kib": hwm,
            "rss_curve": [(done, rss) for _, done, rss in samples[:: max(1, len(samples) // 20)]]}


# ==== the run ====

def machine_notes() -> dict[str, Any]:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=common.REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines()
             if line[3:].startswith("dailyfeed/") and not line.startswith("??")]
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "commit": git("rev-parse", "--short", "HEAD"), "uncommitted": dirty,
            "load_before": os.getloadavg(), "busy_before": busy_share(1.0)}


def busy_share(seconds: float) -> float:
    """Share of all CPUs busy over `seconds` (other people's work on a shared machine shows up here)."""
    def read() -> tuple[int, int]:
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def run_bench(sizes: Sizes, sections: set[str], run: Run) -> dict[str, Any]:
    from dailyfeed.config import load_settings
    from dailyfeed.tokens import issue_member_token

    data: dict[str, Any] = {"run": run.id, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "sizes": vars(sizes), "machine": machine_notes(), "reps": {}}
    reps = data["reps"]
    secret = load_settings()["auth.jwt-secret"]
    tokens = {m: issue_member_token(secret, m, 3600) for m in range(1, 9)}

    def step(name: str, fn: Callable[[], Any]) -> None:
        t = time.perf_counter()
        print(f"  {name} ...", end="", flush=True)
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - one failing figure must not lose the others
            print(f" FAILED: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(file=sys.stderr)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            print(f" {time.perf_counter() - t:.1f} s {_brief(result)}", flush=True)
        reps.setdefault(name.split("#")[0], []).append(result)

    for rep in range(sizes.reps):  # interleaved: every figure and its baseline once per repetition
        print(f"repetition {rep + 1}/{sizes.reps}", flush=True)
        if "ingest" in sections:
            step("ceiling#", lambda: ceiling_rep(run, rep, sizes.ingest))
            step("ingest#", lambda: ingest_rep(run, rep, sizes.ingest))
        if "write" in sections:
            step("write:store#", lambda: write_store_rep(run, rep, sizes.writes, sizes.concurrency))
            for mode in WRITE_MODES:
                step(f"write:{mode}#", lambda mode=mode: write_rep(run, rep, mode, sizes, tokens))
        if "restore" in sections:
            step("restore#", lambda: restore_rep(run, rep, sizes.restore))
    if "flat" in sections:
        print("memory flatness", flush=True)
        step("flat#", lambda: flat_run(run, sizes.flat))
    data["machine"]["load_after"] = os.getloadavg()
    data["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return data


def _brief(result: dict) -> str:
    keys = ("events_per_s", "store", "counter_insert_per_s", "req_per_s", "p99_ms", "e2e_events_per_s",
            "listener_dl_per_s", "publisher_dl_per_s")
    return " ".join(f"{k}={result[k]:.1f}" for k in keys if isinstance(result.get(k), (int, float)))


# ==== the table ====

def values(data: dict, section: str, key: str, sub: str | None = None) -> list[float]:
    found = []
    for rep in data["reps"].get(section, []):
        value = rep.get(key)
        if sub is not None and isinstance(value, dict):
            value = value.get(sub)
        if isinstance(value, (int, float)):
            found.append(float(value))
    return found


def fmt(x: float, unit: str = "") -> str:
    if x != x:
        return "—"
    text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"
    return text + unit


def spread(v: list[float]) -> str:
    return f"{fmt(min(v))}–{fmt(max(v))}" if len(v) > 1 else ""


def build_rows(data: dict) -> list[list[str]]:
    """[figure, N, median, spread, baseline (median), ratio, target / status]."""
    s = data["sizes"]
    rows: list[list[str]] = []

    def row(figure, n, v, base_label, base_v, target="", unit="", ratio_fmt="{:.2f}×", check=None):
        m, b = median(v), median(base_v) if base_v is not None else float("nan")
        ratio = m / b if b == b and b else float("nan")
        status = ""
        if check is not None and ratio == ratio:
            status = " ✅" if check(m, ratio) else " ❌"
        rows.append([figure, n, fmt(m, unit), spread(v), f"{base_label} {fmt(b, unit)}" if base_label else "—",
                     ratio_fmt.format(ratio) if ratio == ratio else "—", (target + status).strip()])

    n = f"{s['ingest']:,}"
    ceiling = values(data, "ceiling", "store")
    row("1a ceiling: raw produce, acks=all idempotent (ev/s)", n, values(data, "ceiling", "produce"), "", None)
    row("1b ceiling: raw consume, no store (ev/s)", n, values(data, "ceiling", "consume"), "", None)
    row("1c ceiling: raw consume + the app's insert_many, commit after (ev/s)", n, ceiling, "", None)
    row("2  listener ingest, `dailyfeed listen` (ev/s)", n,
        values(data, "ingest", "events_per_s"), "1c", ceiling, "≥ 0.5× 1c", check=lambda m, r: r >= 0.5)
    short = [v for v in values(data, "ingest", "stored") if v != s["ingest"]]
    if short:
        rows[-1][6] += f"; stored only {', '.join(f'{v:,.0f}' for v in short)} of {s['ingest']:,}"

    w = f"{s['writes']:,} × {s['concurrency']} clients"
    base = values(data, "write:none", "req_per_s")
    base_p50, base_p99 = values(data, "write:none", "p50_ms"), values(data, "write:none", "p99_ms")
    store_ceiling = values(data, "write:store", "counter_insert_per_s")
    row("3s store alone: counter $inc + insert, 8 threads, pymongo (/s)", w, store_ceiling, "", None)
    store_failures = sum(values(data, "write:store", "counter_insert_failures"))
    if store_failures:
        rows[-1][6] = f"{store_failures:.0f} gave up (no free id)"
    row("3s   store alone: plain insert_one, 8 threads (/s)", w, values(data, "write:store", "insert_per_s"),
        "3s", store_ceiling)
    row("3a write, no publish (FakeTransport) (req/s)", w, base, "3s", store_ceiling)
    row("3a   p50 / p99 latency (ms)", w, base_p50, "", None)
    rows[-1][2], rows[-1][3] = f"{fmt(median(base_p50))} / {fmt(median(base_p99))}", ""
    for mode, label in (("kafka", "3b write, kafka publish (listener off)"),
                        ("kafka+listener", "3c write, kafka + in-app listener (as `serve`)"),
                        ("feign", "3d write, feign to own activity pool"),
                        ("feign@5k", "3e write, feign, 5k activities already stored")):
        section = f"write:{mode}"
        target = "≥ 0.7× 3a (cost ≤ 30 %)" if mode == "kafka" else "report" if mode == "feign" else ""
        if mode == "feign@5k":
            row(f"{label} (req/s)", w, values(data, section, "req_per_s"), "3d",
                values(data, "write:feign", "req_per_s"))
        else:
            row(f"{label} (req/s)", w, values(data, section, "req_per_s"), "3a", base, target,
                check=(lambda m, r: r >= 0.7) if mode == "kafka" else None)
        p50, p99 = values(data, section, "p50_ms"), values(data, section, "p99_ms")
        r50 = median(p50) / median(base_p50) if base_p50 else float("nan")
        r99 = median(p99) / median(base_p99) if base_p99 else float("nan")
        rows.append([f"{label.split(',')[0]}   p50 / p99 latency (ms)", w, f"{fmt(median(p50))} / {fmt(median(p99))}",
                     "", f"3a {fmt(median(base_p50))} / {fmt(median(base_p99))}", f"{r50:.2f}× / {r99:.2f}×", ""])
        errors = sum(values(data, section, "errors"))
        if errors:
            statuses: dict[str, int] = {}
            for rep in data["reps"].get(section, []):
                for status, count in (rep.get("failed_statuses") or {}).items():
                    statuses[status] = statuses.get(status, 0) + count
            no_free_id = sum(values(data, section, "no_free_id"))
            rows[-1][6] = (f"{errors:.0f} failed: " + ", ".join(f"{n} × HTTP {s}" for s, n in sorted(statuses.items()))
                           + (f" ({no_free_id:.0f} × 'no free id')" if no_free_id else ""))

    e2e = values(data, "write:kafka+listener", "e2e_events_per_s")
    row("4a end to end: first POST → last activity stored (ev/s)", w, e2e, "3c req/s",
        values(data, "write:kafka+listener", "req_per_s"))
    d50, d99 = values(data, "write:kafka+listener", "delay_p50_s"), values(data, "write:kafka+listener", "delay_p99_s")
    k50, k99 = values(data, "write:kafka+listener", "p50_ms"), values(data, "write:kafka+listener", "p99_ms")
    rows.append(["4b   post createdAt → activity stored, p50 / p99 (s)", w,
                 f"{fmt(median(d50))} / {fmt(median(d99))}", "",
                 f"3c request {fmt(median(k50) / 1000)} / {fmt(median(k99) / 1000)}",
                 f"{median(d50) / (median(k50) / 1000):.1f}× / {median(d99) / (median(k99) / 1000):.1f}×"
                 if k50 and d50 else "—", ""])

    m = f"{s['restore']:,}"
    row("5a restore-listener (dead letters/s)", m, values(data, "restore", "listener_dl_per_s"),
        "5d", values(data, "restore", "raw_update_per_s"), "≥ 1,000/s", check=lambda v, r: v >= 1000)
    row("5b restore-publisher, republish by kafka (dead letters/s)", m, values(data, "restore", "publisher_dl_per_s"),
        "raw serial send", values(data, "restore", "raw_serial_send_per_s"), "≥ 1,000/s",
        check=lambda v, r: v >= 1000)
    row("5c   recording a dead letter (DeadLetterStore, /s)", m, values(data, "restore", "record_dl_per_s"),
        "5d", values(data, "restore", "raw_update_per_s"))
    row("5d   store: one document updated by _id, pymongo (/s)", m, values(data, "restore", "raw_update_per_s"),
        "insert_many", values(data, "restore", "raw_store_per_s"))

    mib = 1 / 1024
    hwm_base = [v * mib for v in values(data, "write:none", "hwm_kib")]
    row("6a app peak RSS, no publish (MiB)", w, hwm_base, "", None)
    for mode in ("kafka", "kafka+listener", "feign", "feign@5k"):
        row(f"6a app peak RSS, {mode} (MiB)", w, [v * mib for v in values(data, f"write:{mode}", "hwm_kib")],
            "6a none", hwm_base)
    at10 = [v * mib for v in values(data, "ingest", "rss_at", "10%")]
    for share in ("50%", "100%"):
        row(f"6b listener RSS at {share} of ingest (MiB)", n,
            [v * mib for v in values(data, "ingest", "rss_at", share)], "at 10%", at10)
    row("6b listener peak RSS during ingest (MiB)", n, [v * mib for v in values(data, "ingest", "hwm_kib")],
        "at 10%", at10)
    flat = data["reps"].get("flat", [{}])[0]
    if "rss_at" in flat:
        f10 = flat["rss_at"].get("10%", float("nan")) * mib
        for share in ("50%", "100%"):
            row(f"6c flatness, `dailyfeed listen`: RSS at {share} of the run (MiB)", f"{flat['events']:,}",
                [flat["rss_at"].get(share, float("nan")) * mib], "at 10%", [f10], "flat: ≤ 1.10×",
                check=lambda v, r: r <= 1.10)
        row("6c   its ingest rate (ev/s)", f"{flat['events']:,}", [flat["events_per_s"]], "2",
            values(data, "ingest", "events_per_s"))
    return rows


def render(data: dict) -> str:
    rows = build_rows(data)
    head = ["figure", "N", "median", "spread", "baseline (median)", "ratio", "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    mach = data["machine"]
    code = f"code at {mach.get('commit', '?')}"
    if mach.get("uncommitted"):
        code += f" plus uncommitted changes to {', '.join(mach['uncommitted'])}"
    notes = (f"Run {data['run']} {data['started']} → {data['finished']}, {code}; "
             f"{data['sizes']['reps']} repetitions, median shown; {mach['cpus']} × {mach['cpu']}; "
             f"Python {mach['python']}; load average before "
             f"{mach['load_before'][0]:.2f}, after {mach['load_after'][0]:.2f}; CPU busy before start "
             f"{mach['busy_before'] * 100:.0f} % (others' work); scale {data['sizes']['scale']}.")
    return "\n".join(lines) + "\n\n" + notes + "\n"


def write_docs(table: str) -> None:
    text = DOCS.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    DOCS.write_text(text[:start] + "\n" + table + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="dailyfeed benchmarks against the real services")
    parser.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1")),
                        help="multiply every N (env BENCH_SCALE; default 1)")
    parser.add_argument("--quick", action="store_true", help="scale 0.25 and a 10k-event flatness run")
    parser.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "3")))
    parser.add_argument("--flat-events", type=int, default=None, help="events of the flatness run (default 100k)")
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", "ingest,write,restore,flat"),
                        help="comma-separated sections: ingest,write,restore,flat")
    parser.add_argument("--write-docs", action="store_true", default=os.environ.get("BENCH_WRITE_DOCS") == "1",
                        help="put the table into docs/benchmarks.md")
    parser.add_argument("--render", type=Path, help="only print the table of a saved results JSON")
    args = parser.parse_args(argv)

    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    # aiokafka warns (and retries) when a topic created a moment ago has no leader yet: noise here
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    scale = 0.25 if args.quick else args.scale
    sizes = Sizes(scale, args.reps, args.flat_events if args.flat_events or not args.quick else 10_000)
    run = Run.new()
    sections = set(args.only.split(","))
    print(f"dailyfeed bench run {run.id}: scale {scale}, {sizes.reps} repetitions, sections {sorted(sections)}",
          flush=True)
    started = time.perf_counter()
    try:
        data = run_bench(sizes, sections, run)
    finally:
        dropped, deleted = common.drop_databases(run), common.delete_topics(run)
        print(f"cleaned up: {len(dropped)} databases, {len(deleted)} topics", flush=True)
    data["wall_s"] = time.perf_counter() - started
    path = RESULTS / f"{datetime.now():%Y%m%d-%H%M%S}-{run.id}.json"
    common.save_json(path, data)
    table = render(data)
    print()
    print(table)
    print(f"raw results: {path.relative_to(common.REPO)}; wall time {data['wall_s']:.0f} s")
    (RESULTS / "latest.md").write_text(table)
    if args.write_docs:
        write_docs(table)
        print(f"table written to {DOCS.relative_to(common.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
