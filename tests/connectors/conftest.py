"""Connector tests talk to vendor fakes in real time, so their injected clock starts at the real time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    # Connectors reach back `first_poll_hours` from the wall clock and sign tokens with it; a clock fixed on
    # an old date would date the fakes' posts outside that window as soon as the date is far enough behind.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))
