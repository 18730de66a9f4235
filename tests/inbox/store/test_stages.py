"""The SLA stage column: one enum (SlaState, None when no clock runs) over the integers the partial indexes read."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from inbox.sla import SlaState
from inbox.store.clocks import STOPPED
from inbox.store.models import Customer, Thread, stage_value

# As stored: the sweep's partial indexes select `sla_stage < 2` (to breach) and `sla_stage < 1` (to warn).
STORED = {SlaState.OK: 0, SlaState.WARNING: 1, SlaState.BREACHED: 2, STOPPED: 3}


async def test_every_stage_is_read_back_as_written_and_stored_as_the_indexes_expect(engine, clock):
    now = clock.now
    async with engine.begin() as conn:
        customer = (
            await conn.execute(
                sa.insert(Customer)
                .values(channel="x", handle="ana", first_seen_at=now, last_seen_at=now)
                .returning(Customer.id)
            )
        ).scalar_one()
        thread = {
            "connector": "acme-x",
            "channel": "x",
            "customer_id": customer,
            "kind": "mention",
            "opened_at": now,
            "last_customer_at": now,
            "clock_start": now,
            "warn_at": now,
            "due_at": now,
            "updated_at": now,
        }
        await conn.execute(
            sa.insert(Thread), [{**thread, "external_id": str(v), "sla_stage": s} for s, v in STORED.items()]
        )
        read = {key: stage for key, stage in await conn.execute(sa.select(Thread.external_id, Thread.sla_stage))}
        raw = {key: value for key, value in await conn.exec_driver_sql("SELECT external_id, sla_stage FROM thread")}
        # The indexes' own predicate (`sla_stage < 2`) and the enum select the same clocks.
        below = {}
        for stage in (SlaState.WARNING, SlaState.BREACHED):
            for bound in (stage, STORED[stage]):
                found = await conn.execute(
                    sa.select(Thread.external_id).where(Thread.sla_stage < bound).order_by(Thread.external_id)
                )
                below[stage, bound] = found.scalars().all()
    assert read == {str(v): s for s, v in STORED.items()}
    assert raw == {str(v): v for v in STORED.values()}
    assert below == {
        (SlaState.WARNING, SlaState.WARNING): ["0"],
        (SlaState.WARNING, 1): ["0"],
        (SlaState.BREACHED, SlaState.BREACHED): ["0", "1"],
        (SlaState.BREACHED, 2): ["0", "1"],
    }


@pytest.mark.parametrize("settled", [SlaState.MET, SlaState.MISSED])
def test_a_settled_state_is_no_stage_a_stopped_clock_is_none(settled):
    with pytest.raises(ValueError, match="not an SLA stage"):
        stage_value(settled)
    assert stage_value(STOPPED) == 3
