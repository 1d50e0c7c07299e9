"""Section 6, memory: peak RSS of the app per write mode and of the listener during the ingest (measured by
those sections), and flatness: many events through `dailyfeed listen` into the real store, RSS sampled."""

from __future__ import annotations

import asyncio
from typing import Any

from bench import common
from bench.common import RESULTS, Run
from bench.ingest import consuming_at, listener_env, rss_at, start_listener, watch_group
from bench.report import Table
from bench.write import write_label


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
    log_path = RESULTS / "logs" / f"{run.id}-listen-flat.log"
    proc = start_listener(listener_env(run, label, prefix, group), log_path)
    samples: list[tuple[float, int, int]] = []
    try:
        common.wait_for_line(log_path, r"listener consuming", proc, timeout=60)
        done_at = watch_group(
            group, n, [proc], samples, timeout=max(300.0, n / 50), interval=0.05, log_paths=[log_path]
        )
        hwm = common.proc_status(proc.pid).get("VmHWM", 0)
    finally:
        common.stop_process(proc)
    started = consuming_at(log_path)
    return {
        "events": n,
        "events_per_s": n / (done_at - started),
        "rss_at": rss_at(samples, n),
        "hwm_kib": hwm,
        "rss_curve": [(done, rss) for _, done, rss in samples[:: max(1, len(samples) // 20)]],
    }


def rows(table: Table) -> None:
    mib = 1 / 1024
    w, n = write_label(table.sizes), f"{table.sizes['ingest']:,}"
    hwm_base = [v * mib for v in table.values("write:none", "hwm_kib")]
    table.figure("6a app peak RSS, no publish (MiB)", w, hwm_base)
    for mode in ("kafka", "kafka+listener", "feign", "feign@5k"):
        table.figure(
            f"6a app peak RSS, {mode} (MiB)",
            w,
            [v * mib for v in table.values(f"write:{mode}", "hwm_kib")],
            "6a none",
            hwm_base,
        )
    at10 = [v * mib for v in table.values("ingest", "rss_at", "10%")]
    for share in ("50%", "100%"):
        table.figure(
            f"6b listener RSS at {share} of ingest (MiB)",
            n,
            [v * mib for v in table.values("ingest", "rss_at", share)],
            "at 10%",
            at10,
        )
    table.figure(
        "6b listener peak RSS during ingest (MiB)",
        n,
        [v * mib for v in table.values("ingest", "hwm_kib")],
        "at 10%",
        at10,
    )
    flat = (table.reps("flat") or [{}])[0]
    if "rss_at" in flat:
        f10 = flat["rss_at"].get("10%", float("nan")) * mib
        for share in ("50%", "100%"):
            table.figure(
                f"6c flatness, `dailyfeed listen`: RSS at {share} of the run (MiB)",
                f"{flat['events']:,}",
                [flat["rss_at"].get(share, float("nan")) * mib],
                "at 10%",
                [f10],
                "flat: ≤ 1.10×",
                check=lambda v, r: r <= 1.10,
            )
        table.figure(
            "6c   its ingest rate (ev/s)",
            f"{flat['events']:,}",
            [flat["events_per_s"]],
            "2",
            table.values("ingest", "events_per_s"),
        )
