"""Profiles behind the figures that miss their targets (docs/benchmarks.md, "Profiles").

  .venv/bin/python -m bench.profile restore [--m 200]      pyinstrument + store commands per dead letter
  .venv/bin/python -m bench.profile write --mode kafka     py-spy on the app process under the write load
  .venv/bin/python -m bench.profile listener [--n 20000]   py-spy --gil on `dailyfeed listen` during an ingest

Needs the bench extra (pyinstrument, py-spy) and the real services, like `make bench`. Output goes to stdout and
bench/results/profiles/.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import signal
import subprocess
import threading
import time
from pathlib import Path

from pymongo import monitoring

from bench import common, harness, write
from bench.app import services
from bench.common import RESULTS, Run, Sizes
from bench.ingest import listener_env, watch_group

OUT = RESULTS / "profiles"
PY_SPY = str(Path(common.PYTHON).parent / "py-spy")


class CommandCounter(monitoring.CommandListener):
    """Counts the commands sent to the store, by name (registered before any client is made)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()
        self.active = False

    def started(self, event) -> None:
        pass

    def succeeded(self, event) -> None:
        if self.active:
            self.counts[event.command_name] += 1
            self.seconds[event.command_name] += event.duration_micros / 1e6

    def failed(self, event) -> None:
        self.succeeded(event)

    def report(self, per: int, label: str) -> str:
        total_s = sum(self.seconds.values())
        lines = [
            f"{label}: {sum(self.counts.values()) / per:.1f} store commands per dead letter, "
            f"{total_s:.1f} s in the store"
        ]
        for name, count in self.counts.most_common():
            lines.append(f"  {name:<16} {count / per:6.2f} per dead letter   {self.seconds[name]:7.2f} s")
        self.counts.clear()
        self.seconds.clear()
        return "\n".join(lines)


def profile_restore(m: int) -> None:
    counter = CommandCounter()
    monitoring.register(counter)
    from pyinstrument import Profiler

    from dailyfeed.restore.jobs import ListenerRestore, PublisherRestore, RestoreOptions
    from dailyfeed.transport.base import TransportUnavailable

    run = Run.new()
    prefix = run.prefix("prof")
    dailyfeed = services(
        {
            "mongo.uri": common.MONGO_URI,
            "mongo.database": run.db("prof"),
            "kafka.bootstrap-servers": common.BOOTSTRAP,
            "kafka.topic.prefix": prefix,
            "publish-type.post-service": "kafka",
            "publish-type.comment-service": "kafka",
        }
    )
    store = dailyfeed.dead_letters
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        events = common.make_events(m)
        counter.active = True
        for i, event in enumerate(events):
            store.record_listener_failure(
                origin={"topic": "t", "partition": 0, "offset": i, "key": event.message_key, "value": event.to_bytes()},
                error=RuntimeError("bench"),
                event=event,
            )
        print(counter.report(m, "recording a listener dead letter"))
        for label, job in (
            ("restore-listener", ListenerRestore(store, dailyfeed.activity_service, RestoreOptions())),
            ("restore-publisher", None),
        ):
            if job is None:
                counter.active = False
                for event in common.make_events(m, start=10**6):
                    store.record_publisher_failure("kafka", event, TransportUnavailable("bench"))
                dailyfeed.transports["post-service"].publish(common.make_events(1, start=10**7)[0])
                job = PublisherRestore(store, dailyfeed.transports, RestoreOptions())
            counter.active = True
            profiler = Profiler(interval=0.001)
            started = time.perf_counter()
            profiler.start()
            summary = job.run()
            profiler.stop()
            seconds = time.perf_counter() - started
            print(f"\n=== {label}: {summary.line()} in {seconds:.1f} s = {m / seconds:.0f} dead letters/s")
            print(counter.report(m, label))
            text = profiler.output_text(unicode=True, color=False, show_all=False)
            (OUT / f"{label}.txt").write_text(text)
            print(text[:6000])
    finally:
        dailyfeed.close()
        common.drop_databases(run)
        common.delete_topics(run)


def py_spy_record(pid: int, seconds: float, name: str) -> Path:
    """Sample every thread of `pid` (GIL holders and waiters) into a collapsed-stack file; print the top frames."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.collapsed"
    subprocess.run(
        [
            PY_SPY,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(path),
            "--nonblocking",
            "--idle",
        ],
        check=False,
        capture_output=True,
    )
    summarise(path)
    return path


def summarise(path: Path, top: int = 25, by_thread: bool = False) -> None:
    """Self and inclusive sample shares of the busiest functions in a collapsed-stack file; `by_thread` for a
    file recorded with --threads (each stack starts with its thread): the threads' shares first."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        if by_thread:
            threads[frames[0].split(": ", 1)[-1]] += n
            frames = frames[1:] or ["(no Python frame)"]
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].split("site-packages/")[-1] + ")"
            if " (" in f
            else f
            for f in frames
        ]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    print(f"\n--- {path.name}: {total} samples ---")
    if by_thread:
        print("threads:")
        for thread, n in threads.most_common():
            print(f"  {n / total * 100:5.1f} %  {thread}")
    print("self time:")
    for frame, n in own.most_common(top):
        print(f"  {n / total * 100:5.1f} %  {frame}")
    print("inclusive (dailyfeed frames):")
    for frame, n in [(f, n) for f, n in incl.most_common() if "dailyfeed/" in f][:top]:
        print(f"  {n / total * 100:5.1f} %  {frame}")


def profile_write(mode: str, requests: int) -> None:
    from dailyfeed.config import load_settings
    from dailyfeed.tokens import issue_member_token

    run = Run.new()
    sizes = Sizes(1.0, 1, None)
    sizes.writes = requests
    secret = load_settings()["auth.jwt-secret"]
    tokens = {m: issue_member_token(secret, m, 3600) for m in range(1, 9)}
    found: dict[str, int] = {}
    original = common.start_process

    def spying_start(args, env, log_path):
        proc = original(args, env, log_path)
        found["pid"] = proc.pid
        return proc

    common.start_process = spying_start  # bench.write starts the app through common.start_process
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(write.write_rep(run, 0, mode, sizes, tokens)))
    try:
        worker.start()
        while "pid" not in found:
            time.sleep(0.05)
        time.sleep(4)  # start-up and warm-up
        py_spy_record(found["pid"], 10, f"write-{mode.replace('+', '-')}")
        worker.join()
        print(f"\nthat run: {harness.brief(result)}")
    finally:
        common.start_process = original
        common.drop_databases(run)
        common.delete_topics(run)


def profile_listener(n: int, dailyfeed: str, name: str) -> None:
    """The consume path's CPU: py-spy on `dailyfeed listen` (the console script `dailyfeed`, of this checkout or
    another venv's) during the bench's ingest (section 2: n events already on a fresh date topic, default
    settings), sampling only the thread that holds the GIL (`--gil`): on-CPU Python work, never a wait on Kafka
    or the store. Printed per thread and function, as shares of those samples."""
    run = Run.new()
    label = "prof"
    prefix = run.prefix(label)
    topic = common.today_topic(prefix)
    group = run.group(label)

    async def setup() -> None:
        await common.create_topic(topic)
        await common.produce(topic, common.make_events(n))

    asyncio.run(setup())
    log = RESULTS / "logs" / f"{run.id}-listen-profile.log"
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.collapsed"
    proc = common.start_process([dailyfeed, "listen"], listener_env(run, label, prefix, group), log)
    try:
        common.wait_for_line(log, r"listener consuming", proc)
        spy = subprocess.Popen(
            [
                PY_SPY,
                "record",
                "--pid",
                str(proc.pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(path),
                "--gil",
                "--threads",
                "--duration",
                "600",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.time()
        done_at = watch_group(group, n, [proc], [], timeout=max(120.0, n / 5))
        spy.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
        spy.wait(30)
    finally:
        common.stop_process(proc)
        common.drop_databases(run)
        common.delete_topics(run)
    print(f"{n:,} events in {done_at - started:.2f} s while sampled ({n / (done_at - started):,.0f} ev/s)")
    summarise(path, by_thread=True)


def main() -> None:
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # leader-not-yet warnings of just-created topics
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("restore").add_argument("--m", type=int, default=200)
    write_cmd = sub.add_parser("write")
    write_cmd.add_argument("--mode", choices=list(write.WRITE_MODES), default="kafka")
    write_cmd.add_argument("--requests", type=int, default=600)
    listener = sub.add_parser("listener")
    listener.add_argument("--n", type=int, default=20_000)
    listener.add_argument(
        "--dailyfeed",
        default=common.DAILYFEED,
        help="the `dailyfeed` console script to run (another venv's: another version's listener)",
    )
    listener.add_argument("--name", default="listener", help="the profile's file name in bench/results/profiles")
    args = parser.parse_args()
    if args.what == "restore":
        profile_restore(args.m)
    elif args.what == "write":
        profile_write(args.mode, args.requests)
    else:
        profile_listener(args.n, args.dailyfeed, args.name)


if __name__ == "__main__":
    main()
