"""The guard at the end of `make bench`: every ratio of this run against the last committed results file.

Committed results live in bench/history/ (a run's raw results JSON, as bench/results/ holds them; `--write-docs`
puts the run there beside the table it writes into docs/benchmarks.md). The last committed one is the newest file
there in git's HEAD, read from HEAD, so a file not yet committed is no yardstick. Both runs are rendered by the
same code (bench.report.rows), so a row's ratio means the same on both sides.

A row moved when its ratio changed by more than its noise band: the band is the range of the ratio over the
repetitions of a run (lowest to highest, bench.report.Row.band), and the wider of the two runs' bands is what the
change has to exceed. A row that has no band in one of the runs (a single repetition) cannot be judged and is
listed as such, like a row that only one of the runs has.

    .venv/bin/python -m bench.guard bench/results/<run>.json      # compare a saved run with the committed one
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from bench import report
from bench.common import REPO

HISTORY = "bench/history"
SAMPLES = re.compile(r", \d+ samples$")  # the read paths' N says how many samples they took: not part of the row


@dataclass(frozen=True)
class Moved:
    figure: str
    n: str
    before: float
    before_band: tuple[float, float]
    now: float
    now_band: tuple[float, float]

    @property
    def change(self) -> float:
        return self.now - self.before

    def line(self) -> str:
        def band(b: tuple[float, float]) -> str:
            return f"{b[0]:.2f}–{b[1]:.2f}"

        word = "up" if self.change > 0 else "down"
        return (
            f"{self.figure} [{self.n}]: {self.before:.2f}× (band {band(self.before_band)}) → {self.now:.2f}× "
            f"(band {band(self.now_band)}), {word} {abs(self.change):.2f}"
        )


@dataclass
class Comparison:
    moved: list[Moved]
    unjudged: list[str]  # rows with a ratio on both sides but no band on one of them
    new: list[str]  # rows with a ratio only in this run
    gone: list[str]  # rows with a ratio only in the committed run


def compare(now: Iterable[report.Row], before: Iterable[report.Row]) -> Comparison:
    """The rows whose ratio moved by more than the wider of the two runs' noise bands (matched by figure and N)."""

    def by_key(rows: Iterable[report.Row]) -> dict[tuple[str, str], report.Row]:
        return {(row.figure, SAMPLES.sub("", row.n)): row for row in rows if row.ratio_value is not None}

    now_rows, before_rows = by_key(now), by_key(before)
    result = Comparison([], [], [], [])
    for key, row in now_rows.items():
        old = before_rows.get(key)
        if old is None:
            result.new.append(_name(key))
        elif not _judged(row.band) or not _judged(old.band):
            result.unjudged.append(_name(key))
        elif abs(row.ratio_value - old.ratio_value) > max(_width(row.band), _width(old.band)):
            result.moved.append(Moved(key[0], key[1], old.ratio_value, old.band, row.ratio_value, row.band))
    result.gone = [_name(key) for key in before_rows if key not in now_rows]
    return result


def _judged(band: tuple[float, float] | None) -> bool:
    return band is not None and band[1] > band[0]


def _width(band: tuple[float, float]) -> float:
    return band[1] - band[0]


def _name(key: tuple[str, str]) -> str:
    return f"{key[0]} [{key[1]}]"


def committed_results(repo: Path = REPO) -> tuple[str, dict[str, Any]] | None:
    """The newest results file committed in bench/history (its path and content at HEAD), or None."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout

    try:
        names = [
            name for name in git("ls-tree", "--name-only", "HEAD", f"{HISTORY}/").split() if name.endswith(".json")
        ]
        if not names:
            return None
        newest = max(names)  # named <yyyymmdd-HHMMSS>-<run>.json: the newest sorts last
        return newest, json.loads(git("show", f"HEAD:{newest}"))
    except (OSError, subprocess.CalledProcessError, ValueError):
        return None


def summary(
    data: dict[str, Any],
    sections: Iterable[Callable[[report.Table], None]],
    committed: tuple[str, dict[str, Any]] | None,
) -> str:
    """What the end of `make bench` prints: the rows that moved against the committed run."""
    if committed is None:
        return f"guard: no committed results in {HISTORY}/ to compare with"
    path, before = committed
    sections = list(sections)
    result = compare(report.rows(data, sections), report.rows(before, sections))
    head = (
        f"guard: ratios against {path} (run {before.get('run', '?')}, code at "
        f"{before.get('machine', {}).get('commit', '?')}): "
    )
    if result.moved:
        lines = [head + f"{len(result.moved)} rows moved by more than their noise band"]
        lines += [f"  {moved.line()}" for moved in sorted(result.moved, key=lambda m: m.change)]
    else:
        lines = [head + "no row moved by more than its noise band"]
    if result.unjudged:
        lines.append(f"  not judged (one repetition, no band): {'; '.join(result.unjudged)}")
    if result.new:
        lines.append(
            f"  only in this run: {'; '.join(result.new[:5])}"
            + (f" and {len(result.new) - 5} more" if len(result.new) > 5 else "")
        )
    if result.gone:
        lines.append(f"  not measured in this run: {len(result.gone)} rows of the committed one")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.harness import TABLE

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    print(summary(json.loads(Path(args[0]).read_text()), TABLE, committed_results()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
