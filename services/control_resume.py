"""A change left pending by an earlier run of the control service, resolved before any new put
(locally) by what the servers actually run (infra/pending_change.py): recorded applied only
when every server loaded it and shows it; otherwise the stored state goes back to what it was
before that change, the servers are reloaded into it, so those that loaded the change go back
(locally; in the clouds the chart's reloader applies the restored files), and the history
says why. So a change that was
never confirmed is neither recorded applied nor left stored for the next put to apply."""

from __future__ import annotations

import asyncio
import time

from infra.pending_change import pending_entry, recorded_before, restored, resumed
from infra.put_budget import Budget, window
from infra.runtime_config import APPLIED, before_of
from infra.runtime_status import connected_regions
from services import logs
from services.control_put import PutTransaction, Written

NOT_RECORDED = (
    "not confirmed: the control service restarted while it was pending, and it was stored "
    "without what came before it, so it is neither verified nor rolled back"
)


async def resume(transaction: PutTransaction, *, by_request: bool) -> None:
    """Resolve the change the store holds pending, if any (see above)."""
    state = (await asyncio.to_thread(transaction.store.read)).state
    entry = pending_entry(state)
    if entry is None:
        return
    change = str(entry["change"])
    logger = transaction.logger
    if not recorded_before(entry):
        await transaction.settle(change, NOT_RECORDED)
        return
    before = before_of(entry)
    if before.servers_see() == state.servers_see():
        await transaction.settle(change, APPLIED + ": nothing for the servers to load")
        return
    budget = Budget.starting()
    replies, servers, _ = await transaction.region()
    connected = connected_regions(replies, transaction.cluster)
    expectation = resumed(entry, state, servers, connected)
    timing = transaction.timing
    seconds = window(timing.verify, budget.applied) if by_request else timing.pending
    found = await transaction.verified(expectation, servers, seconds)
    if not found:
        await transaction.settle(change, APPLIED)
        logs.event(logger, "pending change verified at start", change=change)
        return
    why = (
        "the control service restarted while it was pending, and the servers do not run it: "
        + "; ".join(found)
    )
    written = Written(change, before, state, "", servers, expectation)
    if not await transaction.roll_back(written, why):
        return
    logs.event(logger, "pending change rolled back at start", change=change, why=why)
    if not by_request:
        return
    reloads = await transaction.reload(written, before, budget.restored)
    left = window(timing.verify, budget.restored, time.monotonic())
    still = await transaction.verified(restored(state, before, servers), servers, left)
    if still:
        logger.error(
            "the rollback of a pending change has not taken effect",
            extra={"fields": {"change": change, "problems": still, "reloads": reloads}},
        )
