"""Erlang C against its published examples (sources in docs/notes/reports/NOTES.md, section 3)."""

from __future__ import annotations

import math

import pytest

from inbox.erlang import agents_needed, average_wait, erlang_c, service_level


def test_call_centre_helper_example_100_contacts_per_30_minutes_needs_14_agents() -> None:
    # 100 contacts per 30 minutes, 3 minutes handling, 80% answered within 20 s: A = 10 Erlangs.
    assert agents_needed(100, 30, 3, 0.8, 20 / 60) == 14
    traffic = 100 / 30 * 3
    assert traffic == pytest.approx(10)
    # CRAN ErlangC 0.1.0 and pyworkforce's README print these for 14 agents.
    assert erlang_c(14, traffic) == pytest.approx(0.1741319, abs=1e-7)
    assert service_level(14, traffic, 3, 20 / 60) == pytest.approx(0.88835, abs=1e-5)
    assert average_wait(14, traffic, 3) * 60 == pytest.approx(7.83593701177724, rel=1e-9)
    assert traffic / 14 == pytest.approx(0.7142857, abs=1e-7)
    # 13 agents fall short of 80%; the CRAN process table gives Pw(11).
    assert service_level(13, traffic, 3, 20 / 60) == pytest.approx(0.7956, abs=1e-4)
    assert erlang_c(11, traffic) == pytest.approx(0.6821182, abs=1e-7)
    # With 30% shrinkage: 20 scheduled.
    assert math.ceil(14 / (1 - 0.3)) == 20


def test_turbotab_example_25_contacts_per_10_minutes_needs_11_agents() -> None:
    assert agents_needed(25, 600, 180, 0.8, 20) == 11
    assert math.ceil(11 / 0.7) == 16


def test_the_step_by_step_example_360_calls_per_half_hour_with_55_agents() -> None:
    traffic = 360 / 30 * 4
    assert traffic == 48 and traffic / 55 == pytest.approx(0.8727, abs=1e-4)
    assert erlang_c(55, traffic) == pytest.approx(0.2387, abs=1e-4)
    assert average_wait(55, traffic, 4) * 60 == pytest.approx(8.18, abs=0.01)
    assert service_level(55, traffic, 4, 15 / 60) == pytest.approx(0.8459, abs=1e-4)


def test_large_traffic_neither_overflows_nor_loses_precision() -> None:
    # The factorial form overflows a float beyond 170!; the recursion does not.
    assert erlang_c(950, 900.0) == pytest.approx(0.0621, abs=1e-4)


def test_too_few_agents_never_keep_up_and_no_traffic_needs_nobody() -> None:
    assert erlang_c(10, 10.0) == 1.0 and service_level(9, 10.0, 3, 1) == 0.0
    assert average_wait(10, 10.0, 3) == math.inf
    assert agents_needed(0, 60, 5, 0.8, 30) == 0
    # A maximum occupancy adds agents beyond the service level's need.
    assert agents_needed(100, 30, 3, 0.8, 20 / 60, max_occupancy=0.7) == 15
    with pytest.raises(ValueError, match="target"):
        agents_needed(10, 60, 5, 1.0, 30)
