"""The venue simulator's side of allocations (issue 14): an AllocationInstruction
(35=J) from the buy side checked as a broker checks it, and the AllocationInstructionAck
(35=P) answers it gets.

A new or replacing instruction whose NoAllocs quantities sum to its Quantity, for a
side and symbol the venue knows, is answered Received (AllocStatus 3) at once and
Accepted (0) later (the simulator's fill interval); otherwise a block level reject (1)
with AllocRejCode 8 (incorrect allocated quantity) or 7 (other) and a Text. A cancel
(AllocTransType 2) is acknowledged Accepted at once, and an instruction it cancels (or a
replace replaces) before being accepted is never accepted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from oms_site.errors import InvalidInput

from .fix import codec

# The simulator's record of an allocation (by session and AllocID).
ALLOC_RECEIVED = "received"
ALLOC_ACCEPTED = "accepted"
ALLOC_REJECTED = "rejected"
ALLOC_CANCELLED = "cancelled"
ALLOC_REPLACED = "replaced"

ALLOC_REJ_OTHER = "7"
TRANS_NEW, TRANS_REPLACE, TRANS_CANCEL = "0", "1", "2"


@dataclass
class AllocationDecision:
    """What the venue answers to one instruction: ``status`` is the AllocStatus of the
    final answer (Accepted or a block level reject); ``ref_alloc_id`` the instruction a
    replace or cancel supersedes."""

    alloc_id: str
    trans_type: str
    status: str
    trade_date: str | None
    rej_code: str | None = None
    text: str = ""
    ref_alloc_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == codec.ALLOC_STATUS_ACCEPTED


def allocation_decide(
    fields: list[tuple[int, str]],
    *,
    known: dict[str, str],
    supported_sides: frozenset[str],
    reject_symbols: frozenset[str],
) -> AllocationDecision:
    """Check an AllocationInstruction (its fields in order, already past the session's
    FIX 4.4 validation); ``known`` is this session's allocations (AllocID -> state)."""
    tags = codec.tags_from_fields(fields)
    decision = AllocationDecision(
        alloc_id=tags[70], trans_type=tags[71], status=codec.ALLOC_STATUS_ACCEPTED, trade_date=tags.get(75)
    )

    def reject(code: str, text: str) -> AllocationDecision:
        decision.status, decision.rej_code, decision.text = codec.ALLOC_STATUS_BLOCK_REJECT, code, text
        return decision

    if decision.alloc_id in known:
        return reject(ALLOC_REJ_OTHER, f"Duplicate AllocID {decision.alloc_id}")
    if decision.trans_type in (TRANS_REPLACE, TRANS_CANCEL):
        decision.ref_alloc_id = tags.get(72)
        state = known.get(decision.ref_alloc_id or "")
        if state is None:
            return reject(ALLOC_REJ_OTHER, f"Unknown RefAllocID {decision.ref_alloc_id}")
        if state not in (ALLOC_RECEIVED, ALLOC_ACCEPTED):
            return reject(ALLOC_REJ_OTHER, f"Allocation {decision.ref_alloc_id} is {state}")
        if decision.trans_type == TRANS_CANCEL:
            return decision
    if tags[54] not in supported_sides:
        return reject(ALLOC_REJ_OTHER, f"Side {tags[54]} not supported")
    if tags[55].upper() in reject_symbols:
        return reject(ALLOC_REJ_OTHER, f"Unknown symbol {tags[55]}")
    try:
        entries = codec.groups(fields, 78, 79, (80,))
        quantity = codec.tag_int(tags, 53)
        allocated = [codec.tag_int(entry, 80) for entry in entries]
    except codec.InvalidMessage as exc:
        return reject(codec.ALLOC_REJ_INCORRECT_ALLOCATED_QUANTITY, exc.text)
    except InvalidInput as exc:  # a fractional quantity
        return reject(codec.ALLOC_REJ_INCORRECT_ALLOCATED_QUANTITY, exc.message)
    if not entries or any(q is None or q <= 0 for q in allocated):
        return reject(codec.ALLOC_REJ_INCORRECT_ALLOCATED_QUANTITY, "Every NoAllocs entry needs a positive AllocQty")
    if sum(allocated) != quantity:
        return reject(
            codec.ALLOC_REJ_INCORRECT_ALLOCATED_QUANTITY,
            f"AllocQty sums to {sum(allocated)}, not the Quantity {quantity}",
        )
    return decision


def allocation_ack_body(decision: AllocationDecision, status: str, now: dt.datetime) -> list[tuple[int, str]]:
    """The AllocationInstructionAck answering ``decision`` with AllocStatus ``status``
    (the TradeDate echoed; AllocRejCode and Text on a reject)."""
    rejected = status == codec.ALLOC_STATUS_BLOCK_REJECT
    return codec.allocation_instruction_ack(
        alloc_id=decision.alloc_id,
        status=status,
        transact_time=now,
        trade_date=decision.trade_date,
        rej_code=decision.rej_code if rejected else None,
        text=decision.text if rejected else "",
    )


__all__ = [
    "ALLOC_ACCEPTED",
    "ALLOC_CANCELLED",
    "ALLOC_RECEIVED",
    "ALLOC_REJECTED",
    "ALLOC_REPLACED",
    "TRANS_CANCEL",
    "AllocationDecision",
    "allocation_ack_body",
    "allocation_decide",
]
