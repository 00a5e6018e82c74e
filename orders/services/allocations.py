"""Allocation of a block order's fills to its funds (issue 14, FIX44-ALLOCATIONS.md).

When a block ends with fills (filled; or cancelled, expired or done for the day with
some filled) the OMS proposes, for each venue that executed it, an allocation of what
that venue executed: the rule of ``orders.allocation`` over the block's targets, every
fund at the venue's average price. Middle office may change the quantities (they must
still sum to what was executed) and confirms: each fund's position is booked and the
broker is sent an AllocationInstruction (35=J), whose AllocationInstructionAck (35=P)
moves the allocation to received, accepted or rejected. Before the broker accepts, an
allocation can be cancelled (its bookings reversed, the broker sent a cancel) and a
fresh proposal takes its place; a broker's rejection does the same.

Every step is on the block's audit trail with the allocation before and after, in the
transaction of the change. Locks: the funds' accounts (id order), the block, then the
positions: the fixed order account -> order -> position."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import actor_name, audit_event_record
from compliance.readings import trading_day
from oms_site.errors import InvalidInput, InvalidStateTransition, NotFound, NotPermitted
from routing import services as routing_services
from routing.fix import codec
from routing.models import Venue

from ..allocation import allocation_compute
from ..models import STICKY_STATUSES, Account, Allocation, AllocationLine, Execution, Order, OrderFlag, OrderStatus
from ..selectors import orders_visible_to
from ._common import PRICE_QUANT, order_lock_with_account
from .positions import NOTIONAL_CONTEXT, position_delta_add, positions_add

S = OrderStatus
A = Allocation.Status
PERMISSION = "orders.confirm_allocation"
ALLOC_TYPE = "PRELIMINARY"  # the buy side's instruction: quantities and price, no money
# The outcome of an AllocationInstructionAck naming no allocation of its venue: kept in
# the inbox and on the trail.
ALLOCATION_ACK_UNMATCHED = "alloc_ack_unmatched"
# AllocStatus (87) of an AllocationInstructionAck -> the allocation's status.
ACK_STATUS = {
    codec.ALLOC_STATUS_RECEIVED: A.RECEIVED,
    codec.ALLOC_STATUS_ACCEPTED: A.ACCEPTED,
    codec.ALLOC_STATUS_BLOCK_REJECT: A.REJECTED,
    codec.ALLOC_STATUS_ACCOUNT_REJECT: A.REJECTED,
    codec.ALLOC_STATUS_REJECTED_BY_INTERMEDIARY: A.REJECTED,
}


# ------------------------------------------------------------------------- reading
def allocation_snapshot(allocation: Allocation, lines: list[AllocationLine] | None = None) -> dict[str, Any]:
    """The allocation as the audit trail records it."""
    lines = list(allocation.lines.select_related("account")) if lines is None else lines
    return {
        "alloc_id": allocation.alloc_id,
        "status": allocation.status,
        "venue": allocation.venue.code,
        "quantity": allocation.quantity,
        "avg_price": allocation.avg_price,
        "lines": [
            {"account": line.account.code, "quantity": line.quantity, "proposed_quantity": line.proposed_quantity}
            for line in lines
        ],
    }


def block_executions_by_venue(order: Order) -> dict[int, tuple[int, Decimal, list[tuple[str, str]]]]:
    """What each venue executed of the block (its own executions in effect, or its
    child orders'): venue id -> (quantity, notional, the (ClOrdID, OrderID) of the
    orders that executed there)."""
    executed = Execution.objects.filter(in_effect=True).filter(Q(order=order) | Q(order__parent=order))
    by_venue: dict[int, list] = {}
    for venue_id, qty, price, order_id, cl_ord_id, venue_order_id in executed.values_list(
        "venue_id", "last_qty", "last_px", "order_id", "order__cl_ord_id", "order__venue_order_id"
    ):
        entry = by_venue.setdefault(venue_id, [0, Decimal(0), {}])
        entry[0] += qty
        entry[1] = NOTIONAL_CONTEXT.add(entry[1], NOTIONAL_CONTEXT.multiply(Decimal(qty), price))
        entry[2].setdefault(order_id, (cl_ord_id, venue_order_id))
    return {venue_id: (qty, notional, list(orders.values())) for venue_id, (qty, notional, orders) in by_venue.items()}


def block_unallocated_quantity(order: Order) -> int:
    """What the block executed that no allocation has booked yet."""
    booked = sum(a.quantity for a in order.allocations.all() if a.status in Allocation.BOOKED)
    return max(order.filled_quantity - booked, 0)


# ----------------------------------------------------------------------- proposing
def block_ended(order: Order) -> bool:
    """A block (the top of its family) that will execute no more and executed some."""
    return (
        order.block_order
        and order.parent_id is None
        and order.filled_quantity > 0
        and (order.status == S.FILLED or order.status in STICKY_STATUSES)
    )


def allocations_propose(*, orders: list[Order], actor: str) -> list[Allocation]:
    """Propose the allocation of every ended block in ``orders`` (locked by the caller,
    in its transaction) for each venue that executed it and has none in force yet."""
    proposed = []
    for order in orders:
        if not (order.block_order and order.parent_id is None):
            continue
        _booked_in_step(order)
        executed = block_executions_by_venue(order)
        _stale_proposals_withdraw(order, executed, actor=actor)
        if not block_ended(order):
            continue
        in_force = set(
            order.allocations.exclude(status__in=[A.REJECTED, A.CANCELLED]).values_list("venue_id", flat=True)
        )
        for venue_id, (quantity, notional, _orders) in sorted(executed.items()):
            if venue_id not in in_force and quantity > 0:
                proposed.append(_propose(order, venue_id, quantity, notional, actor=actor))
    return proposed


def _stale_proposals_withdraw(order: Order, executed: dict, *, actor: str) -> None:
    """A proposal not confirmed yet whose venue's executed quantity has changed since
    (a bust or correction) is withdrawn (cancelled); an ended block is proposed afresh."""
    for allocation in order.allocations.filter(status__in=Allocation.OPEN).select_related("venue"):
        quantity = executed.get(allocation.venue_id, (0, None, None))[0]
        if quantity == allocation.quantity:
            continue
        lines = list(allocation.lines.select_related("account"))
        _cancelled(
            order,
            allocation,
            lines,
            allocation_snapshot(allocation, lines),
            actor=actor,
            reason=f"the venue's executed quantity changed to {quantity}",
        )


def _booked_in_step(order: Order) -> None:
    """A bust or correction after an allocation was booked leaves the funds' bookings
    different from what the block executed: flagged for review (once), never
    re-allocated silently: middle office cancels and redoes the allocation."""
    booked = sum(order.allocations.filter(status__in=Allocation.BOOKED).values_list("quantity", flat=True))
    if not booked or booked == order.filled_quantity:
        return
    kind = OrderFlag.Kind.ALLOCATION_OUT_OF_STEP
    if OrderFlag.objects.filter(order=order, kind=kind, resolved_at__isnull=True).exists():
        return
    OrderFlag.objects.create(
        order=order,
        venue_code=order.venue.code if order.venue_id else "",
        kind=kind,
        message=f"Allocations booked {booked} but the block has executed {order.filled_quantity}: "
        "cancel and redo the allocation.",
        details={"booked_quantity": booked, "filled_quantity": order.filled_quantity},
    )
    Order.objects.filter(pk=order.pk).update(needs_review=True)
    order.needs_review = True


def _propose(
    order: Order, venue_id: int, quantity: int, notional: Decimal, *, actor: str, replaces: Allocation | None = None
) -> Allocation:
    shares = allocation_compute(
        executed_quantity=quantity, lot_size=order.security.lot_size, targets=order.allocation_targets
    )
    accounts = {a.code: a for a in Account.objects.filter(code__in=[code for code, _q in shares])}
    number = Allocation.objects.filter(order=order).count() + 1
    venue = Venue.objects.get(pk=venue_id)
    allocation = Allocation.objects.create(
        order=order,
        venue=venue,
        alloc_id=f"{order.pk}-{venue.code}-A{number}",
        quantity=quantity,
        avg_price=(notional / quantity).quantize(PRICE_QUANT),
        trade_date=trading_day(order.created_at),
        replaces=replaces,
    )
    lines = AllocationLine.objects.bulk_create(
        [
            AllocationLine(
                allocation=allocation, line=index, account=accounts[code], quantity=qty, proposed_quantity=qty
            )
            for index, (code, qty) in enumerate(shares, start=1)
        ]
    )
    _audit(order, allocation, actor=actor, action="allocation.proposed", lines=lines)
    return allocation


# ------------------------------------------------------------------ middle office
def _lock_for_middle_office(*, user, order_id: int, allocation_id: int | None) -> tuple[Order, Allocation]:
    """The block's funds, the block, then its allocation (``allocation_id``, or the one
    open for middle office when the block has exactly one)."""
    if not user.has_perm(PERMISSION):
        if orders_visible_to(user=user).filter(pk=order_id).exists():
            raise NotPermitted("Only middle office may change, confirm or cancel an allocation.")
        raise NotFound("Order not found.")
    order = order_lock_with_account(order_id=order_id)  # a block: every fund's account
    if not order.block_order:
        raise InvalidStateTransition("Only a block order is allocated.", code="not_block_order")
    allocations = order.allocations.select_for_update().select_related("venue")
    if allocation_id is not None:
        allocation = allocations.filter(pk=allocation_id).first()
        if allocation is None:
            raise InvalidInput("Invalid allocation.", details={"allocation": ["Not an allocation of this order."]})
        return order, allocation
    candidates = [a for a in allocations if a.status not in (A.REJECTED, A.CANCELLED, A.ACCEPTED)]
    if len(candidates) != 1:
        raise InvalidInput(
            "Invalid allocation.",
            details={"allocation": ["Name the allocation: this order has none or several in progress."]},
        )
    return order, candidates[0]


def allocation_change(*, user, order_id: int, lines: Any, reason: Any, allocation_id: int | None = None) -> Allocation:
    """Middle office changes a proposed allocation's quantities: ``lines`` is
    [{"account", "quantity"}] for every fund of the allocation, whole numbers of zero
    or more summing to the executed quantity. Audited with before and after."""
    errors: dict[str, list[str]] = {}
    if not isinstance(reason, str) or not reason.strip():
        errors["reason"] = ["Say why the allocation is changed."]
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        errors["lines"] = ["Must be a list of {account, quantity}."]
    if errors:
        raise InvalidInput("Invalid allocation change.", details=errors)
    with transaction.atomic():
        order, allocation, current, before = _open_allocation(
            user=user, order_id=order_id, allocation_id=allocation_id, verb="changed"
        )
        wanted = _lines_check(lines, current, allocation.quantity)
        for line in current:
            line.quantity = wanted[line.account.code]
        AllocationLine.objects.bulk_update(current, ["quantity"])
        allocation.status = A.CHANGED
        allocation.save(update_fields=["status", "updated_at"])
        _audit(
            order,
            allocation,
            actor=actor_name(user),
            action="allocation.changed",
            lines=current,
            before=before,
            details={"reason": reason.strip()},
        )
    return allocation


def _lines_check(lines: list[dict], current: list[AllocationLine], executed: int) -> dict[str, int]:
    funds = [line.account.code for line in current]
    errors: dict[str, list[str]] = {}
    wanted: dict[str, int] = {}
    for index, line in enumerate(lines):
        account, quantity = line.get("account"), line.get("quantity")
        if account not in funds:
            errors[f"lines[{index}].account"] = [f"Not a fund of this allocation ({', '.join(funds)})."]
        elif account in wanted:
            errors[f"lines[{index}].account"] = [f"Account {account} appears twice."]
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            errors[f"lines[{index}].quantity"] = ["Must be a whole number, zero or more."]
        elif isinstance(account, str):
            wanted[account] = quantity
    if not errors and set(wanted) != set(funds):
        errors["lines"] = [f"Give every fund of the allocation: {', '.join(funds)}."]
    if not errors and sum(wanted.values()) != executed:
        errors["lines"] = [
            f"The quantities must sum to the executed quantity ({executed}), not {sum(wanted.values())}."
        ]
    if errors:
        raise InvalidInput("Invalid allocation change.", details=errors)
    return wanted


def allocation_confirm(*, user, order_id: int, allocation_id: int | None = None) -> Allocation:
    """Middle office confirms: each fund's position is booked (its quantity at the
    allocation's average price) and the AllocationInstruction is queued for the broker,
    in one transaction."""
    with transaction.atomic():
        order, allocation, lines, before = _open_allocation(
            user=user, order_id=order_id, allocation_id=allocation_id, verb="confirmed"
        )
        _book(order, allocation, lines, sign=1)
        executed_by = block_executions_by_venue(order).get(allocation.venue_id, (0, 0, []))[2]
        _instruction_send(order, allocation, lines, alloc_id=allocation.alloc_id, trans_type="NEW", orders=executed_by)
        allocation.status, allocation.confirmed_by, allocation.confirmed_at = A.CONFIRMED, user, timezone.now()
        allocation.save(update_fields=["status", "confirmed_by", "confirmed_at", "updated_at"])
        _audit(order, allocation, actor=actor_name(user), action="allocation.confirmed", lines=lines, before=before)
    return allocation


def allocation_cancel(*, user, order_id: int, reason: Any, allocation_id: int | None = None) -> Allocation:
    """Cancel an allocation the broker has not accepted, and propose it afresh: a
    confirmed one has its bookings reversed and the broker is sent a cancel (35=J,
    AllocTransType 2). Returns the new proposal."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Invalid allocation cancel.", details={"reason": ["Say why the allocation is cancelled."]})
    with transaction.atomic():
        order, allocation = _lock_for_middle_office(user=user, order_id=order_id, allocation_id=allocation_id)
        if allocation.status not in Allocation.CANCELLABLE:
            raise InvalidStateTransition(
                f"Allocation {allocation.alloc_id} is {allocation.status} and cannot be cancelled"
                + (" (the broker has accepted it)." if allocation.status == A.ACCEPTED else "."),
                details={"status": allocation.status},
            )
        actor = actor_name(user)
        lines = list(allocation.lines.select_related("account"))
        before = allocation_snapshot(allocation, lines)
        booked = allocation.status in Allocation.BOOKED
        if booked:
            allocation.cancel_alloc_id = f"{allocation.alloc_id}-X"
            _instruction_send(
                order, allocation, lines, alloc_id=allocation.cancel_alloc_id, trans_type="CANCEL", orders=[]
            )
        _cancelled(order, allocation, lines, before, actor=actor, reason=reason.strip())
        if booked:  # once it is cancelled: the funds' costs are worked out without it
            _book(order, allocation, lines, sign=-1)
        return _repropose(order, allocation, actor=actor)


def _cancelled(
    order: Order, allocation: Allocation, lines: list[AllocationLine], before: dict, *, actor: str, reason: str
) -> None:
    allocation.status = A.CANCELLED
    allocation.save(update_fields=["status", "cancel_alloc_id", "updated_at"])
    _audit(
        order,
        allocation,
        actor=actor,
        action="allocation.cancelled",
        lines=lines,
        before=before,
        details={"reason": reason},
    )


def _open_allocation(
    *, user, order_id: int, allocation_id: int | None, verb: str
) -> tuple[Order, Allocation, list[AllocationLine], dict]:
    """Locked for middle office, an allocation that may still be changed or confirmed:
    the block, the allocation, its lines and its snapshot before the step."""
    order, allocation = _lock_for_middle_office(user=user, order_id=order_id, allocation_id=allocation_id)
    if allocation.status not in Allocation.OPEN:
        raise InvalidStateTransition(
            f"Allocation {allocation.alloc_id} is {allocation.status}: only a proposed allocation can be {verb}.",
            details={"status": allocation.status},
        )
    lines = list(allocation.lines.select_related("account"))
    return order, allocation, lines, allocation_snapshot(allocation, lines)


def _instruction_send(
    order: Order,
    allocation: Allocation,
    lines: list[AllocationLine],
    *,
    alloc_id: str,
    trans_type: str,
    orders: list[tuple[str, str]],
) -> None:
    """Queue the AllocationInstruction (35=J) for the allocation's venue, in the
    caller's transaction: a new one (naming the orders that executed), or the cancel of
    ``allocation`` (RefAllocID its AllocID)."""
    routing_services.outbox_message_enqueue(
        venue=allocation.venue,
        order_id=order.pk,
        cl_ord_id=alloc_id,
        msg_type=codec.MSG_ALLOCATION_INSTRUCTION,
        fields=codec.allocation_instruction(
            alloc_id=alloc_id,
            trans_type=trans_type,
            ref_alloc_id=allocation.alloc_id if trans_type != "NEW" else None,
            alloc_type=ALLOC_TYPE,
            side=order.side,
            symbol=order.security.symbol,
            quantity=allocation.quantity,
            avg_px=allocation.avg_price,
            trade_date=allocation.trade_date,
            transact_time=timezone.now(),
            orders=orders,
            allocs=[(line.account.code, line.quantity) for line in lines if line.quantity],
        ),
    )


def _repropose(order: Order, ended: Allocation, *, actor: str) -> Allocation:
    notional = NOTIONAL_CONTEXT.multiply(ended.avg_price, Decimal(ended.quantity))
    return _propose(order, ended.venue_id, ended.quantity, notional, actor=actor, replaces=ended)


def _book(order: Order, allocation: Allocation, lines: list[AllocationLine], *, sign: int) -> None:
    """Each fund's quantity at the allocation's price added to (or, ``sign`` -1, taken
    back from) its position. The caller holds the funds' locks."""
    deltas: dict = {}
    for line in lines:
        if line.quantity:
            position_delta_add(
                deltas,
                account_id=line.account_id,
                security_id=order.security_id,
                side=order.side,
                qty=sign * line.quantity,
                price=allocation.avg_price,
            )
    positions_add(deltas, now=timezone.now())


def _audit(
    order: Order,
    allocation: Allocation,
    *,
    actor: str,
    action: str,
    lines: list[AllocationLine],
    before: dict | None = None,
    details: dict | None = None,
) -> None:
    audit_event_record(
        actor=actor,
        action=action,
        object_type="order",
        object_id=order.pk,
        before=before,
        after=allocation_snapshot(allocation, lines),
        details={"allocation": allocation.pk, "alloc_id": allocation.alloc_id, **(details or {})},
    )


# ------------------------------------------------------------------------- broker
def allocation_ack_apply(*, venue: Venue, tags: dict[int, str], received_at: dt.datetime) -> tuple[str, int | None]:
    """An AllocationInstructionAck (35=P) from ``venue``: the allocation it answers
    takes its status (received, accepted; a rejection reverses the bookings and
    proposes afresh); the ack of a cancel is recorded on the trail. Returns the
    outcome and the block's id (None when no allocation of the venue has the AllocID)."""
    alloc_id, status = tags.get(70, ""), tags.get(87, "")
    order_id = (
        Allocation.objects.filter(venue=venue)
        .filter(Q(alloc_id=alloc_id) | Q(cancel_alloc_id=alloc_id))
        .values_list("order_id", flat=True)
        .first()
    )
    if order_id is None:
        return ALLOCATION_ACK_UNMATCHED, None
    order = order_lock_with_account(order_id=order_id)  # the funds' accounts, then the block
    allocation = (
        Allocation.objects.select_for_update()
        .select_related("venue")
        .get(Q(alloc_id=alloc_id) | Q(cancel_alloc_id=alloc_id), venue=venue)
    )
    actor = f"venue:{venue.code}"
    details = {"alloc_status": status, "text": tags.get(58, ""), "rej_code": tags.get(88, "")}
    lines = list(allocation.lines.select_related("account"))
    before = allocation_snapshot(allocation, lines)
    if alloc_id == allocation.cancel_alloc_id:
        _audit(
            order,
            allocation,
            actor=actor,
            action="allocation.cancel_acknowledged",
            lines=lines,
            before=before,
            details=details,
        )
        return "alloc_cancel_ack", order.pk
    allocation.ack_status, allocation.ack_text, allocation.acked_at = status, tags.get(58, ""), received_at
    outcome = "alloc_ack"
    new_status = ACK_STATUS.get(status)
    if allocation.status in (A.CONFIRMED, A.RECEIVED) and new_status is not None:
        allocation.status = new_status
    else:
        outcome = "alloc_ack_ignored"  # an ack after a cancel, or an intermediate status
    allocation.save(update_fields=["status", "ack_status", "ack_text", "acked_at", "updated_at"])
    if allocation.status == A.REJECTED and outcome == "alloc_ack":  # its bookings taken back
        _book(order, allocation, lines, sign=-1)
    _audit(
        order, allocation, actor=actor, action="allocation.acknowledged", lines=lines, before=before, details=details
    )
    if allocation.status == A.REJECTED and outcome == "alloc_ack":
        _repropose(order, allocation, actor=actor)
    return outcome, order.pk
