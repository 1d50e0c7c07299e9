"""Small charts drawn on the server as SVG geometry for the templates: no chart library, no script. The templates
only place the rectangles computed here (SVG presentation attributes, so a strict Content-Security-Policy holds)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from ..events import as_utc

#: series colours by collection (kept in step with console.css's legend)
SERIES = ("kafka-publisher", "feign", "listener")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class HourChart:
    width: int
    height: int
    plot_height: int
    bars: list[Bar]
    ticks: list[Tick]
    peak: int
    total: int


def hours_chart(
    hour_starts: Sequence[datetime],
    series: dict[str, Sequence[int]],
    *,
    width: int = 720,
    height: int = 150,
    label_every: int = 6,
) -> HourChart:
    """Stacked bars, one per hour, oldest left; `series` maps a series name to its count per hour."""
    plot_height = height - 22  # room for the hour labels
    slots = len(hour_starts)
    step = width / max(1, slots)
    totals = [sum(values[n] for values in series.values()) for n in range(slots)]
    peak = max(totals, default=0)
    bars = []
    for n, start in enumerate(hour_starts):
        base = plot_height
        for name, values in series.items():
            count = values[n]
            if not count:
                continue
            h = max(1.5, plot_height * count / peak) if peak else 0
            base -= h
            bars.append(
                Bar(
                    x=round(n * step + 1, 2),
                    y=round(base, 2),
                    width=round(max(1.0, step - 2), 2),
                    height=round(h, 2),
                    series=name,
                    title=f"{as_utc(start):%d %b %H:00} UTC: {count} {name}",
                )
            )
    # labels on the hours a clock reader expects (00:00, 06:00, ...), none cut off at the left edge
    ticks = [
        Tick(x=round(n * step + step / 2, 2), label=f"{as_utc(start):%H:00}")
        for n, start in enumerate(hour_starts)
        if as_utc(start).hour % label_every == 0 and n * step + step / 2 > 24
    ]
    return HourChart(
        width=width, height=height, plot_height=plot_height, bars=bars, ticks=ticks, peak=peak, total=sum(totals)
    )


@dataclass(frozen=True)
class Meter:
    label: str
    value: int
    width: float  # of 100


def meters(items: Sequence[tuple[str, int]]) -> list[Meter]:
    """Horizontal bars relative to the largest value (as percentages of the track)."""
    peak = max((value for _, value in items), default=0)
    return [
        Meter(label=label, value=value, width=round(100 * value / peak, 2) if peak else 0) for label, value in items
    ]
