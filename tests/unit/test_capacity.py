"""The capacity model (bench/capacity.py): its formulas against worked examples computed by hand here, the reading
of the benchmark table by row name, and the CLI on small results files and on the committed ones."""

from __future__ import annotations

import json
import math

import pytest

from bench import capacity
from bench.capacity import Figure, Inputs, Measure, Target

TABLE = """# Benchmarks

| figure | N | median | spread | baseline (median) | ratio | target |
|---|---|---|---|---|---|---|
| outside the markers (ev/s) | 1 | 999 | | — | — | |

<!-- bench:table:start -->
| figure | N | median | spread | baseline (median) | ratio | target |
|---|---|---|---|---|---|---|
| 1a ceiling: raw produce, acks=all idempotent (ev/s) | 20,000 | 24 | 20–30 | — | — |  |
| 2  listener ingest, `dailyfeed listen` (ev/s) | 20,000 | 10 | 9–11 | 1c 12 | 0.8× |  |
| 3a write, no publish (FakeTransport) (req/s) | 600 | 2 | | — | — |  |
| 3a   p50 / p99 latency (ms) | 600 | 16.3 / 162 | | — | — |  |
| 3b write, kafka publish (listener off) (req/s) | 600 | 4 | | 3a 2 | 2× |  |
| 3d write, feign to own activity pool (req/s) | 600 | 1,250.5 | | 3a 2 | — |  |
| 3s   store alone: plain insert_one, 8 threads (/s) | 600 | 40 | | — | — |  |
| 5b restore-publisher, republish by kafka (dead letters/s) | 300 | 27 | | — | — |  |
| 5c   recording a dead letter (DeadLetterStore, /s) | 300 | 18 | | — | — |  |
| 7a followings feed: HTTP p50 / p99 (ms) | 500 activities | 126 / 202 | | raw 107 | — |  |
| 7a followings feed: HTTP p50 / p99 (ms) | 5,000 activities | 741 / 838 | | raw 786 | — |  |
<!-- bench:table:end -->
"""

# One day of 86,400 s makes the rates round: 86,400 members, half active, 10 actions each = 432,000 a day = 5/s.
EXAMPLE = dict(
    members=86_400,
    daily_active=0.5,
    actions=10,
    peak_factor=2,
    retention_days=2,
    outage_minutes=10,
    feed_reads=4,
    followings=50,
    utilization=0.5,
    restore_processes=2,
    title_chars=10,
    post_chars=40,
    comment_chars=20,
    reads_per_write=1.0,
    shard_storage_gib=1.0,
    mix=(("posts", 0.1), ("comments", 0.2), ("post_likes", 0.4), ("comment_likes", 0.2), ("follows", 0.1)),
)

STORAGE = {
    "run": "r1",
    "started": "2026-12-05T08:00:00+00:00",
    "store": {"uri_scheme": "mongodb", "version": "7.0"},
    "collections": {
        "member_activities": {
            "documents": 10,
            "bson_bytes": 300,
            "text_bytes": 0,
            "store_data_bytes": 800,
            "store_index_bytes": {"_id_": 100, "member_newest": 50},
        },
        "posts": {
            "documents": 10,
            "bson_bytes": 500,
            "text_bytes": 100,
            "store_data_bytes": 900,
            "store_index_bytes": {"_id_": 60},
        },
        "kafka_publisher_dead_letters": {
            "documents": 5,
            "bson_bytes": 600,
            "text_bytes": 0,
            "store_data_bytes": 1000,
            "store_index_bytes": {"_id_": 200},
        },
        "outbox": {
            "documents": 5,
            "bson_bytes": 150,
            "text_bytes": 0,
            "store_data_bytes": 300,
            "store_index_bytes": {"_id_": 50},
        },
    },
}
FEED = {
    "run": "f1",
    "load_before": [1.5, 1.0, 1.0],
    "load_after": [2.5, 2.0, 2.0],
    "stores": {
        "ferretdb": {
            "fit": {"base_ms": 1.0, "per_stored_ms": 0.001, "per_matched_ms": 0.01},
            "points": [
                {"per_member": 2, "stored": 1998, "matched": 2, "followings": 1, "raw_ms": 12.4, "samples": 5},
                {"per_member": 2, "stored": 1998, "matched": 1998, "followings": 999, "raw_ms": 1234.5, "samples": 3},
            ],
        }
    },
}


def inputs(**rates: float) -> Inputs:
    values = {
        "produce": 24,
        "listener": 3,
        "write_kafka": 4,
        "write_feign": 1,
        "read": 2,
        "store_insert": 40,
        "record_dead_letter": 18,
        "relay": 54,
        "restore_publisher": 27,
        **rates,
    }
    return Inputs(
        rates={k: Figure(v, "test") for k, v in values.items()},
        partitions=4,
        replication=3,
        topic_retention_days=7,
        record_bytes=200,
        storage=json.loads(json.dumps(STORAGE)),
        feed=json.loads(json.dumps(FEED)),
        paths={"storage": "storage.json", "feed": "feed.json"},
    )


def part(parts, prefix: str):
    found = [p for p in parts if p.name.startswith(prefix)]
    assert len(found) == 1, f"{prefix!r} in {[p.name for p in parts]}"
    return found[0]


# --- reading the benchmark table ------------------------------------------------------------------------------


def test_table_rows_are_read_inside_the_markers_by_figure_name():
    rows = capacity.table_rows(TABLE)
    assert "outside the markers (ev/s)" not in rows
    assert rows["2  listener ingest, `dailyfeed listen` (ev/s)"][1] == "10"
    # a name repeated at several sizes keeps its first (smallest) row
    assert rows["7a followings feed: HTTP p50 / p99 (ms)"][0] == "500 activities"


@pytest.mark.parametrize(
    "cell, value",
    [("7,556", 7556), ("16.3 / 162", 16.3), ("1,250.5", 1250.5), ("0.06 / 0.24", 0.06), ("—", None), ("", None)],
)
def test_number_is_the_first_number_of_a_cell(cell, value):
    assert capacity.number(cell) == value


def test_a_present_row_is_taken_and_named():
    rows = capacity.table_rows(TABLE)
    fig = capacity.resolve(Measure("w", "w", ((r"^3d write, feign", "why"),), 7, "assumed 7"), rows, "b.md")
    assert (fig.value, fig.missing) == (1250.5, False)
    assert "row '3d write, feign to own activity pool (req/s)' of b.md: why" in fig.source


def test_a_missing_row_falls_back_to_the_next_row_and_says_so():
    rows = capacity.table_rows(TABLE)
    fig = capacity.resolve(
        Measure("relay", "r", ((r"relay", "the relay"), (r"^5b restore-publisher", "same way")), 50, "assumed 50"),
        rows,
        "b.md",
    )
    assert (fig.value, fig.missing) == (27, False)
    assert fig.source.startswith("no row matching /relay/; so row '5b restore-publisher")


def test_a_missing_row_without_alternative_is_flagged_and_takes_the_stated_assumption():
    fig = capacity.resolve(Measure("x", "x", ((r"^9z nothing", "n"),), 50, "assumed 50/s"), {}, "b.md")
    assert fig.missing and fig.value == 50
    assert fig.source == "MISSING: no row matching /^9z nothing/ in b.md; assumed 50/s"


# --- the formulas, against the worked example -----------------------------------------------------------------


def test_load_of_the_worked_example():
    ld = capacity.load_of(Target(**EXAMPLE))
    assert ld.active == 43_200  # 86,400 × 0.5
    assert ld.actions_per_day == 432_000  # × 10
    assert ld.mean_per_s == 5  # / 86,400 s
    assert ld.peak_per_s == 10  # × peak factor 2
    assert ld.events_peak_per_s == pytest.approx(9)  # follows (0.1) make no Kafka event
    assert ld.feed_peak_per_s == 4  # 43,200 × 4 pages / 86,400 × 2


def test_processes_of_the_worked_example():
    parts = capacity.process_parts(Target(**EXAMPLE), capacity.load_of(Target(**EXAMPLE)), inputs())
    assert part(parts, "listener processes").value == 6  # ⌈9 ev/s / (3 × 0.5)⌉
    # max(configured 4, listeners 6, ⌈9 / (24 / 4 partitions × 0.5)⌉ = 3)
    assert part(parts, "partitions per date topic").value == 6
    assert part(parts, "serving processes for writes").value == 5  # ⌈10 / (4 × 0.5)⌉
    assert part(parts, "serving processes for feed reads").value == 4  # ⌈4 / (2 × 0.5)⌉
    assert part(parts, "serving processes in all").value == 9


def test_partitions_never_fall_below_the_configured_count_and_follow_the_produce_rate():
    t = Target(**EXAMPLE)
    ld = capacity.load_of(t)
    few = capacity.process_parts(t, ld, inputs(listener=100))  # 1 listener, ⌈9 / 3⌉ = 3 by produce
    assert part(few, "partitions per date topic").value == 4
    slow_broker = capacity.process_parts(t, ld, inputs(listener=100, produce=4))  # ⌈9 / (1 × 0.5)⌉ = 18
    assert part(slow_broker, "partitions per date topic").value == 18


def test_feign_needs_no_listener_and_sizes_writes_by_the_feign_rate():
    t = Target(**{**EXAMPLE, "transport": "feign"})
    parts = capacity.process_parts(t, capacity.load_of(t), inputs())
    assert not [p for p in parts if p.name.startswith("listener")]
    assert part(parts, "serving processes for writes").value == 20  # ⌈10 / (1 × 0.5)⌉


def test_store_rates_of_the_worked_example():
    t = Target(**EXAMPLE)
    parts = capacity.store_rate_parts(t, capacity.load_of(t), inputs())
    assert part(parts, "store writes").value == 20  # 10 actions/s × 2 documents
    assert part(parts, "store reads").value == 18  # 10 × 1 + 4 feed reads × 2
    assert part(parts, "the store here").value == 0.5  # 20 / 40 inserts/s


def test_storage_puts_the_target_text_on_the_measured_fixed_part():
    t = Target(**EXAMPLE)
    parts, retained = capacity.storage_parts(t, capacity.load_of(t), inputs())
    assert part(parts, "member_activities: documents per day").value == 432_000  # every action is an activity
    assert part(parts, "posts: documents per day").value == 43_200  # 0.1 of the actions
    # a post: 500 B BSON measured with 100 B of text; the target's is 10 + 40 = 50 B, so 450 B (900 → 850 here)
    per_day = part(parts, "posts: bytes per day")
    assert per_day.value == 43_200 * (450 + 60)
    assert "43,200 × (450 B BSON + 60 B in 1 indexes)" in per_day.formula and "data here 850 B" in per_day.formula
    assert part(parts, "posts: over the retention").value == 2 * 43_200 * 510
    # per day: 432,000 × (300 + 150) + 43,200 × (450 + 60) as BSON; (800 + 150), (850 + 60) here; 2 days
    assert retained == 2 * (432_000 * 450 + 43_200 * 510)
    assert part(parts, "everything retained").value == retained
    assert part(parts, "   the same on the store here").value == 2 * (432_000 * 950 + 43_200 * 910)
    # a measured collection the model does not know is named, a daily one that was not measured is flagged
    assert "outbox: measured" in part(parts, "outbox").name
    assert part(parts, "comments").formula.startswith("MISSING from storage.json")


def test_outage_of_the_worked_example():
    t = Target(**EXAMPLE)
    parts = capacity.outage_parts(t, capacity.load_of(t), inputs())
    assert part(parts, "dead letters kept").value == pytest.approx(5_400)  # 9 ev/s × 600 s
    assert part(parts, "dead letters recorded").value == pytest.approx(0.5)  # 9/s against 18/s
    assert part(parts, "kafka_publisher_dead_letters").value == pytest.approx(5_400 * 1_200)
    assert part(parts, "restore time").value == pytest.approx(100)  # 5,400 / (27/s × 2 processes)
    assert part(parts, "the same drained by the relay").value == pytest.approx(100)  # 5,400 / 54
    # a store outage: 6 listeners of 3 ev/s take 18 ev/s, 9 arrive; the 5,400 waiting drain in 5,400 / 9 s
    assert part(parts, "a store outage").value == pytest.approx(600)


def test_kafka_bytes_of_the_worked_example():
    t = Target(**EXAMPLE)
    (kept,) = capacity.kafka_parts(t, capacity.load_of(t), inputs())
    assert kept.value == pytest.approx(432_000 * 0.9 * 200 * 3 * 7)  # events/day × record × replication × days


def test_feed_costs_of_the_worked_example():
    t = Target(**EXAMPLE)
    ld = capacity.load_of(t)
    parts = capacity.feed_parts(t, ld, inputs(), retained=3.5 * capacity.GIB)
    assert part(parts, "activities a feed page").value == 500  # 50 followings × (0.5 × 10 × 2 days)
    # FerretDB fit: 1 + 0.001 × 864,000 stored + 0.01 × 500 matched
    assert part(parts, "a feed page on the store here").value == pytest.approx((1 + 864 + 5) / 1000)  # seconds
    assert part(parts, "index keys a page").value == 70  # ≤ 200 followings: 50 scans merged + a page of 20
    # a member following 999: past the explode limit every key of 999 × 10 activities
    assert part(parts, "   for a member following 999").value == 9_990
    assert part(parts, "shards for the retained data").value == 4  # ⌈3.5 GiB / 1 GiB⌉
    assert part(parts, "shards a feed page asks").value == pytest.approx(4 * (1 - 0.75**50))
    # each of the 4 feed reads/s asks the shards holding any of 50 followings, and each seeks 70 keys
    assert part(parts, "index keys examined per second").value == pytest.approx(4 * 4 * (1 - 0.75**50) * 70)
    assert part(parts, "a timeline per member").value == pytest.approx(9 * 50)  # events × mean followers
    # 10 keys an insert × 450 timeline inserts/s against 4 pages/s × 70 keys on each shard asked
    assert part(parts, "   the timeline costs less").value == pytest.approx(10 * 450 / (4 * 70))
    assert part(parts, "   their storage").value == pytest.approx(432_000 * 0.9 * 50 * 2 * 300)


def test_past_the_explode_limit_the_page_examines_every_matching_key():
    t = Target(**{**EXAMPLE, "followings": 300})
    parts = capacity.feed_parts(t, capacity.load_of(t), inputs(), retained=0.5 * capacity.GIB)
    assert part(parts, "index keys a page").value == 3_000  # 300 × 10 activities each within the retention
    assert part(parts, "shards for the retained data").value == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"daily_active": 1.5}, "daily_active"),
        ({"peak_factor": 0.5}, "peak"),
        ({"mix": (("posts", 0.5),)}, "mix"),
        ({"members": 0}, "members"),
        ({"transport": "smoke"}, "transport"),
    ],
)
def test_an_impossible_target_is_refused_with_the_field_named(change, message):
    with pytest.raises(ValueError, match=message):
        Target(**{**EXAMPLE, **change})


# --- the CLI --------------------------------------------------------------------------------------------------


@pytest.fixture
def results(tmp_path):
    bench = tmp_path / "benchmarks.md"
    bench.write_text(TABLE)
    storage = tmp_path / "storage.json"
    storage.write_text(json.dumps(STORAGE))
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps(FEED))
    return ["--bench", str(bench), "--storage", str(storage), "--feed", str(feed)]


def test_cli_prints_every_part_with_its_formula_and_names_the_missing_rows(results, capsys):
    args = [
        "--members",
        "86400",
        "--daily-active",
        "0.5",
        "--actions",
        "10",
        "--peak-factor",
        "2",
        "--utilization",
        "0.5",
        "--mix",
        "posts=0.1,comments=0.2,post_likes=0.4,comment_likes=0.2,follows=0.1",
    ]
    assert capacity.main(args + results) == 0
    out = capsys.readouterr().out
    assert (
        "  listener processes (`dailyfeed listen`, one group): 2\n      = ⌈events 9/s / (listener 10 ev/s × "
        "utilization 0.5)⌉" in out
    )
    assert "  serving processes for writes: 5\n      = ⌈actions 10/s / (write_kafka 4 req/s × 0.5)⌉" in out
    assert "MISSING: no row matching /relay/" not in out  # the relay falls back to row 5b, and says so
    assert "no row matching /relay/; so row '5b restore-publisher" in out
    assert "MISSING: no row" not in out  # every rate has its row (the small storage file lacks collections)
    for measure in capacity.MEASURED:
        assert f"  {measure.name:18}" in out
    assert "== 86,400 members ==" in out


def test_cli_names_a_row_the_table_lost_and_the_assumption_taken_instead(results, tmp_path, capsys):
    bench = tmp_path / "benchmarks.md"
    bench.write_text("\n".join(line for line in TABLE.splitlines() if "3s   store alone" not in line))
    assert capacity.main(["--members", "1000"] + results) == 0
    out = capsys.readouterr().out
    assert "MISSING: no row matching /^3s\\s+store alone: plain insert_one/ in " in out
    assert "; assumed 500/s" in out


def test_cli_refuses_an_impossible_target_with_a_message(results, capsys):
    with pytest.raises(SystemExit) as exit_info:
        capacity.main(["--members", "1000", "--daily-active", "2"] + results)
    assert exit_info.value.code == 2
    assert "daily_active must be in (0, 1]" in capsys.readouterr().err


def test_cli_without_results_files_says_what_is_missing(tmp_path, capsys):
    assert (
        capacity.main(
            [
                "--members",
                "1000",
                "--bench",
                str(tmp_path / "none.md"),
                "--storage",
                str(tmp_path / "none.json"),
                "--feed",
                str(tmp_path / "nofeed.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "none.md does not exist; every rate is its fallback" in out
    assert "none.json does not exist, so no storage figures" in out
    assert "listener processes (`dailyfeed listen`, one group): 1" in out  # from the stated 1,000 ev/s


def test_the_committed_results_give_every_rate_and_every_collection(capsys):
    """What CI checks on the committed files: every rate comes from a row (no fallback to a bare assumption), and
    every collection the app writes per action has its measured size."""
    assert capacity.main([]) == 0
    out = capsys.readouterr().out
    assert "MISSING" not in out, [line for line in out.splitlines() if "MISSING" in line]
    for members in ("10,000", "1,000,000", "100,000,000"):
        assert f"== {members} members ==" in out
    inp = capacity.load_inputs()
    assert set(capacity.DAILY) <= set(inp.storage["collections"])
    assert not math.isnan(
        capacity.feed_parts(Target(members=10_000), capacity.load_of(Target(members=10_000)), inp, retained=1.0)[
            1
        ].value
    )


def test_write_docs_replaces_only_what_stands_between_the_markers(results, tmp_path, monkeypatch):
    doc = tmp_path / "scaling.md"
    doc.write_text(
        "# Scaling\nbefore\n<!-- capacity:table:start -->\nold table\n<!-- capacity:table:end -->\nmiddle\n"
        "<!-- capacity:feed:start -->\nold feed\n<!-- capacity:feed:end -->\nafter\n"
    )
    monkeypatch.setattr(capacity, "SCALING_DOCS", doc)
    assert capacity.main(["--members", "86400,864000", "--write-docs"] + results) == 0
    text = doc.read_text()
    assert "old table" not in text and "old feed" not in text
    assert text.startswith("# Scaling\nbefore\n<!-- capacity:table:start -->\n```text\nmeasured inputs")
    assert "| part | 86,400 members | 864,000 members |" in text
    assert "| actions per day | 345,600 | 3,456,000 |" in text  # 86,400 × 0.2 × 20, and 10× that
    assert "| ferretdb, 2 → 1,998 | 12 (5) | 1,234 (3) |" in text  # raw p50 (pairs) by followings
    assert "load average before / after 1.5, 2.5" in text
    assert text.endswith("<!-- capacity:feed:end -->\nafter\n") and "\nmiddle\n" in text


def test_the_feed_fit_recovers_a_cost_made_of_a_base_a_scan_and_a_sort():
    """bench/feed.py's least squares: points made exactly of 5 ms + 0.1 ms per stored + 0.02 ms per matched."""
    from bench.feed import fit

    points = [
        {"stored": stored, "matched": matched, "raw_ms": 5 + 0.1 * stored + 0.02 * matched}
        for stored in (1_000, 5_000, 20_000)
        for matched in (1, 100, 999)
    ]
    assert fit(points) == pytest.approx({"base_ms": 5, "per_stored_ms": 0.1, "per_matched_ms": 0.02})
    with pytest.raises(ValueError, match="more than one size"):
        fit([{"stored": 1_000, "matched": m, "raw_ms": m} for m in (1, 10)] * 2)
