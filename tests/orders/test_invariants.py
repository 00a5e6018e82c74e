"""Property test for DESIGN.md §5: whatever a venue sends about an order, in whatever
order (acks, fills, busts, corrections, replays, cancels, replaces, their rejects,
restatements, done for day, expiry, reports naming executions that do not exist,
overfills), and whatever the trader asks for meanwhile, the order's quantities,
average price and position stay exactly the sum of the executions in effect.

Each example books one BUY order inside a savepoint that is rolled back at the end, so
examples never see each other's rows."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from audit.models import AuditEvent
from oms_site.errors import InvalidInput, InvalidStateTransition
from orders.models import Execution, Order, OrderFlag, OrderRequest, Position
from orders.services import EXEC_TYPE_ACTIONS, execution_report_apply, order_amend, order_cancel
from routing.models import OutboundMessage
from tests.conftest import report

pytestmark = pytest.mark.django_db

PRICE_QUANT = Decimal("0.00000001")
STICKY = {"cancelled", "rejected", "expired", "done_for_day"}
TERMINAL = {"cancelled", "rejected", "expired"}
WORKING = {"pending_new", "open", "partially_filled", "pending_cancel", "pending_amend"}
CANCELLABLE = {"pending_new", "open", "partially_filled", "pending_amend"}
AMENDABLE = {"open", "partially_filled"}  # and "filled", to a larger quantity (FIX 4.4 C.1.c)
# ExecType -> (the status the venue moves the order to, the statuses it may come from).
VENUE_STATUS_CHANGES = {
    "3": ("done_for_day", WORKING | {"done_for_day"}),
    "4": ("cancelled", WORKING | {"done_for_day"}),
    "C": ("expired", WORKING | {"done_for_day"}),
    "8": ("rejected", WORKING - {"partially_filled"}),
}

quantities = st.integers(min_value=1, max_value=250)
prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("9999"), places=4)
_unknown_refs = itertools.count(1)


class OrderReportsMachine(RuleBasedStateMachine):
    """One order at the venue. Rules are what the venue or the trader may do next. The
    model (``in_effect``) is the set of executions that should count, derived from what
    was sent, never read back from what the service did."""

    submit: Callable[..., Order]  # both set by the test from the conftest fixtures
    trader: Any

    reports = Bundle("reports")  # every ExecutionReport sent (for replays)
    trades = Bundle("trades")  # the fills and corrections among them (for busts, corrections)
    cancel_requests = Bundle("cancel_requests")  # ClOrdIDs of our cancel requests
    replace_requests = Bundle("replace_requests")  # ClOrdIDs of our replace requests

    def __init__(self) -> None:
        super().__init__()
        self._savepoint = transaction.atomic()
        self._savepoint.__enter__()
        self.order: Order | None = None
        self.nos_sent = False
        self.patience = 0
        self.in_effect: dict[str, tuple[int, Decimal]] = {}  # ExecID -> (LastQty, LastPx)
        self.sent_exec_ids: set[str] = set()

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._savepoint.__exit__(None, None, None)

    # ------------------------------------------------------------------ helpers
    def _economics(self) -> tuple:
        """Everything a report or request that is refused must leave alone."""
        order = Order.objects.get(pk=self.order.pk)
        position = Position.objects.filter(account=order.account, security=order.security).values_list(
            "quantity", "bought_quantity", "bought_notional", "sold_quantity", "sold_notional"
        )
        return (
            order.status,
            order.quantity,
            order.filled_quantity,
            order.avg_fill_price,
            order.limit_price,
            order.cl_ord_id,
            order.acknowledged,
            set(Execution.objects.filter(order=order, in_effect=True).values_list("exec_id", flat=True)),
            list(position),
            list(order.requests.values_list("cl_ord_id", "state", "venue_acknowledged")),
            OutboundMessage.objects.filter(order_id=order.pk).count(),
        )

    def _everything(self) -> tuple:
        """Every row an ignored message (a replayed ExecID) must leave alone."""
        return (
            self._economics(),
            Order.objects.filter(pk=self.order.pk).values().get(),
            list(Execution.objects.values()),
            list(OrderFlag.objects.values()),
            AuditEvent.objects.count(),
        )

    def _last_audit_id(self) -> int:
        return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def _audit_actions_since(self, audit_id: int) -> list[str]:
        return list(AuditEvent.objects.filter(id__gt=audit_id).order_by("id").values_list("action", flat=True))

    def _filled_by_model(self) -> int:
        return sum(qty for qty, _ in self.in_effect.values())

    def _request(self, cl_ord_id: str) -> OrderRequest:
        return OrderRequest.objects.get(cl_ord_id=cl_ord_id)

    def _may_end(self) -> bool:
        return len(self.sent_exec_ids) >= self.patience

    def _send(self, expected: str | set[str], **tags) -> tuple[dict[int, str], Any]:
        """Feed one report and check its outcome and audit trail; when it was not
        applied, check that it changed nothing but the review flag."""
        message = report(self.order, **tags)
        status_before = self.order.status
        economics_before = self._economics()
        last_audit = self._last_audit_id()
        flags_before = OrderFlag.objects.count()

        result = execution_report_apply(venue_code="SIM", message=dict(message))

        self.order.refresh_from_db()
        expected = {expected} if isinstance(expected, str) else expected
        assert result.outcome in expected, (result, status_before, tags)
        actions = self._audit_actions_since(last_audit)
        is_cancel_reject = message[35] == "9"
        if result.outcome == "applied":
            if is_cancel_reject:
                assert actions[0] in ("order.cancel_rejected", "order.amend_rejected"), actions
            else:
                assert actions[0] == EXEC_TYPE_ACTIONS[message[150]], actions
            assert set(actions[1:]) <= {"order.flagged"}, actions  # a late execution, for one
        else:
            assert self._economics() == economics_before
            assert self.order.needs_review
            assert OrderFlag.objects.count() == flags_before + 1
            if is_cancel_reject:
                assert actions == ["order.flagged"]
            else:
                assert actions == ["order.flagged", "order.report_not_applied"]
                execution = Execution.objects.get(exec_id=message[17])
                assert (execution.in_effect, execution.outcome) == (False, result.outcome)
        if not is_cancel_reject:
            self.sent_exec_ids.add(message[17])
        return message, result

    # ------------------------------------------------------------------ set-up
    # Mostly sent: the cancel of an unsent order withdraws it and ends the story early.
    # The venue ends the order only after `patience` reports, so that sequences spend
    # their steps in the working states before (perhaps) the ended ones.
    @initialize(
        quantity=st.sampled_from([500, 1000]), nos_sent=st.integers(0, 3).map(bool), patience=st.integers(0, 20)
    )
    def book_order(self, quantity: int, nos_sent: bool, patience: int) -> None:
        self.order = self.submit(quantity=quantity)
        assert self.order.status == "pending_new"
        self.nos_sent = nos_sent
        self.patience = patience
        if nos_sent:
            # The venue's FIX session has sent the NewOrderSingle: a cancel can no
            # longer withdraw it and must go to the venue.
            OutboundMessage.objects.filter(order_id=self.order.pk, msg_type="D").update(state="sent")

    # ------------------------------------------------------------------ executions
    def _trade(self, **tags) -> dict[int, str]:
        """A fill or correction: applied, also to a cancelled, expired or done-for-day
        order (FIX J.1.b, J.1.d), unless the order was rejected (recorded) or the
        executions in effect would exceed the quantity (overfill: never applied)."""
        qty = int(tags["LastQty"])
        ref = tags.get("ExecRefID")
        filled_after = self._filled_by_model() + qty - (self.in_effect[ref][0] if ref else 0)
        if self.order.status == "rejected":
            expected = "recorded"
        elif filled_after > self.order.quantity:
            expected = "overfill"
        else:
            expected = "applied"
        message, _ = self._send(expected, **tags)
        if expected == "applied":
            self.in_effect.pop(ref, None)
            self.in_effect[message[17]] = (qty, Decimal(tags["LastPx"]))
        return message

    @rule(targets=(reports, trades), qty=quantities, price=prices)
    def fill(self, qty: int, price: Decimal):
        return self._trade(ExecType="F", OrdStatus="1", LastQty=qty, LastPx=price)

    @rule(targets=(reports, trades), extra=st.integers(min_value=1, max_value=100), price=prices)
    def overfill(self, extra: int, price: Decimal):
        leaves = self.order.quantity - self._filled_by_model()
        return self._trade(ExecType="F", OrdStatus="2", LastQty=leaves + extra, LastPx=price)

    @rule(targets=(reports, trades), ref=trades, qty=quantities, price=prices)
    def correct(self, ref: dict[int, str], qty: int, price: Decimal):
        if ref[17] in self.in_effect:
            return self._trade(ExecType="G", ExecRefID=ref[17], LastQty=qty, LastPx=price)
        # Busted or corrected before: nothing in effect to correct.
        message, _ = self._send("recorded", ExecType="G", ExecRefID=ref[17], LastQty=qty, LastPx=price)
        return message

    @rule(target=reports, ref=trades)
    def bust(self, ref: dict[int, str]):
        applies = ref[17] in self.in_effect and self.order.status != "rejected"
        message, _ = self._send("applied" if applies else "recorded", ExecType="H", ExecRefID=ref[17], LastQty=0)
        if applies:
            del self.in_effect[ref[17]]
        return message

    @rule(target=reports, exec_type=st.sampled_from(["G", "H"]))
    def adjust_an_unknown_execution(self, exec_type: str):
        message, _ = self._send(
            "recorded", ExecType=exec_type, ExecRefID=f"UNKNOWN-{next(_unknown_refs)}", LastQty=100, LastPx="1.00"
        )
        return message

    @rule(message=reports)
    def replay(self, message: dict[int, str]) -> None:
        before = self._everything()
        result = execution_report_apply(venue_code="SIM", message=dict(message))
        assert result.outcome == "duplicate"
        assert self._everything() == before

    # ------------------------------------------------------------------ the venue's own acts
    @rule(target=reports)
    def ack(self):
        status = self.order.status
        if status in TERMINAL:
            expected = "recorded"
        elif status == "done_for_day":  # the next day's ack: applies if a working status fits
            expected = {"applied", "recorded"}
        else:
            expected = "applied"
        message, result = self._send(expected, ExecType="0", OrdStatus="0")
        if result.outcome == "applied":
            assert self.order.acknowledged
            if status != "done_for_day":
                assert self.order.status == ("open" if status == "pending_new" else status)
        return message

    def _status_change(self, exec_type: str, **tags) -> dict[int, str]:
        """A status the venue moves the order to on its own: applied exactly from the
        statuses FIX allows it from, recorded and flagged otherwise."""
        target, sources = VENUE_STATUS_CHANGES[exec_type]
        applies = self.order.status in sources
        message, _ = self._send("applied" if applies else "recorded", ExecType=exec_type, OrdStatus=exec_type, **tags)
        if applies:
            assert self.order.status == target
            if target != "done_for_day":  # an ended order has no request left open
                assert not self.order.requests.filter(state="pending").exists()
        return message

    @rule(target=reports)
    def done_for_day(self):
        return self._status_change("3")

    # One rule for the three ways a venue ends an order, so that fewer sequences end early.
    @precondition(_may_end)
    @rule(target=reports, exec_type=st.sampled_from(["4", "C", "8"]))
    def venue_ends_the_order(self, exec_type: str):
        if exec_type == "8" and self.order.filled_quantity:
            # The state machine lets a pending cancel or replace with fills be rejected,
            # where FIX rejects only orders without executions: outcome not pinned here.
            message, _ = self._send({"applied", "recorded"}, ExecType="8", OrdStatus="8", Text="venue says no")
            return message
        tags = {"4": {"ExecRestatementReason": "5"}, "C": {}, "8": {"Text": "venue says no"}}[exec_type]
        return self._status_change(exec_type, **tags)

    @rule(target=reports, quantity=st.integers(min_value=1, max_value=1500))
    def restate(self, quantity: int):
        status = self.order.status
        if status in TERMINAL:
            expected = "recorded"
        elif status == "done_for_day":  # applies if a working status fits
            expected = {"applied", "recorded"}
        else:
            expected = "applied"
        filled = self._filled_by_model()
        message, result = self._send(
            expected, ExecType="D", OrdStatus="0", OrderQty=quantity, ExecRestatementReason="3"
        )
        if result.outcome == "applied":
            assert self.order.quantity == max(quantity, filled)
        return message

    # ------------------------------------------------------------------ cancel requests
    @rule(target=cancel_requests)
    def trader_cancels(self):
        status = self.order.status
        economics_before = self._economics()
        last_audit = self._last_audit_id()
        requests_before = set(self.order.requests.values_list("cl_ord_id", flat=True))
        try:
            order_cancel(user=self.trader, order_id=self.order.pk)
        except InvalidStateTransition:
            assert status not in CANCELLABLE
            assert self._economics() == economics_before
            assert self._audit_actions_since(last_audit) == ["order.cancel_refused"]
            return multiple()
        assert status in CANCELLABLE
        self.order.refresh_from_db()
        if status == "pending_new" and not self.nos_sent:  # never left: the NewOrderSingle is withdrawn
            assert self.order.status == "cancelled"
            assert OutboundMessage.objects.get(order_id=self.order.pk, msg_type="D").state == "void"
            return multiple()
        assert self.order.status == "pending_cancel"
        (cl_ord_id,) = set(self.order.requests.values_list("cl_ord_id", flat=True)) - requests_before
        assert (self._request(cl_ord_id).kind, self._request(cl_ord_id).state) == ("cancel", "pending")
        assert OutboundMessage.objects.filter(cl_ord_id=cl_ord_id, msg_type="F").count() == 1
        return cl_ord_id

    def _answer(self, cl_ord_id: str, exec_type: str, **tags) -> tuple[dict[int, str], Any]:
        """The venue's Pending Cancel, Pending Replace or Replace for one of our
        requests: applied while the request is pending and the order has not ended."""
        request = self._request(cl_ord_id)
        applies = request.state == "pending" and self.order.status not in TERMINAL
        return self._send(
            "applied" if applies else "recorded",
            ClOrdID=cl_ord_id,
            OrigClOrdID=request.orig_cl_ord_id,
            ExecType=exec_type,
            OrdStatus=exec_type,
            **tags,
        )

    def _reject_request(self, cl_ord_id: str, *, response_to: str, ord_status: str) -> None:
        """An OrderCancelReject: applied while the request is pending; the order goes
        back to the status its quantities and remaining requests give (FIX B.1.c)."""
        request = self._request(cl_ord_id)
        was_pending = request.state == "pending"
        quantity_before = self.order.quantity
        self._send(
            "applied" if was_pending else "recorded",
            MsgType="9",
            ClOrdID=cl_ord_id,
            OrigClOrdID=request.orig_cl_ord_id,
            OrdStatus=ord_status,
            CxlRejResponseTo=response_to,
            CxlRejReason="0",
        )
        assert self.order.quantity == quantity_before
        if was_pending:
            assert self._request(cl_ord_id).state == "rejected"
            assert self.order.status != ("pending_cancel" if request.kind == "cancel" else "pending_amend")

    @rule(target=reports, request=cancel_requests)
    def venue_pending_cancel(self, request: str):
        message, result = self._answer(request, "6")
        if result.outcome == "applied":
            assert self._request(request).venue_acknowledged
        return message

    @precondition(_may_end)
    @rule(target=reports, request=cancel_requests)
    def venue_cancels(self, request: str):
        # A Canceled for a request of ours ends any working order, pending or not.
        applies = self.order.status in VENUE_STATUS_CHANGES["4"][1]
        message, _ = self._send(
            "applied" if applies else "recorded",
            ClOrdID=request,
            OrigClOrdID=self._request(request).orig_cl_ord_id,
            ExecType="4",
            OrdStatus="4",
        )
        if applies:
            assert self.order.status == "cancelled"
            assert (self._request(request).state, self.order.cl_ord_id) == ("accepted", request)
            assert not self.order.requests.filter(state="pending").exists()
        return message

    @rule(request=cancel_requests, ord_status=st.sampled_from(["0", "1", "2"]))
    def venue_rejects_cancel(self, request: str, ord_status: str) -> None:
        self._reject_request(request, response_to="1", ord_status=ord_status)

    # ------------------------------------------------------------------ replace requests
    @rule(target=replace_requests, quantity=st.integers(min_value=1, max_value=1500))
    def trader_amends(self, quantity: int):
        status = self.order.status
        amendable = status in AMENDABLE or (status == "filled" and quantity > self.order.quantity)
        economics_before = self._economics()
        last_audit = self._last_audit_id()
        try:
            order_amend(user=self.trader, order_id=self.order.pk, quantity=quantity)
        except InvalidInput:
            assert quantity == self.order.quantity  # the amendment changes nothing
            assert self._economics() == economics_before
            assert self._last_audit_id() == last_audit
            return multiple()
        except InvalidStateTransition:
            assert quantity != self.order.quantity and not amendable
            assert self._economics() == economics_before
            assert self._audit_actions_since(last_audit) == ["order.amend_refused"]
            return multiple()
        assert amendable
        self.order.refresh_from_db()
        assert self.order.status == "pending_amend"
        request = self.order.requests.filter(kind="replace").latest("id")
        assert (request.state, request.quantity) == ("pending", quantity)
        assert self.order.quantity == economics_before[1]  # terms change only when the venue confirms
        return request.cl_ord_id

    @rule(target=reports, request=replace_requests)
    def venue_pending_replace(self, request: str):
        message, result = self._answer(request, "E")
        if result.outcome == "applied":
            assert self._request(request).venue_acknowledged
        return message

    @rule(target=reports, request=replace_requests, confirmed=st.none() | st.integers(min_value=1, max_value=1500))
    def venue_replaces(self, request: str, confirmed: int | None):
        requested = self._request(request).quantity
        filled = self._filled_by_model()
        message, result = self._answer(request, "5", **({"OrderQty": confirmed} if confirmed else {}))
        if result.outcome == "applied":
            assert self._request(request).state == "accepted"
            assert self.order.cl_ord_id == request
            # The venue's OrderQty wins; below the filled quantity the order is filled (C.3.c).
            assert self.order.quantity == max(confirmed or requested, filled)
        return message

    @rule(request=replace_requests, ord_status=st.sampled_from(["0", "1", "2"]))
    def venue_rejects_replace(self, request: str, ord_status: str) -> None:
        self._reject_request(request, response_to="2", ord_status=ord_status)

    # ------------------------------------------------------------------ DESIGN.md §5
    @invariant()
    def quantities_stay_within_the_order(self) -> None:
        order = Order.objects.get(pk=self.order.pk)
        assert 0 <= order.filled_quantity <= order.quantity
        if order.status in STICKY:
            assert order.leaves_quantity == 0
        else:
            assert order.leaves_quantity == order.quantity - order.filled_quantity
        # The status agrees with the quantities where nothing takes precedence.
        if order.status == "filled":
            assert order.filled_quantity == order.quantity
        elif order.status == "partially_filled":
            assert 0 < order.filled_quantity < order.quantity
        elif order.status in ("open", "pending_new"):
            assert order.filled_quantity == 0

    @invariant()
    def fills_are_the_executions_in_effect(self) -> None:
        order = Order.objects.get(pk=self.order.pk)
        rows = list(Execution.objects.filter(order=order, in_effect=True).values_list("exec_id", "last_qty", "last_px"))
        assert {exec_id: (qty, px) for exec_id, qty, px in rows} == self.in_effect
        filled = sum(qty for _, qty, _ in rows)
        notional = sum((qty * px for _, qty, px in rows), Decimal(0))
        assert order.filled_quantity == filled
        assert order.avg_fill_price == ((notional / filled).quantize(PRICE_QUANT) if filled else None)
        assert not Execution.objects.filter(in_effect=True).exclude(exec_type__in=("F", "G")).exists()
        assert not Execution.objects.filter(in_effect=True).exclude(outcome="applied").exists()

        position = Position.objects.filter(account=order.account, security=order.security).first()
        if position is None:
            assert filled == 0
        else:  # one BUY order per account and security: the position is its fills
            assert (position.quantity, position.bought_quantity, position.bought_notional) == (
                filled,
                filled,
                notional,
            )
            assert (position.sold_quantity, position.sold_notional) == (0, 0)

    @invariant()
    def every_exec_id_is_stored_exactly_once(self) -> None:
        exec_ids = list(Execution.objects.exclude(exec_id=None).values_list("exec_id", flat=True))
        assert len(exec_ids) == len(set(exec_ids))
        assert set(exec_ids) == self.sent_exec_ids  # recorded, never dropped

    @invariant()
    def overfills_are_flagged_never_applied(self) -> None:
        overfills = Execution.objects.filter(outcome="overfill")
        assert not overfills.filter(in_effect=True).exists()
        assert OrderFlag.objects.filter(kind="overfill").count() == overfills.count()
        if overfills.exists():
            assert Order.objects.get(pk=self.order.pk).needs_review


def test_any_sequence_of_reports_keeps_the_invariants(submit, trader):
    machine = type("Machine", (OrderReportsMachine,), {"submit": staticmethod(submit), "trader": trader})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
