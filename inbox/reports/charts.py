"""The reports' charts, drawn on the server: inline SVG for the page (pygal), a PNG for the weekly digest (matplotlib).

The SVG carries no script: pygal writes its settings into a `<script>` for its optional tooltips, which is taken out
of the tree before it is serialised, so the page runs no code and its policy can forbid all scripts. Labels are
set as text nodes by the XML serialiser, so a label is never markup.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pygal
from pygal.style import Style

EXPECTATION_MINUTES = 30  # what customers expect of a social answer (the line the distribution is drawn against)
# Buckets of first-response minutes: [low, high); the last is open. The 30-minute line falls between two.
BUCKETS: tuple[tuple[float, float | None], ...] = (
    (0, 5),
    (5, 10),
    (10, 15),
    (15, 20),
    (20, 30),
    (30, 45),
    (45, 60),
    (60, 120),
    (120, 240),
    (240, 480),
    (480, None),
)
_GREEN, _RED, _GREY, _BLUE = "#2a9d8f", "#e63946", "#8d99ae", "#1d3557"


def _style(*colors: str) -> Style:
    return Style(
        background="white",
        plot_background="white",
        foreground="#333",
        foreground_strong="#111",
        foreground_subtle="#eee",
        font_family="system-ui, sans-serif",
        opacity="0.85",
        opacity_hover="0.95",
        colors=colors,
    )


def bucket_label(low: float, high: float | None) -> str:
    """'5–10 min', '1–2 h', '8 h+'."""

    def show(minutes: float) -> str:
        return f"{minutes / 60:g}" if minutes >= 60 else f"{minutes:g}"

    unit = "h" if low >= 60 else "min"
    if high is None:
        return f"{show(low)} {unit}+"
    if low < 60 <= high:
        return f"{show(low)} min–{show(high)} h"
    return f"{show(low)}–{show(high)} {unit}"


@dataclass(frozen=True, slots=True)
class DayPoint:
    """One day's attainment (None: nothing settled that day)."""

    label: str
    attainment: float | None
    met: int
    missed: int


def _svg(chart: Any) -> str:
    """The chart as an inline <svg> element, its script removed."""
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if child.tag in ("script", "{http://www.w3.org/2000/svg}script"):
                parent.remove(child)
    return ET.tostring(tree, encoding="unicode")


def _config(*colors: str, **extra: Any) -> dict[str, Any]:
    return {
        "js": [],
        "style": _style(*colors),
        "truncate_label": -1,
        "width": 960,
        "height": 320,
        "legend_at_bottom": True,
        "truncate_legend": -1,
        "explicit_size": False,  # sized by the page's CSS (viewBox kept)
        "disable_xml_declaration": True,
        **extra,
    }


def attainment_chart(days: Sequence[DayPoint], goal: float) -> str:
    """Attainment per day (percent) with the goal as a dashed line."""
    step = max(1, len(days) // 14)  # at most ~14 labels, whatever the window
    chart = pygal.Line(
        **_config(
            _BLUE,
            _RED,
            title="SLA attainment per day",
            range=(0, 100),
            y_title="% met",
            show_minor_x_labels=False,
            x_labels_major=[d.label for d in days[::step]],
            dots_size=2 if len(days) > 60 else 3,
            allow_interruptions=True,
        )
    )
    chart.x_labels = [d.label for d in days]
    chart.add("Attainment", [None if d.attainment is None else round(100 * d.attainment, 1) for d in days])
    chart.add(
        f"Goal {goal:.0%}", [round(100 * goal, 1)] * len(days), show_dots=False, stroke_style={"dasharray": "6, 4"}
    )
    return _svg(chart)


def distribution_chart(counts: Sequence[int]) -> str:
    """First responses per bucket of minutes waited, coloured by the side of the 30-minute line they fall on."""
    labels = [bucket_label(low, high) for low, high in BUCKETS]
    within = [
        c if (high is not None and high <= EXPECTATION_MINUTES) else None
        for (_low, high), c in zip(BUCKETS, counts, strict=True)
    ]
    after = [None if w is not None else c for w, c in zip(within, counts, strict=True)]
    chart = pygal.StackedBar(
        **_config(
            _GREEN,
            _RED,
            title="First responses by minutes waited (the 30-minute line)",
            x_label_rotation=0,
            y_title="responses",
        )
    )
    chart.x_labels = labels
    chart.add(f"within {EXPECTATION_MINUTES} min", within)
    chart.add(f"after {EXPECTATION_MINUTES} min", after)
    return _svg(chart)


def staffing_chart(labels: Sequence[str], needed: Sequence[int], replied: Sequence[float]) -> str:
    """Agents needed (Erlang C) and agents who replied, for each hour of the week."""
    chart = pygal.Line(
        **_config(
            _RED,
            _GREY,
            title="Agents needed and agents who replied, per hour of the week",
            show_minor_x_labels=False,
            x_labels_major_every=24,
            show_dots=False,
            y_title="agents",
        )
    )
    chart.x_labels = list(labels)
    chart.add("needed (Erlang C)", list(needed), stroke_style={"width": 2})
    chart.add("replied", [round(r, 2) for r in replied], fill=True)
    return _svg(chart)


def digest_png(this_week: Sequence[DayPoint], last_week: Sequence[DayPoint], goal: float, title: str) -> bytes:
    """The digest's chart: this week's and last week's attainment per weekday, with the goal; a PNG."""
    # Imported here: matplotlib takes a moment to load, and only the digest draws PNGs.
    import matplotlib

    matplotlib.use("Agg")  # no display: the chart is drawn in memory
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.6), dpi=100)
    axes = figure.add_subplot()
    labels = [d.label for d in this_week]

    def points(days: Sequence[DayPoint]) -> list[float]:
        return [float("nan") if d.attainment is None else 100 * d.attainment for d in days]

    axes.plot(labels, points(last_week), color=_GREY, marker="o", label="last week")
    axes.plot(labels, points(this_week), color=_BLUE, marker="o", linewidth=2.5, label="this week")
    axes.axhline(100 * goal, color=_RED, linestyle="--", linewidth=1, label=f"goal {goal:.0%}")
    axes.set_ylim(0, 105)
    axes.set_ylabel("% of first responses on time")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="lower left", fontsize="small")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
