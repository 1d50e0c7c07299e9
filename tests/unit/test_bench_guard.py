"""The guard at the end of `make bench` (bench/guard.py): which rows moved against the last committed results.
Made-up results files, small ones: this is the comparison's logic, no timing."""

import json
import subprocess

import pytest

from bench import guard, report
from bench.common import Sizes
from bench.harness import TABLE


def results(run: str, ceiling: list[float], listener: list[float], peer: list[float] | None = None) -> dict:
    """A results file of an ingest-only run: the 1c ceiling and the listener, per repetition."""
    reps = {
        "ceiling": [
            {"store": c, "store_unique_index": c * 1.5, "produce": 30_000, "consume": 300_000} for c in ceiling
        ],
        "ingest": [{"events_per_s": v, "stored": 20_000} for v in listener],
    }
    if peer is not None:
        reps["peer"] = [{"events_per_s": v, "stored": 20_000} for v in peer]
    return {
        "run": run,
        "started": "2026-12-05T09:00:00+00:00",
        "finished": "2026-12-05T09:01:00+00:00",
        "sizes": vars(Sizes(1.0, len(ceiling), None)),
        "reps": reps,
        "machine": {
            "cpus": 2,
            "cpu": "test",
            "python": "3.11",
            "commit": run,
            "load_before": [1, 1, 1],
            "load_after": [1, 1, 1],
            "busy_before": 0.1,
        },
    }


def moved(now: dict, before: dict) -> dict[str, guard.Moved]:
    return {m.figure: m for m in guard.compare(report.rows(now, TABLE), report.rows(before, TABLE)).moved}


LISTENER = "2  listener ingest, `dailyfeed listen` (ev/s)"


def test_a_regression_like_issue_20s_is_reported_with_both_bands():
    before = results("a31321e", [12_500, 12_739, 12_600], [10_666, 9_916, 10_300])  # 0.78-0.85×
    now = results("main", [14_543, 12_370, 13_000], [6_522, 6_868, 6_700])  # 0.45-0.56×

    found = moved(now, before)

    assert list(found) == [LISTENER]
    row = found[LISTENER]
    assert row.before == pytest.approx(10_300 / 12_600) and row.now == pytest.approx(6_700 / 13_000)
    assert row.before_band == pytest.approx((9_916 / 12_739, 10_666 / 12_500))
    assert row.now_band == pytest.approx((6_522 / 14_543, 6_868 / 12_370))
    assert "down 0.30" in row.line()
    text = guard.summary(now, TABLE, ("bench/history/x.json", before))
    assert "1 rows moved by more than their noise band" in text and LISTENER in text


def test_a_change_within_the_wider_band_is_not_a_move():
    before = results("a", [10_000, 10_000, 10_000], [9_000, 9_100, 9_200])  # band 0.90-0.92
    now = results("b", [10_000, 10_000, 10_000], [8_000, 8_700, 9_400])  # median 0.87: within its own band's width
    assert moved(now, before) == {}
    assert "no row moved" in guard.summary(now, TABLE, ("bench/history/a.json", before))


def test_a_change_past_both_bands_is_a_move_up_as_well_as_down():
    before = results("a", [10_000, 10_000, 10_000], [9_000, 9_100, 9_200], peer=[9_000, 9_000, 9_100])
    now = results("b", [10_000, 10_000, 10_000], [9_000, 9_100, 9_200], peer=[7_000, 7_050, 7_100])

    found = moved(now, before)

    peer, against = (
        found["2p peer: FastStream batch subscriber + insert_many (ev/s)"],
        found["2   `dailyfeed listen` against the peer (ev/s)"],
    )
    assert peer.change < 0 and against.change > 0 and "up" in against.line()
    assert LISTENER not in found


def test_single_repetitions_are_not_judged_and_new_rows_are_named():
    before = results("a", [10_000], [9_000])
    now = results("b", [10_000], [5_000], peer=[6_000])

    result = guard.compare(report.rows(now, TABLE), report.rows(before, TABLE))

    assert result.moved == []
    assert any(name.startswith(LISTENER) for name in result.unjudged)
    assert any(name.startswith("2p peer") for name in result.new)


def test_the_last_committed_results_file_is_the_yardstick(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    history = tmp_path / "bench" / "history"
    history.mkdir(parents=True)
    assert guard.committed_results(tmp_path) is None
    for name in ("20261201-100000-old.json", "20261204-100000-last.json"):
        (history / name).write_text(json.dumps({"run": name.split("-")[-1][:-5]}))
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results")
    (history / "20261205-100000-uncommitted.json").write_text(json.dumps({"run": "uncommitted"}))
    (history / "20261204-100000-last.json").write_text(json.dumps({"run": "edited, not committed"}))

    path, data = guard.committed_results(tmp_path)

    assert path == "bench/history/20261204-100000-last.json" and data == {"run": "last"}


def test_rows_are_matched_by_figure_and_size_whatever_number_of_samples_they_took():
    def row(n: str, ratio: float) -> report.Row:
        return report.Row("7a feed: HTTP p50 / p99 (ms)", n, "", ratio_value=ratio, band=(ratio - 0.05, ratio + 0.05))

    result = guard.compare([row("1,000 activities, 18 samples", 0.5)], [row("1,000 activities, 30 samples", 0.9)])

    assert [(m.figure, m.n, m.before, m.now) for m in result.moved] == [
        ("7a feed: HTTP p50 / p99 (ms)", "1,000 activities", 0.9, 0.5)
    ]
