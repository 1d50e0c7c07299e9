"""`make bench`: dailyfeed against the real Kafka and FerretDB, one table of figures with their ratios.

    .venv/bin/python -m bench.harness [--quick] [--scale X] [--reps N]
                                      [--only ingest,write,restore,outbox,flat,read,scale]
    .venv/bin/python -m bench.harness --render bench/results/<run>.json

Every figure is paired with a baseline measured in the same run, each measurement is repeated (--reps, default 3)
with the repetitions of different figures interleaved, and the median is reported with the spread (min-max).
The app and the listener run in processes of their own, so the load generator never shares their GIL.

Sections, one module each (docs/benchmarks.md explains each figure):
  bench.ceiling  1 raw aiokafka produce / consume and the app's insert_many via pymongo, no app
  bench.ingest   2 `dailyfeed listen` on N events already on the topic; 2p the same for its peer (bench.peer,
                   FastStream's batch subscriber)
  bench.write    3 POST /api/posts: the store alone; no publish; kafka; kafka + in-app listener; feign (also with
                   5k activities stored);  4 first POST → last activity stored (kafka + in-app listener)
  bench.restore  5 restore-listener and restore-publisher over M dead letters
  bench.memory   6 peak RSS of app and listener; RSS flatness of the listener over a long run
  bench.readpath 7 four GET endpoints over HTTP at 1k / 10k / 50k stored activities, beside their raw queries
  bench.scaleout 8 two apps and two listeners (one group) against one of each: writes, ingest, exactly once
  bench.outbox   9 the publication registry: the kafka write with it against the bare write; the relay's rate
bench.report builds the table from the saved results; this module only runs the sections and prints it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from bench import ceiling, common, guard, ingest, memory, outbox, readpath, report, restore, scaleout, write
from bench.common import RESULTS, Run, Sizes

SECTIONS = "ingest,write,restore,outbox,flat,read,scale"
# the table's rows, in order
TABLE = (ceiling.rows, ingest.rows, write.rows, restore.rows, memory.rows, readpath.rows, scaleout.rows, outbox.rows)


def machine_notes() -> dict[str, Any]:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=common.REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    dirty = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if line[3:].startswith("dailyfeed/") and not line.startswith("??")
    ]
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": dirty,
        "dailyfeed": os.environ.get("BENCH_DAILYFEED"),
        "load_before": os.getloadavg(),
        "busy_before": busy_share(1.0),
    }


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

    data: dict[str, Any] = {
        "run": run.id,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sizes": vars(sizes),
        "machine": machine_notes(),
        "reps": {},
    }
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
            print(f" {time.perf_counter() - t:.1f} s {brief(result)}", flush=True)
        reps.setdefault(name.split("#")[0], []).append(result)

    for rep in range(sizes.reps):  # interleaved: every figure and its baseline once per repetition
        print(f"repetition {rep + 1}/{sizes.reps}", flush=True)
        if "ingest" in sections:
            step("ceiling#", lambda: ceiling.ceiling_rep(run, rep, sizes.ingest))
            consumers = [("ingest#", ingest.ingest_rep), ("peer#", ingest.peer_rep)]
            for name, consumer_rep in consumers[:: 1 if rep % 2 == 0 else -1]:  # which goes first alternates
                step(name, lambda consumer_rep=consumer_rep: consumer_rep(run, rep, sizes.ingest))
        if "write" in sections:
            step("write:store#", lambda: write.write_store_rep(run, rep, sizes.writes, sizes.concurrency))
            for mode in write.WRITE_MODES:
                step(f"write:{mode}#", lambda mode=mode: write.write_rep(run, rep, mode, sizes, tokens))
        if "restore" in sections:
            step("restore#", lambda: restore.restore_rep(run, rep, sizes.restore))
        if "outbox" in sections:  # the bare write, the kafka write with the registry, the relay beside 5d's update
            for mode in outbox.WRITES:
                step(f"outbox:{mode}#", lambda mode=mode: outbox.write_rep(run, rep, mode, sizes, tokens))
            step("outbox:relay#", lambda: outbox.relay_rep(run, rep, sizes.restore))
        if "scale" in sections:
            for procs in scaleout.PROCESSES:
                step(f"scale:{procs}#", lambda procs=procs: scaleout.scale_rep(run, rep, procs, sizes, tokens))
    if "flat" in sections:
        print("memory flatness", flush=True)
        step("flat#", lambda: memory.flat_run(run, sizes.flat))
    if "read" in sections:  # once: its sizes are its repetitions, and its samples bring their own p50 / p99
        print("read paths", flush=True)
        step("read#", lambda: readpath.read_run(run, sizes, tokens))
    data["machine"]["load_after"] = os.getloadavg()
    data["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return data


def brief(result: dict) -> str:
    keys = (
        "events_per_s",
        "store",
        "counter_insert_per_s",
        "req_per_s",
        "p99_ms",
        "e2e_events_per_s",
        "listener_dl_per_s",
        "publisher_dl_per_s",
    )
    return " ".join(f"{k}={result[k]:.1f}" for k in keys if isinstance(result.get(k), (int, float)))


def render(data: dict) -> str:
    return report.render(data, TABLE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="dailyfeed benchmarks against the real services")
    parser.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get("BENCH_SCALE", "1")),
        help="multiply every N (env BENCH_SCALE; default 1)",
    )
    parser.add_argument("--quick", action="store_true", help="scale 0.25 and a 10k-event flatness run")
    parser.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "3")))
    parser.add_argument("--flat-events", type=int, default=None, help="events of the flatness run (default 100k)")
    parser.add_argument(
        "--only", default=os.environ.get("BENCH_ONLY", SECTIONS), help=f"comma-separated sections: {SECTIONS}"
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        default=os.environ.get("BENCH_WRITE_DOCS") == "1",
        help="put the table into docs/benchmarks.md",
    )
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
    print(
        f"dailyfeed bench run {run.id}: scale {scale}, {sizes.reps} repetitions, sections {sorted(sections)}",
        flush=True,
    )
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
    committed = guard.committed_results()  # read before this run's file joins the history
    if args.write_docs:
        report.write_docs(table)
        common.save_json(common.REPO / guard.HISTORY / path.name, data)
        print(
            f"table written to {common.DOCS.relative_to(common.REPO)}, results to {guard.HISTORY}/{path.name} "
            "(commit both: the guard compares the next runs with it)"
        )
    print()
    print(guard.summary(data, TABLE, committed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
