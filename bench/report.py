"""The printed table: one Row per figure, built by each section from the saved results, and the docs block.

A run's results are a JSON dict whose `reps` maps a section name to one dict per repetition; `Table` reads them
(`values`) and adds rows (`figure` for a median next to a baseline and their ratio, `add` for a row written out).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from typing import Callable, Iterable

from bench.common import DOCS, median

TABLE_START, TABLE_END = "<!-- bench:table:start -->", "<!-- bench:table:end -->"
HEAD = ("figure", "N", "median", "spread", "baseline (median)", "ratio", "target")


@dataclass
class Row:
    figure: str
    n: str
    median: str
    spread: str = ""
    baseline: str = "—"
    ratio: str = "—"
    target: str = ""
    # for bench.guard, not printed: the ratio as a number and its noise band, the lowest and highest ratio of one
    # repetition (or of one pair of samples) in the run
    ratio_value: float | None = field(default=None, compare=False)
    band: tuple[float, float] | None = field(default=None, compare=False)

    def markdown(self) -> str:
        return "| " + " | ".join(astuple(self)[: len(HEAD)]) + " |"


def fmt(x: float, unit: str = "") -> str:
    if x != x:
        return "—"
    text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"
    return text + unit


def spread(v: list[float]) -> str:
    return f"{fmt(min(v))}–{fmt(max(v))}" if len(v) > 1 else ""


def ratio_of(a: float, b: float) -> float:
    return a / b if a == a and b == b and b else float("nan")


def times(r: float, digits: int = 2) -> str:
    return f"{r:.{digits}f}×" if r == r else "—"


class Table:
    def __init__(self, data: dict):
        self.data = data
        self.sizes = data["sizes"]
        self.rows: list[Row] = []

    def reps(self, section: str) -> list[dict]:
        return self.data["reps"].get(section, [])

    def values(self, section: str, key: str, sub: str | None = None) -> list[float]:
        """The numbers saved under `key` (or `key`[`sub`]) by every repetition of a section."""
        found = []
        for rep in self.reps(section):
            value = rep.get(key)
            if sub is not None and isinstance(value, dict):
                value = value.get(sub)
            if isinstance(value, (int, float)):
                found.append(float(value))
        return found

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def figure(
        self,
        figure: str,
        n: str,
        v: list[float],
        base_label: str = "",
        base_v: Iterable[float] | None = None,
        target: str = "",
        unit: str = "",
        check: Callable[[float, float], bool] | None = None,
    ) -> Row:
        """The median of `v` with its spread, next to the median of a baseline and their ratio; `check(median,
        ratio)` marks the target met or missed."""
        base_v = list(base_v) if base_v is not None else None
        m, b = median(v), median(base_v) if base_v is not None else float("nan")
        ratio = ratio_of(m, b)
        status = ""
        if check is not None and ratio == ratio:
            status = " ✅" if check(m, ratio) else " ❌"
        return self.add(
            Row(
                figure,
                n,
                fmt(m, unit),
                spread(v),
                f"{base_label} {fmt(b, unit)}" if base_label else "—",
                times(ratio),
                (target + status).strip(),
                ratio if ratio == ratio else None,
                ratio_band(v, base_v) if ratio == ratio else None,
            )
        )


def ratio_band(v: list[float], base_v: list[float]) -> tuple[float, float] | None:
    """The lowest and highest ratio of one repetition: figure and baseline are measured once per repetition, in
    that order, so the i-th values pair up (when a repetition failed they no longer do: the widest band then)."""
    if not v or not base_v or not all(base_v):
        return None
    if len(v) == len(base_v):
        ratios = [a / b for a, b in zip(v, base_v)]
        return min(ratios), max(ratios)
    return min(v) / max(base_v), max(v) / min(base_v)


def rows(data: dict, sections: Iterable[Callable[[Table], None]]) -> list[Row]:
    """Every section's rows of a run's results, in order."""
    table = Table(data)
    for add_rows in sections:
        add_rows(table)
    return table.rows


def render(data: dict, sections: Iterable[Callable[[Table], None]]) -> str:
    """The table (every section's rows, in order) and the run's notes, as markdown."""
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "|".join("---" for _ in HEAD) + "|"]
    lines += [row.markdown() for row in rows(data, sections)]
    mach = data["machine"]
    code = f"code at {mach.get('commit', '?')}"
    if mach.get("uncommitted"):
        code += f" plus uncommitted changes to {', '.join(mach['uncommitted'])}"
    if mach.get("dailyfeed"):
        code += f", the `dailyfeed listen` processes of {mach['dailyfeed']}"
    notes = (
        f"Run {data['run']} {data['started']} → {data['finished']}, {code}; "
        f"{data['sizes']['reps']} repetitions, median shown; {mach['cpus']} × {mach['cpu']}; "
        f"Python {mach['python']}; load average before "
        f"{mach['load_before'][0]:.2f}, after {mach['load_after'][0]:.2f}; CPU busy before start "
        f"{mach['busy_before'] * 100:.0f} % (others' work); scale {data['sizes']['scale']}."
    )
    return "\n".join(lines) + "\n\n" + notes + "\n"


def write_docs(table: str) -> None:
    text = DOCS.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    DOCS.write_text(text[:start] + "\n" + table + text[end:])
