"""Applying what a venue reports: ExecutionReports (35=8) and OrderCancelRejects
(35=9), each exactly once. FIX 4.4 order state rules (DESIGN §6): OrdStatus
precedence, fills before the ack or while pending, unsolicited cancels and
restatements, busts and corrections, cancel/replace rejects. Overfills, reports for
ended orders and anything the state machine does not allow are recorded and flagged,
never dropped and never applied silently.

Reports are applied in batches, set-based (DESIGN §4.4): a ``ReportBatch`` works out
each report's effects in memory, in the order the venue sent them, on the state
``report_batch.BatchState`` locked and loaded once, and writes the lot with bulk
statements. A single report is a batch of one: there is one code path.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from audit.services import audit_event_record
from oms_site.errors import InvalidInput
from routing.fix import codec
from routing.models import Venue

from ..locks import accounts_lock
from ..models import (
    LIVE_STATUSES,
    STICKY_STATUSES,
    Account,
    Execution,
    Order,
    OrderFlag,
    OrderRequest,
    OrderStatus,
    OrderType,
    Origin,
)
from ..selectors import security_get
from ._common import PRICE_QUANT, order_snapshot
from .report_batch import NOTIONAL_CONTEXT, BatchState, Report, flag_build

logger = logging.getLogger(__name__)
S = OrderStatus

TRADE_EXEC_TYPES = frozenset({"F", "1", "2", "G", "H"})  # 1/2: FIX 4.2 partial fill / fill
EXEC_TYPE_ACTIONS = {
    "0": "order.acknowledged",
    "1": "order.fill",
    "2": "order.fill",
    "3": "order.done_for_day",
    "4": "order.cancelled",
    "5": "order.replaced",
    "6": "order.pending_cancel",
    "7": "order.stopped",
    "8": "order.rejected",
    "9": "order.suspended",
    "A": "order.pending_new",
    "B": "order.calculated",
    "C": "order.expired",
    "D": "order.restated",
    "E": "order.pending_amend",
    "F": "order.fill",
    "G": "order.trade_corrected",
    "H": "order.trade_busted",
    "I": "order.status_report",
}
ORD_STATUS_TERMINAL = {"4": S.CANCELLED, "8": S.REJECTED, "C": S.EXPIRED, "3": S.DONE_FOR_DAY}
CXL_REJ_REASONS = {
    "0": "Too late to cancel",
    "1": "Unknown order",
    "2": "Broker / exchange option",
    "3": "Order already in pending cancel or pending replace status",
    "6": "Duplicate ClOrdID",
    "99": "Other",
}
ORD_REJ_REASONS = {
    "0": "Broker / exchange option",
    "1": "Unknown symbol",
    "2": "Exchange closed",
    "3": "Order exceeds limit",
    "4": "Too late to enter",
    "5": "Unknown order",
    "6": "Duplicate order",
    "11": "Unsupported order characteristic",
    "13": "Incorrect quantity",
    "15": "Unknown account",
    "99": "Other",
}


def venue_reject_reason(tags: dict[int, str]) -> str:
    """Why the venue rejected an order: its Text (58), else its OrdRejReason (103)."""
    text = tags.get(58, "").strip()
    if text:
        return text
    code = tags.get(103, "").strip()
    if not code:
        return "Rejected by venue"
    name = ORD_REJ_REASONS.get(code)
    return f"Rejected by venue: {name} (OrdRejReason {code})" if name else f"Rejected by venue (OrdRejReason {code})"


@dataclass(frozen=True)
class ApplyResult:
    outcome: str  # applied | duplicate | recorded | overfill | unknown_order
    order_id: int | None = None
    status: str | None = None


class _Refusal(Exception):
    """Inside apply: the message is recorded and flagged but changes nothing."""

    def __init__(self, kind: str, message: str, outcome: str = Execution.Outcome.RECORDED):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.outcome = outcome


def report_validate(message: Mapping[Any, Any], received_at: dt.datetime | None = None) -> Report:
    """A message as a Report, or InvalidInput: tags that are not numbers, a message
    type that does not apply to orders, an ExecutionReport without ExecType."""
    tags = codec.tags_from_message(message)
    msg_type = tags.get(35, "8")
    if msg_type not in ("8", "9"):
        raise InvalidInput(
            "Only ExecutionReport (8) and OrderCancelReject (9) apply to orders.", details={"35": [msg_type]}
        )
    if msg_type == "8" and not tags.get(150):
        raise InvalidInput("ExecutionReport without ExecType (150).", details={"150": ["required"]})
    return Report(tags=tags, received_at=received_at or timezone.now())


def order_flag(order: Order | None, *, venue: Venue, kind: str, message: str, details: dict[str, Any]) -> OrderFlag:
    """Flag an order (or an unmatched message) for a person to look at, now: the flag,
    the order's review mark and the audit event, in the caller's transaction."""
    flag, event = flag_build(order, venue=venue, kind=kind, message=message, details=details)
    flag.save()
    if order is not None and not order.needs_review:
        Order.objects.filter(pk=order.pk).update(needs_review=True, updated_at=timezone.now())
        order.needs_review = True
    details = event.pop("details")
    audit_event_record(**event, details={**details, "flag_id": flag.pk})
    return flag


def order_id_for_report(venue: Venue, tags: dict[int, str]) -> int | None:
    """The order a report names: by ClOrdID (11), OrigClOrdID (41), then the venue's
    OrderID (37)."""
    for tag in (11, 41):
        if tags.get(tag):
            order_id = (
                OrderRequest.objects.filter(cl_ord_id=tags[tag], order__venue=venue)
                .values_list("order_id", flat=True)
                .first()
            )
            if order_id:
                return order_id
    if tags.get(37):
        return Order.objects.filter(venue=venue, venue_order_id=tags[37]).values_list("pk", flat=True).first()
    return None


def execution_report_apply(
    *, venue_code: str, message: Mapping[Any, Any], received_at: dt.datetime | None = None
) -> ApplyResult:
    """Apply one ExecutionReport (35=8) or OrderCancelReject (35=9), given as a dict of
    FIX tags, exactly once (a batch of one).

    Under the order's row lock: de-duplicate by ExecID (unique per venue), work out
    the FIX status with OrdStatus precedence, apply quantities, average price and
    position, and audit. Overfills, reports for ended orders and anything the state
    machine does not allow are recorded and flagged, never dropped and never applied
    silently."""
    report = report_validate(message, received_at)
    venue = Venue.objects.filter(code=venue_code).first()
    if venue is None:
        raise InvalidInput("Unknown venue.", details={"venue": [venue_code]})
    with transaction.atomic():
        batch = ReportBatch(venue, [report])
        result = batch.apply(report)
        try:
            with transaction.atomic():
                batch.flush()
        except IntegrityError:
            # The same ExecID committed by a concurrent apply for another order: taken.
            exec_id = report.tags.get(17)
            if exec_id and Execution.objects.filter(venue=venue, exec_id=exec_id).exists():
                return ApplyResult("duplicate", result.order_id, result.status)
            raise
    return result


class ReportBatch(BatchState):
    """The FIX 4.4 rules applied to a batch of reports, one report at a time, in the
    order the venue sent them (DESIGN §6)."""

    def apply(self, report: Report) -> ApplyResult:
        """Work out one report's effects. InvalidInput (a malformed tag) changes nothing."""
        tags = report.tags
        order_id = self.order_id_for(tags)
        if order_id is None and report.msg_type == "8" and tags.get(150) == "0":
            created = self._venue_originated_order(tags)
            order_id = created.pk if created else None
        if order_id is None:
            return self._unknown_order_record(tags, report.msg_type, report.received_at)
        order = self.order_locked(order_id)
        checkpoint = self._checkpoint(order)
        marks = (len(self.new_executions), len(self.flags), len(self.events), order.pk in self.changed_orders)
        try:
            if report.msg_type == "9":
                return self._cancel_reject_apply(order, tags)
            return self._execution_apply(order, tags, report.received_at)
        except InvalidInput:
            if order.origin == Origin.VENUE and order.pk in self.created:
                self.spoiled = True
            self._restore(order, checkpoint)
            for execution in self.new_executions[marks[0] :]:
                self.exec_ids.discard(execution.exec_id)
            del self.new_executions[marks[0] :], self.flags[marks[1] :], self.events[marks[2] :]
            if not marks[3]:
                self.changed_orders.discard(order.pk)
            raise

    def _venue_originated_order(self, tags: dict[int, str]) -> Order | None:
        """An acknowledgement for an order we never sent (a telephoned order, FIX E.1.a):
        book it against the account and security it names, for review."""
        account = Account.objects.filter(code=tags.get(1, "")).first()
        security = security_get(symbol=tags.get(55, ""))
        side = {v: k for k, v in codec.SIDE.items()}.get(tags.get(54, ""))
        quantity = codec.tag_int(tags, 38)
        if not (account and security and side and tags.get(37) and quantity and quantity > 0):
            return None
        price = codec.tag_decimal(tags, 44)
        client_order_id = f"{self.venue.code}:{tags[37]}"[:64]
        if account.pk not in self.accounts:  # its exposure row changes with the order
            accounts_lock(account_ids=[account.pk])
            self.accounts.add(account.pk)
        try:
            with transaction.atomic():
                order = Order.objects.create(
                    client_order_id=client_order_id,
                    account=account,
                    security=security,
                    side=side,
                    quantity=quantity,
                    order_type=OrderType.LIMIT if price else OrderType.MARKET,
                    limit_price=price,
                    venue=self.venue,
                    venue_order_id=tags[37],
                    origin=Origin.VENUE,
                )
        except IntegrityError:
            # The same report raced in from another worker and booked it first.
            existing = Order.objects.get(account=account, client_order_id=client_order_id)
            return self.order_locked(existing.pk)
        self.created.add(order.pk)
        self.orders[order.pk], self.requests[order.pk], self.in_effect[order.pk] = order, [], []
        self.by_venue_order_id[tags[37]] = order.pk
        order.send()
        self._touch(order)
        self._event(order, action="order.created", details={"origin": Origin.VENUE})
        self.flag(
            order,
            kind=OrderFlag.Kind.UNKNOWN_ORDER,
            message="Order booked from an unsolicited venue report.",
            details={"message": tags},
        )
        return order

    def _unknown_order_record(self, tags: dict[int, str], msg_type: str, received_at: dt.datetime) -> ApplyResult:
        if msg_type == "8" and tags.get(17) and tags.get(150) != "I":
            if tags[17] in self.exec_ids:
                return ApplyResult("duplicate")
            self._new_execution(tags, received_at, None, exec_id=tags[17], outcome=Execution.Outcome.RECORDED)
        self.flag(
            None,
            kind=OrderFlag.Kind.UNKNOWN_ORDER,
            message="Report for an order this OMS does not know.",
            details={"message": tags},
        )
        return ApplyResult("unknown_order")

    def _precedence_status(self, order: Order) -> str:
        """OrdStatus precedence (FIX 4.4): pending cancel > pending replace > the status
        by quantities (filled > partially filled > new)."""
        pending = {r.kind for r in self._pending(order)}
        if OrderRequest.Kind.CANCEL in pending:
            return S.PENDING_CANCEL
        if OrderRequest.Kind.REPLACE in pending:
            return S.PENDING_AMEND
        return order.working_status()

    def _execution_apply(self, order: Order, tags: dict[int, str], received_at: dt.datetime) -> ApplyResult:
        exec_type = tags[150]
        exec_id = tags.get(17) if exec_type != "I" else None
        if exec_id and exec_id in self.exec_ids:
            # The same ExecID again (a resend, a replayed task): already applied once.
            return ApplyResult("duplicate", order.pk, order.status)
        execution = self._new_execution(tags, received_at, order, exec_id=exec_id or None)

        before = order_snapshot(order)
        checkpoint = self._checkpoint(order)
        try:
            late = self._execution_effects(order, tags, execution)
        except _Refusal as refusal:
            self._restore(order, checkpoint)
            execution.outcome, execution.in_effect, execution.ref_pending = refusal.outcome, False, None
            self.flag(order, kind=refusal.kind, message=refusal.message, details={"exec_id": exec_id, "message": tags})
            self._event(
                order,
                action="order.report_not_applied",
                before=before,
                details={"exec_id": exec_id, "exec_type": exec_type, "reason": refusal.message},
            )
            return ApplyResult(refusal.outcome, order.pk, order.status)

        details = {
            "exec_id": exec_id,
            "exec_type": exec_type,
            "cl_ord_id": tags.get(11, ""),
            "last_qty": execution.last_qty,
            "last_px": execution.last_px,
            "transact_time": execution.transact_time,
        }
        for tag, name in ((58, "text"), (378, "restatement_reason"), (19, "exec_ref_id"), (103, "ord_rej_reason")):
            if tags.get(tag):
                details[name] = tags[tag]
        self._event(
            order, action=EXEC_TYPE_ACTIONS.get(exec_type, "order.execution_report"), before=before, details=details
        )
        if late:
            self.flag(
                order,
                kind=OrderFlag.Kind.LATE_EXECUTION,
                message=f"Execution {exec_id} reported on a {order.status} order.",
                details={"exec_id": exec_id},
            )
        reported_cum = codec.tag_int(tags, 14)
        if reported_cum is not None and reported_cum != order.filled_quantity:
            self.flag(
                order,
                kind=OrderFlag.Kind.CUM_QTY_MISMATCH,
                message=f"Venue reports CumQty {reported_cum}, the OMS has {order.filled_quantity}.",
                details={"exec_id": exec_id},
            )
        return ApplyResult("applied", order.pk, order.status)

    def _trade_in_effect(self, order: Order, execution: Execution) -> None:
        self._execution_set(execution, in_effect=True)
        self.in_effect[order.pk].append(execution)
        self._position_apply(order, qty=execution.last_qty, price=execution.last_px)

    def _execution_effects(self, order: Order, tags: dict[int, str], execution: Execution) -> bool:
        """Apply one report to the locked order; raise _Refusal to record it unapplied.
        Returns True when it was an execution applied to an ended order (J.1.b, J.1.d)."""
        exec_type = tags[150]
        status = order.status
        is_trade = exec_type in TRADE_EXEC_TYPES
        if status == S.REJECTED or (status in (S.CANCELLED, S.EXPIRED) and not is_trade):
            raise _Refusal(
                OrderFlag.Kind.TERMINAL_ORDER_MESSAGE, f"ExecType {exec_type} reported for a {status} order."
            )
        late = is_trade and status in STICKY_STATUSES
        if tags.get(37) and not order.venue_order_id:
            order.venue_order_id = tags[37]
            self.by_venue_order_id.setdefault(tags[37], order.pk)
        target: str | None = None  # None: the precedence status
        keep_sticky = status in STICKY_STATUSES

        if exec_type == "0":  # New: acknowledged (again, for a GT order the next day)
            order.acknowledged = True
            keep_sticky = False
        elif exec_type == "A":  # Pending New
            pass
        elif exec_type in ("F", "1", "2"):  # Trade
            if execution.last_qty <= 0 or execution.last_px is None or execution.last_px <= 0:
                raise _Refusal(
                    OrderFlag.Kind.UNEXPECTED_MESSAGE, "Trade without a positive LastQty (32) and LastPx (31)."
                )
            order.acknowledged = True
            self._trade_in_effect(order, execution)
        elif exec_type in ("G", "H"):  # Trade Correct / Trade Cancel
            ref_id = tags.get(19) or None
            ref = next(
                (e for e in self.in_effect[order.pk] if e.exec_id == ref_id and e.venue_id == self.venue.pk), None
            )
            if ref is None:
                raise _Refusal(
                    OrderFlag.Kind.UNKNOWN_EXECUTION,
                    f"ExecRefID {tags.get(19)!r} names no execution in effect on this order.",
                )
            self._execution_set(ref, in_effect=False)
            self.in_effect[order.pk].remove(ref)
            execution.ref_pending = ref  # set once both rows have ids (flush)
            self._position_apply(order, qty=-ref.last_qty, price=ref.last_px)
            if exec_type == "G":
                if execution.last_qty <= 0 or execution.last_px is None or execution.last_px <= 0:
                    raise _Refusal(
                        OrderFlag.Kind.UNEXPECTED_MESSAGE, "Trade correction without a positive LastQty and LastPx."
                    )
                self._trade_in_effect(order, execution)
        elif exec_type == "6":  # Pending Cancel
            request = self._request_for(order, tags.get(11), OrderRequest.Kind.CANCEL)
            if request is None or request.state != OrderRequest.State.PENDING:
                raise _Refusal(
                    OrderFlag.Kind.UNEXPECTED_MESSAGE, "Pending Cancel for no pending cancel request of ours."
                )
            self._request_set(request, venue_acknowledged=True)
        elif exec_type == "E":  # Pending Replace
            request = self._request_for(order, tags.get(11), OrderRequest.Kind.REPLACE)
            if request is None or request.state != OrderRequest.State.PENDING:
                raise _Refusal(
                    OrderFlag.Kind.UNEXPECTED_MESSAGE, "Pending Replace for no pending replace request of ours."
                )
            self._request_set(request, venue_acknowledged=True)
        elif exec_type == "4":  # Canceled: our request accepted, or unsolicited
            request = self._request_for(order, tags.get(11), OrderRequest.Kind.CANCEL)
            if request is not None:
                self._request_set(request, state=OrderRequest.State.ACCEPTED, resolved_at=self.now)
                order.cl_ord_id = request.cl_ord_id
            self._resolve_pending(order, state=OrderRequest.State.SUPERSEDED)
            target = S.CANCELLED
        elif exec_type == "5":  # Replace accepted: the venue's OrderQty is the quantity
            request = self._request_for(order, tags.get(11), OrderRequest.Kind.REPLACE)
            if request is None or request.state != OrderRequest.State.PENDING:
                raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, "Replace for no pending replace request of ours.")
            self._request_set(request, state=OrderRequest.State.ACCEPTED, resolved_at=self.now)
            # Requests chained before this one can no longer take effect.
            for earlier in self._pending(order):
                if earlier.kind == OrderRequest.Kind.REPLACE and earlier.pk < request.pk:
                    self._request_set(earlier, state=OrderRequest.State.SUPERSEDED, resolved_at=self.now)
            order.cl_ord_id = request.cl_ord_id
            confirmed = codec.tag_int(tags, 38)
            _restate_terms(
                order,
                quantity=confirmed if confirmed is not None else request.quantity,
                limit_price=codec.tag_decimal(tags, 44) or request.limit_price,
            )
            order.acknowledged = True
        elif exec_type == "D":  # Restated by the venue (quantity, price, GT renewal)
            _restate_terms(order, quantity=codec.tag_int(tags, 38), limit_price=codec.tag_decimal(tags, 44))
            keep_sticky = False
        elif exec_type == "8":
            if order.filled_quantity:
                # A venue rejects orders, not executions: an order with fills cannot be
                # rejected (the fills stand); a person must look at it.
                raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, "Venue rejected an order that has executions.")
            if tags.get(39) not in (None, "", "8"):
                # F.1.a/F.1.b: a reject carrying the OrdStatus of a live order rejects a
                # duplicate submission, not the order itself.
                raise _Refusal(
                    OrderFlag.Kind.UNEXPECTED_MESSAGE,
                    f"Venue rejected a duplicate of this order (OrdStatus {tags.get(39)}); the order stands.",
                )
            order.reject_reason = venue_reject_reason(tags)
            self._resolve_pending(order, state=OrderRequest.State.SUPERSEDED)
            target = S.REJECTED
        elif exec_type == "C":
            self._resolve_pending(order, state=OrderRequest.State.SUPERSEDED)
            target = S.EXPIRED
        elif exec_type == "3":
            target = S.DONE_FOR_DAY
        elif exec_type == "I":  # Order Status: reconcile what we may have missed
            ord_status = tags.get(39, "")
            if ord_status not in ("A", "8", ""):
                order.acknowledged = True
            if ord_status in ORD_STATUS_TERMINAL and ORD_STATUS_TERMINAL[ord_status] != status:
                if ord_status == "8":
                    if order.filled_quantity:
                        # Fills stand: the venue lost the order (a restart), it did not
                        # reject it. Middle office closes it locally.
                        raise _Refusal(
                            OrderFlag.Kind.VENUE_UNKNOWN_ORDER,
                            f"Venue answers the status request with Rejected ({venue_reject_reason(tags)}) for an "
                            "order with fills: if it no longer works there, close it locally.",
                        )
                    order.reject_reason = venue_reject_reason(tags)
                if ORD_STATUS_TERMINAL[ord_status] != S.DONE_FOR_DAY:
                    self._resolve_pending(order, state=OrderRequest.State.SUPERSEDED)
                target = ORD_STATUS_TERMINAL[ord_status]
        elif exec_type in ("7", "9", "B"):  # Stopped, Suspended, Calculated: informational
            pass
        else:
            raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, f"Unknown ExecType {exec_type!r}.")

        self._fills_recompute(order)
        if target is None:
            target = status if keep_sticky else self._precedence_status(order)
        try:
            order.mark(target)
        except TransitionNotAllowed:
            raise _Refusal(
                OrderFlag.Kind.UNEXPECTED_MESSAGE, f"ExecType {exec_type} cannot move a {status} order to {target}."
            ) from None
        self._touch(order)
        return late

    def _fills_recompute(self, order: Order) -> None:
        """filled_quantity and the average price are the sum over executions in effect."""
        trades = self.in_effect[order.pk]
        filled = sum(e.last_qty for e in trades)
        if filled > order.quantity:
            raise _Refusal(
                OrderFlag.Kind.OVERFILL,
                f"Execution would fill {filled} of an order for {order.quantity}: not applied.",
                outcome=Execution.Outcome.OVERFILL,
            )
        notional = Decimal(0)
        for trade in trades:
            notional = NOTIONAL_CONTEXT.add(notional, NOTIONAL_CONTEXT.multiply(Decimal(trade.last_qty), trade.last_px))
        order.filled_quantity = filled
        order.avg_fill_price = (notional / filled).quantize(PRICE_QUANT) if filled else None

    def _cancel_reject_apply(self, order: Order, tags: dict[int, str]) -> ApplyResult:
        """OrderCancelReject: the request failed; the order returns to the status its
        quantities and remaining requests give (B.1.c, C.2.a: possibly filled)."""
        before = order_snapshot(order)
        request = next(
            (r for r in self.requests[order.pk] if r.cl_ord_id == tags.get(11, "") and r.kind != OrderRequest.Kind.NEW),
            None,
        )
        reason_code = tags.get(102, "")
        reason = tags.get(58) or CXL_REJ_REASONS.get(reason_code, "Rejected by venue")
        if request is None or request.state != OrderRequest.State.PENDING:
            self.flag(
                order,
                kind=OrderFlag.Kind.UNKNOWN_REQUEST,
                message=f"Cancel reject for request {tags.get(11)!r}, which is not pending.",
                details={"message": tags},
            )
            return ApplyResult("recorded", order.pk, order.status)
        self._request_set(request, state=OrderRequest.State.REJECTED, reject_reason=reason, resolved_at=self.now)
        if tags.get(39) in ("0", "1", "2", "3", "6", "E"):
            order.acknowledged = True
        if order.status not in STICKY_STATUSES:
            try:
                order.mark(self._precedence_status(order))
            except TransitionNotAllowed:
                self.flag(
                    order,
                    kind=OrderFlag.Kind.UNEXPECTED_MESSAGE,
                    message=f"Cancel reject cannot move a {order.status} order.",
                    details={"message": tags},
                )
        self._touch(order)
        kind = "cancel" if request.kind == OrderRequest.Kind.CANCEL else "amend"
        self._event(
            order,
            action=f"order.{kind}_rejected",
            before=before,
            details={
                "cl_ord_id": request.cl_ord_id,
                "reason": reason,
                "cxl_rej_reason": reason_code,
                "ord_status": tags.get(39, ""),
            },
        )
        if reason_code == "1" and order.status in LIVE_STATUSES:
            # The order went back to its status (FIX), but the venue may have lost it
            # (a restart): nothing will ever end it unless middle office closes it.
            self.flag(
                order,
                kind=OrderFlag.Kind.VENUE_UNKNOWN_ORDER,
                message=f"Venue does not know the order (CxlRejReason 1: {reason}): "
                "if it no longer works there, close it locally.",
                details={"message": tags},
            )
        return ApplyResult("applied", order.pk, order.status)


def _restate_terms(order: Order, *, quantity: int | None, limit_price: Decimal | None) -> None:
    if quantity is not None:
        if quantity <= 0:
            raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, f"Venue restated OrderQty to {quantity}.")
        # A replace to below the filled quantity leaves the order filled at what it has.
        order.quantity = max(quantity, order.filled_quantity)
    if limit_price is not None and order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        order.limit_price = limit_price
