"""Work behind acknowledgements: it waits while requests are being answered, but never for long."""

from __future__ import annotations

import asyncio

from inbox.slack.tasks import Background


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_work_queued_during_a_burst_of_requests_starts_once_they_are_answered():
    background = Background(settle_seconds=0, yield_seconds=60)
    started: list[str] = []

    async def work(name: str) -> None:
        started.append(name)

    with background.answering():
        background.spawn(work("first click"), "assign")
        await _turns()
        with background.answering():  # a second request arrives while the first is handled
            background.spawn(work("second click"), "assign")
            await _turns()
        await _turns()
        assert started == [], "work ran while requests were still being answered"
    await asyncio.wait_for(background.drain(), 5)
    assert started == ["first click", "second click"]


async def test_urgent_work_does_not_wait_for_quiet():
    background = Background(settle_seconds=0, yield_seconds=60)
    opened = asyncio.Event()

    async def open_modal() -> None:
        opened.set()

    with background.answering():
        background.spawn(open_modal(), "inbox_edit", urgent=True)
        await asyncio.wait_for(opened.wait(), 5)


async def test_under_requests_that_never_stop_work_still_starts_after_yield_seconds():
    background = Background(settle_seconds=0, yield_seconds=0.01)
    started = asyncio.Event()

    async def work() -> None:
        started.set()

    with background.answering():
        background.spawn(work(), "assign")
        await asyncio.wait_for(started.wait(), 5)  # still answering: the wait is bounded, not endless
