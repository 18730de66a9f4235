"""The team lead's page, rendered on the server: HTML with inline SVG charts, no script at all.

Everything a customer wrote (their handle) and every group name is data: Jinja escapes it (autoescape on), and the
charts are serialised as XML, so neither can become markup. Links to the breach lists are made by the caller
(`Linker`), signed like the link that opened the page and expiring with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import DictLoader, Environment, Template
from markupsafe import Markup

from inbox.reports import charts
from inbox.reports.figures import DAYS, group_label, ratio
from inbox.reports.overview import ATTAINMENT_GOAL, Overview, attainment, day_points
from inbox.reports.window import Window
from inbox.staffing import HourStaffing
from inbox.store.reportpage import BREACH_LIST_MAX, Breach

# (path, parameters) → the link, signed; the page and its lists never build a link themselves.
Linker = Callable[[str, Mapping[str, str]], str]
BREACHES_PATH = "/reports/breaches"

# No script may run, nothing loads from elsewhere, and the signed address never leaves in a Referer.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d3557; margin: 0 auto; max-width: 1100px; padding: 1rem 1.5rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.muted { color: #6c757d; } .cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #dee2e6; border-radius: 8px; padding: .6rem .9rem; min-width: 9rem; }
.card b { display: block; font-size: 1.45rem; }
table { border-collapse: collapse; margin: .5rem 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e9ecef; padding: .25rem .55rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1rem 0; } figure svg { width: 100%; height: auto; }
table.heat td { border: 1px solid #fff; padding: 0; width: 2.1rem; height: 1.6rem; text-align: center; font-size: .8rem; }
table.heat td a { display: block; color: #fff; font-weight: 600; text-decoration: none; text-shadow: 0 0 2px #600; }
.bad { color: #e63946; } .good { color: #2a9d8f; }
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{ title }}</title><style>{{ style }}</style></head>
<body>
{% block body %}{% endblock %}
</body></html>
"""

_REPORT = """{% extends "page" %}{% block body %}
<h1>Customer service: SLA report</h1>
<p class="muted">Conversations started from {{ start }} to {{ end }} ({{ o.zone }}), as of {{ now }}.</p>
<section class="cards" aria-label="headline">
  <div class="card">Conversations<b>{{ t.conversations }}</b>{{ t.first_responses }} answered</div>
  <div class="card">SLA attainment<b>{{ pct(att(t)) }}</b>{{ t.met }} met, {{ t.missed }} missed</div>
  <div class="card">Breaches<b>{% if t.missed %}<a href="{{ all_breaches }}">{{ t.missed }}</a>{% else %}0{% endif %}</b>{{ t.waiting_past_due }} still waiting</div>
  <div class="card">First response<b>{{ mins(t.p50) }}</b>p90 {{ mins(t.p90) }}, p95 {{ mins(t.p95) }}</div>
  <div class="card">Within 30 minutes<b>{{ pct(ratio(t.within_expectation, t.first_responses)) }}</b>of first responses</div>
  <div class="card">CSAT<b>{{ pct(ratio(t.csat_satisfied, t.csat_answers)) }}</b>{{ t.csat_answers }} answers of {{ t.csat_questions }} asked</div>
</section>

<h2 id="attainment">SLA attainment per day</h2>
<figure class="chart">{{ attainment_svg }}</figure>

<h2 id="distribution">First responses against the 30-minute line</h2>
<figure class="chart">{{ distribution_svg }}</figure>

<h2 id="heatmap">Breaches by hour of the week</h2>
<p class="muted">Conversations answered after their deadline or still waiting past it, by the hour they started ({{ o.zone }}). Each count opens the list.</p>
<table class="heat"><tr><th></th>{% for h in range(24) %}<th>{{ '%02d' % h }}</th>{% endfor %}</tr>
{% for d in range(7) %}<tr><th>{{ days[d] }}</th>{% for h in range(24) %}{% set cell = heat[d * 24 + h] %}
<td style="background: {{ cell.colour }}" title="{{ days[d] }} {{ '%02d' % h }}:00, {{ cell.missed }} breached of {{ cell.conversations }}">{% if cell.missed %}<a href="{{ cell.href }}">{{ cell.missed }}</a>{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>

{% for name, rows, key in [("Per channel", o.channels, "channel"), ("Per agent (who replied first)", o.agents, "agent")] %}
<h2 id="{{ key }}">{{ name }}</h2>
<table class="groups"><tr><th>{{ key }}</th><th>conversations</th><th>answered</th><th>met</th><th>breached</th><th>attainment</th><th>p50</th><th>p90</th><th>p95</th><th>within 30 min</th><th>next responses</th><th>CSAT</th></tr>
{% for r in rows %}<tr><td>{{ label(key, r.group) }}</td><td>{{ r.conversations }}</td><td>{{ r.first_responses }}</td><td>{{ r.met }}</td>
<td>{% if r.missed %}<a href="{{ breach_link(key, r.group) }}">{{ r.missed }}</a>{% else %}0{% endif %}</td>
<td>{{ pct(att(r)) }}</td><td>{{ mins(r.p50) }}</td><td>{{ mins(r.p90) }}</td><td>{{ mins(r.p95) }}</td>
<td>{{ pct(ratio(r.within_expectation, r.first_responses)) }}</td><td>{{ pct(ratio(r.next_met, r.next_met + r.next_missed)) }}</td>
<td>{{ pct(ratio(r.csat_satisfied, r.csat_answers)) }} ({{ r.csat_answers }})</td></tr>
{% else %}<tr><td colspan="12" class="muted">No conversations in this window.</td></tr>{% endfor %}
</table>
{% endfor %}

<h2 id="csat">Customer satisfaction</h2>
<table class="csat">
<tr><td>Questions asked</td><td>{{ t.csat_questions }}</td></tr>
<tr><td>Answers</td><td>{{ t.csat_answers }} (response rate {{ pct(ratio(t.csat_answers, t.csat_questions)) }})</td></tr>
<tr><td>Satisfied (4 or 5)</td><td>{{ pct(ratio(t.csat_satisfied, t.csat_answers)) }}</td></tr>
<tr><td>Reviews raised after our answer</td><td class="good">{{ o.recovered }}</td></tr>
<tr><td>Reviews lowered</td><td class="bad">{{ o.lowered }}</td></tr>
</table>

<h2 id="staffing">Staffing</h2>
{% if s %}
<p class="muted">From {{ fmt(s.since) }} to {{ fmt(s.until) }}: agents needed to answer {{ pct(s.target) }} of conversations within {{ within }} (Erlang C, from the arrivals and the handling time measured in each hour{% if s.handling_assumed %}; no handling time could be measured, {{ '%g' % s.handling_minutes }} minutes assumed{% else %}, {{ '%.1f' % s.handling_minutes }} minutes on average{% endif %}), beside the agents who replied.</p>
<figure class="chart">{{ staffing_svg }}</figure>
<table class="staffing"><tr><th>hour</th><th>arrivals per hour</th><th>handling (min)</th><th>needed</th><th>replied</th><th>short</th></tr>
{% for h in staffed %}<tr><td>{{ h.label }}</td><td>{{ '%.2f' % h.arrivals_per_hour }}</td><td>{{ '%.1f' % h.handling_minutes }}</td><td>{{ h.needed }}</td><td>{{ '%.1f' % h.replied }}</td><td class="{{ 'bad' if h.short > 0 else 'good' }}">{{ '%+.1f' % h.short }}</td></tr>
{% else %}<tr><td colspan="6" class="muted">Nothing arrived in these weeks.</td></tr>{% endfor %}
</table>
{% endif %}
<p class="muted">This page was opened from a link that expires; ask for a new one with <code>/inbox report</code> in Slack.</p>
{% endblock %}"""

_BREACHES = """{% extends "page" %}{% block body %}
<h1>Breached conversations{% if what %}: {{ what }}{% endif %}</h1>
<p class="muted">Started from {{ start }} to {{ end }}; answered after their deadline, or still waiting past it. {{ rows|length }} shown{% if rows|length >= limit %} (the first {{ limit }}){% endif %}.</p>
<table class="breaches"><tr><th>conversation</th><th>channel</th><th>customer</th><th>started</th><th>first response</th><th>waited</th><th>target</th><th>outcome</th><th>replied by</th><th>Slack</th></tr>
{% for b in rows %}<tr><td>{{ b.conversation_id }}</td><td>{{ b.channel }}</td><td>{{ b.customer }}</td><td>{{ fmt(b.started_at) }}</td>
<td>{{ fmt(b.first_response_at) if b.first_response_at else "none yet" }}</td><td>{{ mins(b.first_response_minutes) }}</td><td>{{ mins(b.sla_target_minutes) }}</td>
<td>{{ "answered late" if b.outcome == "missed" else "still waiting" }}</td><td>{{ b.replied_by or "" }}</td>
<td>{% if permalinks.get(b.conversation_id) %}<a href="{{ permalinks[b.conversation_id] }}" rel="noreferrer">open in Slack</a>{% endif %}</td></tr>
{% else %}<tr><td colspan="10" class="muted">None.</td></tr>{% endfor %}
</table>
<p><a href="{{ back }}">Back to the report</a></p>
{% endblock %}"""

_REFUSED = """{% extends "page" %}{% block body %}
<h1>{{ heading }}</h1><p>{{ reason }}.</p><p>{{ advice }}</p>
{% endblock %}"""

_TEMPLATES = {"page": _PAGE, "report": _REPORT, "breaches": _BREACHES, "refused": _REFUSED}
_env = Environment(loader=DictLoader(_TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)


def _template(name: str) -> Template:
    return _env.get_template(name)


def pct(value: float | None) -> str:
    """'81%', or '–' without a denominator."""
    return "–" if value is None else f"{100 * value:.0f}%"


def mins(value: float | None) -> str:
    """'12.5 min', '3.2 h', or '–'."""
    if value is None:
        return "–"
    return f"{value / 60:.1f} h" if value >= 120 else f"{value:.1f} min"


def _fmt(moment: datetime | None, zone: Any = None) -> str:
    if moment is None:
        return ""
    return (moment.astimezone(zone) if zone else moment).strftime("%Y-%m-%d %H:%M")


def _heat_colour(missed: int, most: int) -> str:
    if not missed:
        return "#f8f9fa"
    share = missed / most
    # From a pale to a strong red, by the cell's share of the worst hour.
    light = round(92 - 45 * share)
    return f"hsl(355, 78%, {light}%)"


def _staffed(hours: Sequence[HourStaffing]) -> list[HourStaffing]:
    return [h for h in hours if not h.quiet]


def window_params(window: Window) -> dict[str, str]:
    """The absolute window, as links to the lists carry it (the same conversations, however late they are opened)."""
    return {"from": window.start.isoformat(), "to": window.end.isoformat()}


def render_report(o: Overview, link: Linker, now: datetime) -> str:
    """The whole page."""
    zone = ZoneInfo(o.zone)
    window = window_params(o.window)

    def breach_link(by: str | None, group: str | int | None) -> str:
        params = dict(window)
        if by is not None:
            params["by"] = by
            params["group"] = "" if group is None else str(group)
        return link(BREACHES_PATH, params)

    most = max((row.missed for row in o.hours.values()), default=0)
    heat = []
    for key in range(7 * 24):
        row = o.hours.get(key)
        missed = row.missed if row else 0
        heat.append(
            {
                "missed": missed,
                "conversations": row.conversations if row else 0,
                "colour": _heat_colour(missed, most),
                "href": breach_link("hour", key) if missed else "",
            }
        )
    s = o.staffing
    staffing_svg = ""
    if s is not None:
        staffing_svg = charts.staffing_chart(
            [h.label for h in s.hours], [h.needed for h in s.hours], [h.replied for h in s.hours]
        )
    return str(
        _template("report").render(
            title="SLA report",
            style=Markup(_STYLE),
            o=o,
            t=o.total,
            s=s,
            staffed=_staffed(s.hours) if s else [],
            within=_duration(s.within) if s else "",
            start=_fmt(o.window.start, zone),
            end=_fmt(o.window.end, zone),
            now=_fmt(now, zone),
            days=DAYS,
            heat=heat,
            all_breaches=breach_link(None, None),
            breach_link=breach_link,
            label=lambda key, group: group_label(key, group) or "",
            att=attainment,
            pct=pct,
            mins=mins,
            ratio=ratio,
            fmt=lambda moment: _fmt(moment, zone),
            attainment_svg=Markup(charts.attainment_chart(day_points(o.days), ATTAINMENT_GOAL)),
            distribution_svg=Markup(charts.distribution_chart(o.histogram)),
            staffing_svg=Markup(staffing_svg),
        )
    )


def render_breaches(
    rows: Sequence[Breach],
    *,
    what: str | None,
    start: datetime,
    end: datetime,
    zone_name: str,
    permalinks: Mapping[int, str],
    back: str,
) -> str:
    """The list behind one breach count."""
    zone = ZoneInfo(zone_name)
    return str(
        _template("breaches").render(
            title="Breached conversations",
            style=Markup(_STYLE),
            rows=rows,
            what=what,
            start=_fmt(start, zone),
            end=_fmt(end, zone),
            permalinks=permalinks,
            back=back,
            limit=BREACH_LIST_MAX,
            mins=mins,
            fmt=lambda moment: _fmt(moment, zone),
        )
    )


def render_refusal(heading: str, reason: str, advice: str) -> str:
    """A short page saying why the report does not open."""
    return str(
        _template("refused").render(title=heading, style=Markup(_STYLE), heading=heading, reason=reason, advice=advice)
    )


def _duration(value: timedelta) -> str:
    minutes = value.total_seconds() / 60
    return f"{minutes / 60:g} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes:g} minutes"
