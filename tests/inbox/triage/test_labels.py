"""What triage answers: the priority levels' order."""

from __future__ import annotations

from inbox.triage import Priority


def test_priority_rank_orders_levels() -> None:
    assert [p.rank for p in (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT)] == [0, 1, 2, 3]
    assert sorted(Priority, key=lambda p: p.rank, reverse=True)[0] is Priority.URGENT
