"""Erlang C: how many agents answer a share of contacts within a time, from the arrival rate and the handling time.

Written by hand through the Erlang B recursion (stable at any traffic: no factorials, no powers) rather than with
pyworkforce, whose recent releases need Python 3.12 and whose last 3.11 release pulls in ortools and pandas for
these twenty lines. Checked against published examples in tests/inbox/test_erlang.py.

Units: `arrivals` per `period`, and `aht`, `within`, `period` all in the same unit (minutes here).
"""

from __future__ import annotations

import math


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability with `agents` servers and `traffic` Erlangs: B(0)=1, B(k)=A·B(k-1)/(k + A·B(k-1))."""
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a contact waits (M/M/N): N·B / (N − A·(1 − B)); 1 when agents cannot keep up (N <= A)."""
    if agents <= traffic:
        return 1.0
    b = erlang_b(agents, traffic)
    return agents * b / (agents - traffic * (1 - b))


def service_level(agents: int, traffic: float, aht: float, within: float) -> float:
    """The share of contacts answered within `within`: 1 − C·exp(−(N − A)·within/aht)."""
    if agents <= traffic:
        return 0.0
    return 1 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * within / aht)


def average_wait(agents: int, traffic: float, aht: float) -> float:
    """Average speed of answer: C·aht/(N − A); infinite when agents cannot keep up."""
    return erlang_c(agents, traffic) * aht / (agents - traffic) if agents > traffic else math.inf


def agents_needed(
    arrivals: float, period: float, aht: float, target: float, within: float, max_occupancy: float = 1.0
) -> int:
    """The fewest agents answering `target` (0-1) of contacts within `within`, busy at most `max_occupancy` of the time."""
    if arrivals <= 0 or aht <= 0:
        return 0
    if not 0 < target < 1:
        raise ValueError(f"target must be between 0 and 1 (excluded), not {target}")
    traffic = arrivals / period * aht
    agents = max(1, math.floor(traffic) + 1)
    while service_level(agents, traffic, aht, within) < target or traffic / agents > max_occupancy:
        agents += 1
    return agents
