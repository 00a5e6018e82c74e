"""Batched apply (orders.services.report_batch, DESIGN §4.4) gives exactly the state
that applying the same reports one by one gives.

Two identical worlds (a venue, an account, the same orders and pending requests each)
receive the same random sequence of reports, several orders interleaved: world "one"
through the inbox one message per transaction, world "batch" through the inbox in one
batch. Afterwards every order, request, execution, position, flag, inbox outcome and
audit event must match, with the ids that differ by world (order ids, ClOrdIDs)
mapped to the order's place in its world."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from oms_site.roles import TRADER_GROUP
from orders.models import Execution, Order, OrderFlag, OrderRequest, Position
from orders.services import (
    execution_report_apply,
    inbox,
    inbox_apply,
    order_amend,
    order_cancel,
    order_submit,
    report_batch,
)
from routing.models import InboundMessage, Venue

from ..factories import AccountFactory, SecurityFactory, UserFactory
from .test_exposure import recomputed as exposure_recomputed
from .test_exposure import stored as exposure_stored

pytestmark = pytest.mark.django_db

ORDERS = 3
WORLDS = ("one", "batch")

# One step of the venue's: (order index, kind, quantity, price, pick). ``pick`` chooses
# among earlier trades (busts, corrections) or earlier reports (replays).
KINDS = [
    "ack",
    "fill",
    "fill",
    "fill",
    "bust",
    "correct",
    "replay",
    "pending_cancel",
    "cancelled",
    "pending_replace",
    "replaced",
    "cancel_reject",
    "amend_reject",
    "restated",
    "done_for_day",
    "expired",
    "rejected",
    "status",
    "unknown_exec_type",
    "bad_tag",
    "cum_mismatch",
    "unknown_order",
]
steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=ORDERS - 1),
        st.sampled_from(KINDS),
        st.integers(min_value=1, max_value=400),
        st.decimals(min_value=Decimal("1"), max_value=Decimal("500"), places=2),
        st.integers(min_value=0, max_value=50),
    ),
    min_size=1,
    max_size=40,
)
# Before the reports: per order, nothing, an amend request or a cancel request (after
# the ack, so they are real requests at the venue).
setups = st.lists(st.sampled_from(["none", "amend", "cancel", "amend_then_cancel"]), min_size=ORDERS, max_size=ORDERS)


@pytest.fixture
def worlds(db):
    trader = UserFactory(username="trader-batch")
    trader.groups.add(Group.objects.get_or_create(name=TRADER_GROUP)[0])
    securities = [
        SecurityFactory(symbol="BATA", reference_price=Decimal("100")),
        SecurityFactory(symbol="BATB", reference_price=Decimal("200")),
    ]
    built = {}
    for name in WORLDS:
        venue = Venue.objects.create(
            code=f"V{name.upper()}", name=name, sender_comp_id="OMS", target_comp_id=name.upper()
        )
        account = AccountFactory(code=f"ACC-{name.upper()}")
        account.traders.add(trader)
        built[name] = (venue, account)
    return trader, securities, built


def _world_orders(trader, securities, venue, account, setup) -> list[Order]:
    orders = []
    for index in range(ORDERS):
        order, _ = order_submit(
            user=trader,
            client_order_id=f"B-{index}",
            account=account.code,
            symbol=securities[index % 2].symbol,
            side="BUY" if index != 1 else "SELL",
            quantity=1000,
            order_type="LIMIT",
            limit_price=Decimal("100"),
            venue=venue.code,
        )
        assert order.status == "pending_new", order.reject_reason
        ack = {35: "8", 11: order.cl_ord_id, 37: f"V{index}", 17: f"ACK-{index}", 150: "0", 39: "0"}
        execution_report_apply(venue_code=venue.code, message=ack)
        if setup[index] in ("amend", "amend_then_cancel"):
            order_amend(user=trader, order_id=order.pk, quantity=1500)
        if setup[index] in ("cancel", "amend_then_cancel"):
            order_cancel(user=trader, order_id=order.pk)
        orders.append(Order.objects.get(pk=order.pk))
    return orders


def _messages(orders: list[Order], steps_: list[tuple]) -> list[dict[int, str]]:
    """The venue's reports for one world's orders: the same in every world but for the
    ClOrdIDs, which carry the world's order ids."""
    messages: list[dict[int, str]] = []
    trades: dict[int, list[str]] = {i: [] for i in range(len(orders))}
    sent = 0
    for index, kind, quantity, price, pick in steps_:
        order = orders[index]
        requests = list(OrderRequest.objects.filter(order=order).order_by("id"))
        new = requests[0].cl_ord_id
        cancel = next((r.cl_ord_id for r in requests if r.kind == "cancel"), None)
        replace = next((r.cl_ord_id for r in reversed(requests) if r.kind == "replace"), None)
        sent += 1
        exec_id = f"E{sent}"
        base = {35: "8", 11: new, 37: f"V{index}", 17: exec_id}
        if kind == "ack":
            message = {**base, 150: "0", 39: "0"}
        elif kind == "fill":
            message = {**base, 150: "F", 39: "1", 32: str(quantity), 31: str(price)}
            trades[index].append(exec_id)
        elif kind in ("bust", "correct"):
            ref = trades[index][pick % len(trades[index])] if trades[index] and pick < 40 else "NO-SUCH-EXEC"
            message = {**base, 150: "H" if kind == "bust" else "G", 39: "1", 19: ref}
            if kind == "correct":
                message.update({32: str(quantity), 31: str(price)})
                trades[index].append(exec_id)
        elif kind == "replay":
            message = dict(messages[pick % len(messages)]) if messages else {**base, 150: "0", 39: "0"}
        elif kind in ("pending_cancel", "cancelled"):
            message = {**base, 11: cancel or new, 41: new, 150: "6" if kind == "pending_cancel" else "4", 39: "6"}
        elif kind in ("pending_replace", "replaced"):
            message = {**base, 11: replace or new, 41: new, 150: "E" if kind == "pending_replace" else "5", 39: "E"}
            if kind == "replaced":
                message.update({38: str(500 + quantity), 44: str(price)})
        elif kind in ("cancel_reject", "amend_reject"):
            request = cancel if kind == "cancel_reject" else replace
            message = {35: "9", 11: request or "UNKNOWN-REQUEST", 41: new, 37: f"V{index}", 39: "0", 102: "0"}
            message[434] = "1" if kind == "cancel_reject" else "2"
        elif kind == "restated":
            message = {**base, 150: "D", 39: "0", 38: str(quantity * 5), 378: "1"}
        elif kind == "done_for_day":
            message = {**base, 150: "3", 39: "3"}
        elif kind == "expired":
            message = {**base, 150: "C", 39: "C"}
        elif kind == "rejected":
            message = {**base, 150: "8", 39: "8", 58: "venue says no"}
        elif kind == "status":
            message = {**base, 150: "I", 39: ["0", "1", "4", "3", "C"][pick % 5]}
        elif kind == "unknown_exec_type":
            message = {**base, 150: "Z", 39: "0"}
        elif kind == "bad_tag":
            message = {**base, 150: "F", 39: "1", 32: "lots", 31: str(price)}
        elif kind == "cum_mismatch":
            message = {**base, 150: "0", 39: "0", 14: str(quantity)}
        else:  # unknown_order
            message = {35: "8", 11: f"NOBODY-{pick}", 17: exec_id, 150: "F", 39: "1", 32: "1", 31: "1"}
        messages.append(message)
    return messages


def _inbound(venue: Venue, messages: list[dict[int, str]]) -> None:
    for seq, tags in enumerate(messages, start=1):
        fields = [[35, tags[35]], [34, str(seq)], *[[t, v] for t, v in tags.items() if t != 35]]
        InboundMessage.objects.create(
            venue=venue,
            epoch=1,
            msg_seq_num=seq,
            msg_type=tags[35],
            fields=fields,
            raw="".join(f"{t}={v}\x01" for t, v in fields),
        )


def _state(venue: Venue, account, orders: list[Order], *, audit_floor: int) -> dict:
    """Everything applying wrote, with world-specific ids replaced by order indexes."""
    index = {order.pk: i for i, order in enumerate(orders)}
    cl_ord = re.compile(r"[A-Z]*(\d+)-(\d+)")

    def norm(text):
        if not isinstance(text, str):
            return text
        return cl_ord.sub(lambda m: f"<{index.get(int(m.group(1)), '?')}-{m.group(2)}>", text)

    state = {}
    state["orders"] = [
        (
            o.status,
            o.quantity,
            o.filled_quantity,
            o.avg_fill_price,
            o.limit_price,
            o.acknowledged,
            o.needs_review,
            o.reject_reason,
            o.venue_order_id,
            norm(o.cl_ord_id),
        )
        for o in Order.objects.filter(pk__in=index).order_by("id")
    ]
    state["requests"] = [
        (index[r.order_id], r.kind, norm(r.cl_ord_id), r.state, r.venue_acknowledged, r.reject_reason)
        for r in OrderRequest.objects.filter(order_id__in=index).order_by("id")
    ]
    ref_ids = dict(Execution.objects.filter(venue=venue).values_list("pk", "exec_id"))
    state["executions"] = [
        (
            e.exec_id,
            e.exec_type,
            index.get(e.order_id),
            e.in_effect,
            e.outcome,
            e.last_qty,
            e.last_px,
            ref_ids.get(e.ref_execution_id),
            norm(e.cl_ord_id),
        )
        for e in Execution.objects.filter(venue=venue).order_by("id")
    ]
    state["positions"] = sorted(
        Position.objects.filter(account=account).values_list(
            "security__symbol",
            "quantity",
            "bought_quantity",
            "bought_notional",
            "sold_quantity",
            "sold_notional",
            "cost_basis",
            "realized_pnl",
        )
    )
    state["flags"] = [
        (index.get(f.order_id), f.kind, norm(f.message))
        for f in OrderFlag.objects.filter(venue_code=venue.code).order_by("id")
    ]
    state["inbox"] = list(
        InboundMessage.objects.filter(venue=venue)
        .order_by("msg_seq_num")
        .values_list("msg_seq_num", "outcome", "error")
    )
    order_ids = [str(pk) for pk in index]
    state["audit"] = [
        (
            index.get(int(e.object_id)) if e.object_type == "order" else e.object_type,
            e.action,
            (e.after or {}).get("status"),
            (e.after or {}).get("filled_quantity"),
            (e.after or {}).get("avg_fill_price"),
            (e.details or {}).get("outcome"),
            (e.details or {}).get("kind"),
        )
        for e in AuditEvent.objects.filter(id__gt=audit_floor, object_type__in=["order", "venue", "fix_session"])
        .filter(object_id__in=[*order_ids, venue.code])
        .order_by("id")
    ]
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(setup=setups, steps_=steps)
def test_a_batch_leaves_exactly_what_one_report_at_a_time_leaves(worlds, setup, steps_):
    trader, securities, built = worlds
    with transaction.atomic():
        states = {}
        for name in WORLDS:
            venue, account = built[name]
            orders = _world_orders(trader, securities, venue, account, setup)
            audit_floor = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
            _inbound(venue, _messages(orders, steps_))
            if name == "one":
                taken = inbox_apply(venue_code=venue.code, batch_size=1)
            else:
                taken = inbox_apply(venue_code=venue.code, batch_size=500, time_budget=60)
            assert taken == len(steps_)
            states[name] = _state(venue, account, orders, audit_floor=audit_floor)
            assert exposure_stored() == exposure_recomputed()  # the running exposure kept up
        for part in states["one"]:
            assert states["batch"][part] == states["one"][part], part
        transaction.set_rollback(True)


def test_one_batch_takes_a_handful_of_statements(worlds, django_assert_max_num_queries):
    """Statements per batch do not grow with the number of reports."""
    trader, securities, built = worlds
    venue, account = built["batch"]
    orders = _world_orders(trader, securities, venue, account, ["none"] * ORDERS)
    steps_ = [(i % ORDERS, "fill", 10, Decimal("100.25"), 0) for i in range(120)]
    _inbound(venue, _messages(orders, steps_))
    with django_assert_max_num_queries(25):
        assert inbox_apply(venue_code=venue.code, batch_size=500, time_budget=60) == 120
    assert [o.filled_quantity for o in Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("id")] == [
        400,
        400,
        400,
    ]


def test_a_batch_that_fails_is_applied_again_message_by_message(worlds, monkeypatch):
    """A failure no report check foresaw (here: the bulk write) does not block the inbox:
    the batch is retried one message at a time and every message is applied."""
    trader, securities, built = worlds
    venue, account = built["batch"]
    orders = _world_orders(trader, securities, venue, account, ["none"] * ORDERS)
    _inbound(venue, _messages(orders, [(i % ORDERS, "fill", 10, Decimal("100"), 0) for i in range(6)]))
    real_flush = report_batch.BatchState.flush
    calls = {"n": 0}

    def flush_failing_once(self):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk on fire")
        return real_flush(self)

    monkeypatch.setattr(report_batch.BatchState, "flush", flush_failing_once)
    assert inbox_apply(venue_code=venue.code) == 6
    assert calls["n"] > 1
    assert set(InboundMessage.objects.filter(venue=venue).values_list("outcome", flat=True)) == {"applied"}
    assert [o.filled_quantity for o in Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("id")] == [
        20,
        20,
        20,
    ]


def test_batches_are_bounded_by_time_and_always_make_progress(worlds, monkeypatch):
    """With no time to spare, every batch still applies at least one message, the next
    batch is sized by the last one's pace, and everything is applied in order."""
    trader, securities, built = worlds
    venue, account = built["batch"]
    orders = _world_orders(trader, securities, venue, account, ["none"] * ORDERS)
    _inbound(venue, _messages(orders, [(i % ORDERS, "fill", 10, Decimal("100"), 0) for i in range(30)]))
    sizes: list[int] = []
    real = inbox._inbox_batch_apply

    def counted(venue_, messages, **options):
        taken = real(venue_, messages, **options)
        sizes.append(taken)
        return taken

    monkeypatch.setattr(inbox, "_inbox_batch_apply", counted)
    assert inbox_apply(venue_code=venue.code, time_budget=1e-6) == 30
    assert len(sizes) > 1 and all(size >= 1 for size in sizes) and sum(sizes) == 30
    assert [o.filled_quantity for o in Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("id")] == [
        100,
        100,
        100,
    ]
