"""Section 2, listener ingest: `dailyfeed listen` on N events already on a fresh date topic, timed from its
`listener consuming` log line until its group has committed N offsets (it commits only after a batch is stored).
The helpers that start and watch listener processes serve the memory and scale-out sections too."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from bench import common
from bench.common import RESULTS, Run
from bench.report import Table

LOG_TIME = r"^(\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}:\d{{2}}),(\d{{3}}) .*{what} consuming"
STORE_FAILED = re.compile(r"storing \d+ activities failed.*")


def listener_env(run: Run, label: str, prefix: str, group: str, **settings: Any) -> dict[str, str]:
    """The environment of a `dailyfeed listen` on the run's database `label`, topics `prefix`, group `group`."""
    return common.bench_env(
        **{"mongo.database": run.db(label), "kafka.topic.prefix": prefix, "kafka.consumer.group-id": group, **settings}
    )


def start_listener(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`dailyfeed listen` in a process of its own, its output in log_path."""
    return common.start_process([common.DAILYFEED, "listen"], env, log_path)


def ingest_rep(run: Run, rep: int, n: int) -> dict[str, Any]:
    """N events already on the topic, then `dailyfeed listen`: time from its consumer starting until the group
    has committed all N (it commits only after a batch is stored), RSS sampled meanwhile."""
    label = f"l{rep}"
    prefix = run.prefix(label)
    return consumer_rep(
        run,
        label,
        n,
        lambda log_path: start_listener(listener_env(run, label, prefix, run.group(label)), log_path),
        "listener",
        f"listen-{rep}",
    )


def peer_rep(run: Run, rep: int, n: int) -> dict[str, Any]:
    """The same for the peer (bench.peer: FastStream's batch subscriber), on its own copy of the topic data."""
    label = f"p{rep}"
    topic = common.today_topic(run.prefix(label))
    command = [
        common.PYTHON,
        "-m",
        "bench.peer",
        "--topic",
        topic,
        "--group",
        run.group(label),
        "--database",
        run.db(label),
    ]
    return consumer_rep(
        run,
        label,
        n,
        lambda log_path: common.start_process(command, common.bench_env(), log_path),
        "peer",
        f"peer-{rep}",
    )


def consumer_rep(
    run: Run, label: str, n: int, start: Callable[[Path], subprocess.Popen], what: str, log_name: str
) -> dict[str, Any]:
    """N events on a fresh date topic, then a consumer process started by `start`: time from its `{what}
    consuming` line until its group (`run.group(label)`) has committed all N, RSS sampled meanwhile."""
    topic = common.today_topic(run.prefix(label))
    group = run.group(label)
    events = common.make_events(n)

    async def setup() -> None:
        await common.create_topic(topic)
        await common.produce(topic, events)

    asyncio.run(setup())
    log_path = RESULTS / "logs" / f"{run.id}-{log_name}.log"
    proc = start(log_path)
    samples: list[tuple[float, int, int]] = []  # (time, committed, rss KiB)
    try:
        common.wait_for_line(log_path, f"{what} consuming", proc, timeout=60)
        done_at = watch_group(group, n, [proc], samples, timeout=max(120.0, n / 5), log_paths=[log_path])
        hwm = common.proc_status(proc.pid).get("VmHWM", 0)
    finally:
        common.stop_process(proc)
    started = consuming_at(log_path, what)
    client = common.mongo()
    try:
        stored = client[run.db(label)]["member_activities"].count_documents({})
    finally:
        client.close()
    return {
        "events_per_s": n / (done_at - started),
        "seconds": done_at - started,
        "stored": stored,
        "hwm_kib": hwm,
        "rss_at": rss_at(samples, n),
    }


def consuming_at(log_path: Path, what: str = "listener") -> float:
    """When the consumer logged `{what} consuming` (its consumer started), as a Unix time."""
    match = re.search(LOG_TIME.format(what=what), log_path.read_text(), re.M)
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(match.group(2)) / 1000


def watch_group(
    group: str,
    n: int,
    procs: list[subprocess.Popen],
    samples: list,
    timeout: float,
    interval: float = 0.02,
    log_paths: list[Path] = (),
) -> float:
    """Poll the group's committed offsets until they reach n; returns the wall time it did. `samples` gets
    (time, committed, summed RSS KiB of procs) every 100 ms. Gives up at once when a listener logs a failed
    store: from then on it only retries (and the store is busy with the retries)."""

    async def go() -> float:
        deadline = time.monotonic() + timeout
        last_rss = 0.0
        async with common.OffsetWatcher(group) as watcher:
            while time.monotonic() < deadline:
                done = await watcher.committed()
                now = time.time()
                if done >= n or now - last_rss >= 0.1:
                    rss = sum(common.proc_status(proc.pid).get("VmRSS", 0) for proc in procs)
                    samples.append((now, done, rss))
                    last_rss = now
                if done >= n:
                    return now
                for proc in procs:
                    if proc.poll() is not None:
                        raise RuntimeError(f"the listener ended with {proc.returncode} after {done} of {n} records")
                if len(samples) % 10 == 0:
                    for log_path in log_paths:
                        failed = STORE_FAILED.search(log_path.read_text())
                        if failed:
                            raise RuntimeError(
                                f"the listener could not store a batch after {done} of {n} records: "
                                f"{failed.group(0)[:200]}"
                            )
                await asyncio.sleep(interval)
        raise TimeoutError(f"group {group} committed fewer than {n} records within {timeout:.0f} s")

    return asyncio.run(go())


def rss_at(samples: list[tuple[float, int, int]], n: int) -> dict[str, int]:
    """RSS (KiB) at the first sample at or past 10 %, 50 % and 100 % of the run."""
    found = {}
    for share in (10, 50, 100):
        for _, done, rss in samples:
            if done >= n * share / 100 and rss:
                found[f"{share}%"] = rss
                break
    return found


def rows(table: Table) -> None:
    n = table.sizes["ingest"]
    listener = table.values("ingest", "events_per_s")
    rows = [
        table.figure(
            "2  listener ingest, `dailyfeed listen` (ev/s)",
            f"{n:,}",
            listener,
            "1c",
            table.values("ceiling", "store"),
            "≥ 0.9× 1c",
            check=lambda m, r: r >= 0.9,
        )
    ]
    if table.reps("peer"):
        peer = table.values("peer", "events_per_s")
        rows.append(
            table.figure(
                "2p peer: FastStream batch subscriber + insert_many (ev/s)",
                f"{n:,}",
                peer,
                "1c",
                table.values("ceiling", "store"),
            )
        )
        rows.append(
            table.figure(
                "2   `dailyfeed listen` against the peer (ev/s)",
                f"{n:,}",
                listener,
                "2p",
                peer,
                "≥ 1.0× 2p",
                check=lambda m, r: r >= 1.0,
            )
        )
    for row, section in zip(rows, ("ingest", "peer")):
        short = [v for v in table.values(section, "stored") if v != n]
        if short:
            row.target += f"; stored only {', '.join(f'{v:,.0f}' for v in short)} of {n:,}"
