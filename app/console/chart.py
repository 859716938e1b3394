"""A small bar chart of counts per day, laid out here and drawn as SVG by the template:
no script, no style attribute (the console's CSP allows neither), colours from the stylesheet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 26  # room for the axis labels
LABEL_EVERY = 7  # days between two date labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int  # its colour, and its line in the legend
    day: date
    value: int


@dataclass(frozen=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True)
class DayLabel:
    x: float
    text: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    baseline: float
    right: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[DayLabel]
    highest: int


def bar_chart(days: list[date], series: list[list[int]]) -> BarChart:
    """Bars side by side for each day, one per series, on one scale from zero."""
    if any(len(values) != len(days) for values in series):
        raise ValueError("every series needs one value per day")
    highest = max((v for values in series for v in values), default=0)
    top = max(highest, 1)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = float(TOP + plot_height)
    slot = plot_width / max(len(days), 1)
    bar_width = slot * 0.8 / max(len(series), 1)
    bars = []
    for index, day in enumerate(days):
        for number, values in enumerate(series):
            height = plot_height * values[index] / top
            bars.append(
                Bar(
                    x=round(LEFT + slot * index + slot * 0.1 + bar_width * number, 2),
                    y=round(baseline - height, 2),
                    width=round(bar_width, 2),
                    height=round(height, 2),
                    series=number,
                    day=day,
                    value=values[index],
                )
            )
    ticks = [
        Tick(y=round(baseline - plot_height * value / top, 2), value=value)
        for value in sorted({0, (top + 1) // 2, top})
    ]
    last = len(days) - 1
    labels = [
        DayLabel(x=round(LEFT + slot * index + slot / 2, 2), text=day.strftime("%m-%d"))
        for index, day in enumerate(days)
        if (last - index) % LABEL_EVERY == 0
    ]
    return BarChart(WIDTH, HEIGHT, LEFT, baseline, WIDTH - RIGHT, bars, ticks, labels, highest)
