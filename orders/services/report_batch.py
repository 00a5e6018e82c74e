"""The state a batch of venue reports works on, and how it is written (DESIGN §4.4).

``BatchState`` is created inside the applying transaction: it locks every order the
reports name in one statement (id order; the lock order account -> order -> position
holds, positions being written last), loads their requests and executions in effect
and the ExecIDs already taken. The FIX rules (``execution_reports.ReportBatch``) change
these in memory, report after report; ``flush()`` then writes everything with bulk
statements: executions, flags and audit events inserted in bulk, orders, requests and
executions updated in bulk, positions by one set-based UPDATE. A report refused by the
rules is undone in memory (checkpoint and restore), never by a savepoint."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from audit.services import audit_events_record
from oms_site.db import rows_insert, rows_update
from routing.fix import codec
from routing.models import Venue

from ..locks import accounts_lock
from ..models import STICKY_STATUSES, Execution, Order, OrderFlag, OrderRequest, OrderStatus
from ._common import PRICE_QUANT, order_event, order_snapshot
from .allocations import allocations_propose
from .positions import (
    NOTIONAL_CONTEXT,
    position_delta_add,
    position_delta_checkpoint,
    position_delta_restore,
    positions_add,
)

logger = logging.getLogger(__name__)

ORDER_FIELDS = (
    "status",
    "quantity",
    "limit_price",
    "filled_quantity",
    "avg_fill_price",
    "reject_reason",
    "cl_ord_id",
    "venue_order_id",
    "acknowledged",
    "needs_review",
    "updated_at",
)
REQUEST_FIELDS = ("state", "venue_acknowledged", "reject_reason", "resolved_at")
# Sums of quantity x price: up to 10^12 x 10^10 with 8 decimals, exact.


@dataclass(frozen=True)
class Report:
    """One received message to apply: its tags (numbers to text) and when it arrived."""

    tags: dict[int, str]
    received_at: dt.datetime

    @property
    def msg_type(self) -> str:
        return self.tags.get(35, "8")


def flag_build(
    order: Order | None, *, venue: Venue, kind: str, message: str, details: dict[str, Any]
) -> tuple[OrderFlag, dict[str, Any]]:
    """An unsaved flag and its audit event (``flag_id`` filled in once it is saved)."""
    logger.warning("order flag %s on order %s (venue %s): %s", kind, order.pk if order else None, venue.code, message)
    flag = OrderFlag(order=order, venue_code=venue.code, kind=kind, message=message, details=details)
    event = {
        "actor": f"venue:{venue.code}",
        "action": "order.flagged",
        "object_type": "order" if order else "venue",
        "object_id": order.pk if order else venue.code,
        "details": {"kind": kind, "message": message, **details},
    }
    return flag, event


def parent_status(parent: Order, filled: int) -> str:
    """The status a worked parent takes from what its children filled; a parent not
    worked yet, or ended (cancelled: sticky), keeps its own."""
    if parent.status in STICKY_STATUSES or (parent.status == OrderStatus.NEW and not filled):
        return parent.status
    if filled >= parent.quantity:
        return OrderStatus.FILLED
    return OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.OPEN


class BatchState:
    """The reports of one applying transaction and the state they work on.

    Created inside the transaction: locks the orders the reports name (one statement,
    id order; the lock order account -> order -> position holds, positions being
    written last), loads their requests and executions in effect and the ExecIDs
    already taken. The rules (``ReportBatch.apply``) change them in memory, report by
    report; ``flush()`` writes everything with bulk statements."""

    def __init__(self, venue: Venue, reports: list[Report]) -> None:
        self.venue = venue
        self.actor = f"venue:{venue.code}"
        self.now = timezone.now()
        self.orders: dict[int, Order] = {}
        self.accounts: set[int] = set()  # locked
        self.requests: dict[int, list[OrderRequest]] = {}
        self.in_effect: dict[int, list[Execution]] = {}
        self.by_cl_ord_id: dict[str, int] = {}
        self.by_venue_order_id: dict[str, int] = {}
        self.exec_ids: set[str] = set()
        # What flush() writes.
        self.new_executions: list[Execution] = []
        self.changed_executions: dict[int, Execution] = {}
        self.changed_orders: set[int] = set()
        self.changed_requests: dict[int, OrderRequest] = {}
        self.position_deltas: dict[tuple[int, int], list] = {}
        self.flags: list[OrderFlag] = []
        self.events: list[dict[str, Any]] = []
        # A report that failed after booking a venue-originated order cannot be undone
        # in memory: the batch must be applied again report by report (savepoints).
        self.spoiled = False
        self.created: set[int] = set()  # orders booked from venue reports in this batch
        self._load(reports)

    # --------------------------------------------------------------------- loading
    def _load(self, reports: list[Report]) -> None:
        cl_ord_ids = {r.tags[t] for r in reports for t in (11, 41) if r.tags.get(t)}
        venue_order_ids = {r.tags[37] for r in reports if r.tags.get(37)}
        if cl_ord_ids:
            self.by_cl_ord_id.update(
                OrderRequest.objects.filter(cl_ord_id__in=cl_ord_ids, order__venue=self.venue).values_list(
                    "cl_ord_id", "order_id"
                )
            )
        if venue_order_ids:
            # Newest first, as the one-report lookup takes it.
            for venue_order_id, order_id in (
                Order.objects.filter(venue=self.venue, venue_order_id__in=venue_order_ids)
                .order_by("created_at", "id")
                .values_list("venue_order_id", "pk")
            ):
                self.by_venue_order_id[venue_order_id] = order_id
        order_ids = {oid for r in reports if (oid := self.order_id_for(r.tags)) is not None}
        self._lock(order_ids)
        exec_ids = {r.tags[17] for r in reports if r.tags.get(17)}
        if exec_ids:
            self.exec_ids.update(
                Execution.objects.filter(venue=self.venue, exec_id__in=exec_ids).values_list("exec_id", flat=True)
            )

    def _lock(self, order_ids: set[int]) -> None:
        """Lock and load these orders, their requests and executions in effect. Their
        accounts are locked first (id order; the lock order account -> order ->
        position): an order's change moves its account's running exposure
        (``AccountExposure``), and a transaction that changes several accounts' rows
        must take them in one order, as submits and baskets do."""
        order_ids = set(order_ids) - set(self.orders)
        if not order_ids:
            return
        rows = list(Order.objects.filter(pk__in=order_ids).values_list("account_id", "parent_id"))
        account_ids = {account_id for account_id, _ in rows}
        # A child's fills move its parent (``_parents_follow``): the parents are locked
        # in the same statement. A parent is created before its children (a lower id),
        # so "parent before child" holds, as when a parent's cancel cascades.
        order_ids |= {parent_id for _, parent_id in rows if parent_id is not None} - set(self.orders)
        accounts_lock(account_ids=account_ids - self.accounts)
        self.accounts |= account_ids
        locked = (
            Order.objects.select_for_update(of=("self",))
            .select_related("security", "account", "venue")
            .filter(pk__in=order_ids)
            .order_by("id")
        )
        for order in locked:
            self.orders[order.pk] = order
            self.requests[order.pk] = []
            self.in_effect[order.pk] = []
            if order.venue_order_id and order.venue_id == self.venue.pk:
                self.by_venue_order_id.setdefault(order.venue_order_id, order.pk)
        for request in OrderRequest.objects.filter(order_id__in=order_ids).order_by("id"):
            self.requests[request.order_id].append(request)
        # Without the message each was booked from: the rules read quantities, prices
        # and ids; decoding every earlier fill's JSON again would be wasted work.
        in_effect = Execution.objects.filter(order_id__in=order_ids, in_effect=True).defer("message")
        for execution in in_effect.order_by("id"):
            self.in_effect[execution.order_id].append(execution)

    def order_id_for(self, tags: dict[int, str]) -> int | None:
        """The order a report names (ClOrdID, OrigClOrdID, then the venue's OrderID), as
        of the reports applied so far."""
        for tag in (11, 41):
            if tags.get(tag) and tags[tag] in self.by_cl_ord_id:
                return self.by_cl_ord_id[tags[tag]]
        if tags.get(37):
            return self.by_venue_order_id.get(tags[37])
        return None

    def order_locked(self, order_id: int) -> Order:
        """The order, locked (an order named only by a report applied in this batch is
        locked when first needed)."""
        if order_id not in self.orders:
            self._lock({order_id})  # named only after the batch was loaded (rare)
        return self.orders[order_id]

    # ---------------------------------------------------------- undo for a refusal
    def _checkpoint(self, order: Order) -> tuple:
        return (
            order.__dict__.copy(),
            [(r, r.__dict__.copy()) for r in self.requests[order.pk]],
            [(e, e.__dict__.copy()) for e in self.in_effect[order.pk]],
            list(self.in_effect[order.pk]),
            position_delta_checkpoint(self.position_deltas, (order.account_id, order.security_id)),
            dict(self.changed_executions),
            dict(self.changed_requests),
        )

    def _restore(self, order: Order, checkpoint: tuple) -> None:
        order_state, requests, executions, in_effect, deltas, changed_executions, changed_requests = checkpoint
        order.__dict__.update(order_state)
        for request, state in requests:
            request.__dict__.update(state)
        for execution, state in executions:
            execution.__dict__.update(state)
        self.in_effect[order.pk] = in_effect
        position_delta_restore(self.position_deltas, deltas)
        self.changed_executions = changed_executions
        self.changed_requests = changed_requests

    # -------------------------------------------------------------------- writing
    def _event(self, order: Order, *, action: str, before=None, details=None) -> None:
        self.events.append(order_event(order, actor=self.actor, action=action, before=before, details=details))

    def event(self, **event: Any) -> None:
        """An audit event written with the batch, after the ones before it."""
        self.events.append(event)

    def flag(self, order: Order | None, *, kind: str, message: str, details: dict[str, Any]) -> OrderFlag:
        flag, event = flag_build(order, venue=self.venue, kind=kind, message=message, details=details)
        event["flag"] = flag
        self.flags.append(flag)
        self.events.append(event)
        if order is not None and not order.needs_review:
            order.needs_review = True
            self._touch(order)
        return flag

    def _touch(self, order: Order) -> None:
        order.updated_at = self.now
        self.changed_orders.add(order.pk)

    def _request_set(self, request: OrderRequest, **values: Any) -> None:
        for name, value in values.items():
            setattr(request, name, value)
        self.changed_requests[request.pk] = request

    def _execution_set(self, execution: Execution, **values: Any) -> None:
        for name, value in values.items():
            setattr(execution, name, value)
        if execution.pk is not None:
            self.changed_executions[execution.pk] = execution

    def flush(self) -> None:
        """Write what the batch worked out: a handful of statements, whatever its size."""
        if self.new_executions:
            rows_insert(Execution, self.new_executions)
            referring = [e for e in self.new_executions if getattr(e, "ref_pending", None) is not None]
            for execution in referring:
                execution.ref_execution_id = execution.ref_pending.pk
            rows_update(Execution, referring, ["ref_execution"])
        rows_update(Execution, list(self.changed_executions.values()), ["in_effect", "outcome"])
        rows_update(OrderRequest, list(self.changed_requests.values()), list(REQUEST_FIELDS))
        blocks = [self.orders[pk] for pk in sorted(self.changed_orders) if self.orders[pk].block_order]
        rows_update(Order, [self.orders[pk] for pk in sorted(self.changed_orders)], list(ORDER_FIELDS))
        blocks += [parent for parent in self._parents_follow() if parent.block_order]
        self._positions_write()
        if blocks:  # a block that ended with fills: its allocation is proposed
            allocations_propose(orders=blocks, actor=self.actor)
        if self.flags:
            rows_insert(OrderFlag, self.flags)
        if self.events:
            for event in self.events:
                flag = event.pop("flag", None)
                if flag is not None:
                    event["details"] = {**event["details"], "flag_id": flag.pk}
            audit_events_record(self.events)
        self.new_executions, self.changed_executions, self.changed_requests = [], {}, {}
        self.changed_orders, self.position_deltas, self.flags, self.events = set(), {}, [], []

    def _parents_follow(self) -> list[Order]:
        """The parents of the child orders just written take their children's fills:
        the filled quantity and average price of all their children's executions in
        effect (read in one statement, summed exactly, the average quantized as a
        child's), and the status that follows (``Order.follow_children``; a cancelled
        parent keeps its status). One event per parent changed; a parent never books a
        position (its children's executions did)."""
        parent_ids = {self.orders[pk].parent_id for pk in self.changed_orders if self.orders[pk].parent_id}
        if not parent_ids:
            return []
        totals = {parent_id: [0, Decimal(0)] for parent_id in parent_ids}
        for parent_id, qty, price in Execution.objects.filter(
            order__parent_id__in=parent_ids, in_effect=True
        ).values_list("order__parent_id", "last_qty", "last_px"):
            totals[parent_id][0] += qty
            totals[parent_id][1] = NOTIONAL_CONTEXT.add(
                totals[parent_id][1], NOTIONAL_CONTEXT.multiply(Decimal(qty), price)
            )
        changed = []
        for parent_id in sorted(parent_ids):
            parent = self.order_locked(parent_id)
            filled, notional = totals[parent_id]
            avg = (notional / filled).quantize(PRICE_QUANT) if filled else None
            if filled > parent.quantity:
                self.flag(
                    parent,
                    kind=OrderFlag.Kind.OVERFILL,
                    message=f"Child orders filled {filled} of an order for {parent.quantity}: not applied.",
                    details={"filled_quantity": filled},
                )
                changed.append(parent)
                continue
            status = parent_status(parent, filled)
            if (filled, avg, status) == (parent.filled_quantity, parent.avg_fill_price, parent.status):
                continue
            before = order_snapshot(parent)
            parent.filled_quantity, parent.avg_fill_price = filled, avg
            if parent.status == OrderStatus.NEW:
                parent.start_working()
            if status != parent.status:
                parent.follow_children(status)
            parent.updated_at = self.now
            changed.append(parent)
            self._event(
                parent, action="order.parent_progress", before=before, details={"children_filled_quantity": filled}
            )
        self.changed_orders.difference_update(parent.pk for parent in changed)  # written here
        rows_update(Order, changed, list(ORDER_FIELDS))
        return changed

    def _positions_write(self) -> None:
        """Fills and their reversals, added to the positions in one statement."""
        positions_add(self.position_deltas, now=self.now)  # a fill and its bust in one batch still leave the row

    # ------------------------------------------------------------------- applying

    def _new_execution(
        self, tags: dict[int, str], received_at: dt.datetime, order: Order | None, **values
    ) -> Execution:
        execution = Execution(
            venue=self.venue,
            order=order,
            exec_type=tags.get(150, ""),
            ord_status=tags.get(39, ""),
            cl_ord_id=tags.get(11, ""),
            last_qty=codec.tag_int(tags, 32) or 0,
            last_px=codec.tag_decimal(tags, 31),
            transact_time=codec.tag_time(tags, 60),
            received_at=received_at,
            message={str(k): v for k, v in tags.items()},
            **values,
        )
        if execution.exec_id:
            self.exec_ids.add(execution.exec_id)
        self.new_executions.append(execution)
        return execution

    def _pending(self, order: Order) -> list[OrderRequest]:
        return [r for r in self.requests[order.pk] if r.state == OrderRequest.State.PENDING]

    def _resolve_pending(self, order: Order, *, state: str) -> None:
        for request in self._pending(order):
            self._request_set(request, state=state, resolved_at=self.now)

    def _request_for(self, order: Order, cl_ord_id: str | None, kind: str) -> OrderRequest | None:
        if not cl_ord_id:
            return None
        return next((r for r in self.requests[order.pk] if r.cl_ord_id == cl_ord_id and r.kind == kind), None)

    def _position_apply(self, order: Order, *, qty: int, price: Decimal) -> None:
        """A fill (qty > 0) or its reversal (qty < 0), added to the account's position
        when the batch is written. A block's executions are booked to its funds only
        when middle office confirms an allocation (``allocations``): until then they
        are the block's unallocated quantity."""
        if order.block_order:
            return
        position_delta_add(
            self.position_deltas,
            account_id=order.account_id,
            security_id=order.security_id,
            side=order.side,
            qty=qty,
            price=price,
        )
