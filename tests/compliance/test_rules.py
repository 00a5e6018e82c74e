"""Every pre-trade rule at its boundary, through ``order_submit`` (and the what-if
``order_check``): one under the limit and exactly at it pass (thresholds are
inclusive), one over fails with the rule's code; a block rejects the order, a warning
holds it. Then scope precedence, fail-closed, the what-if and the amend stage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from compliance import engine
from compliance.models import RESULT_ID_BASE, ComplianceResult, ComplianceVerdict, Locate, LocateUse, ReviewItem
from compliance.services import locate_end, restricted_entry_add, restricted_entry_end, watch_entry_add
from oms_site.errors import InvalidStateTransition
from orders.models import Execution, Order, OrderRequest
from orders.services import kill_switch_set, order_amend, order_cancel
from routing.models import OutboundMessage
from tests.conftest import apply
from tests.factories import SecurityFactory

from .conftest import (
    ack,
    counts,
    distinct_quantity,
    failures,
    fill,
    long_position,
    now,
    outcome_of,
    result_of,
    rule_set,
)

ROUTED = ("pending_new", [])


def blocked(rule: str, code: str | None = None) -> tuple[str, list]:
    return ("rejected", [(rule, "block", code or rule)])


def held(rule: str, code: str | None = None) -> tuple[str, list]:
    return ("held", [(rule, "warn", code or rule)])


def assert_routed(order: Order) -> None:
    assert outcome_of(order) == ROUTED
    assert order.reject_reason == ""
    assert OutboundMessage.objects.filter(order_id=order.pk, msg_type="D", state="pending").count() == 1


def assert_rejected(order: Order, rule: str, code: str | None = None) -> None:
    assert outcome_of(order) == blocked(rule, code)
    assert order.reject_reason == result_of(order, rule).reason
    assert not OutboundMessage.objects.filter(order_id=order.pk).exists()
    assert not OrderRequest.objects.filter(order=order).exists()


def assert_held(order: Order, rule: str, code: str | None = None) -> None:
    assert outcome_of(order) == held(rule, code)
    assert order.reject_reason == ""
    assert not OutboundMessage.objects.filter(order_id=order.pk).exists()


def expect(order: Order, outcome: str, rule: str, code: str | None = None) -> None:
    {"pass": lambda: assert_routed(order), "block": lambda: assert_rejected(order, rule, code)}[outcome]()


def make_locate(account, security, quantity: int, *, reference: str = "L-1", expires_in: int = 3600) -> Locate:
    return Locate.objects.create(
        account=account,
        security=security,
        broker="GS",
        reference=reference,
        quantity=quantity,
        expires_at=now() + dt.timedelta(seconds=expires_in),
    )


# ------------------------------------------------------------------ fat finger
@pytest.mark.parametrize(("quantity", "outcome"), [(999, "pass"), (1000, "pass"), (1001, "block")])
def test_max_order_quantity(place, what_if, quantity, outcome):
    rule_set("max_order_quantity", threshold=Decimal(1000))

    assert what_if(quantity=quantity).outcome == outcome
    order = place(quantity=quantity)

    expect(order, outcome, "max_order_quantity")
    if outcome == "block":
        assert order.reject_reason == "Quantity 1,001 exceeds the maximum 1,000."


@pytest.mark.parametrize(("quantity", "outcome"), [(999, "pass"), (1000, "pass"), (1001, "block")])
@pytest.mark.parametrize("order_type", ["LIMIT", "MARKET"])
def test_max_order_notional_at_the_limit_price_or_the_reference(place, what_if, order_type, quantity, outcome):
    # 1000 x 175.50 (the limit price; for a market order the reference price) = 175,500.
    rule_set("max_order_notional", threshold=Decimal(175500))

    assert what_if(order_type=order_type, quantity=quantity).outcome == outcome
    order = place(order_type=order_type, quantity=quantity)

    expect(order, outcome, "max_order_notional")
    if outcome == "block":
        assert order.reject_reason == "Notional 175,675.50 exceeds the maximum 175,500.00."


@pytest.mark.parametrize(
    ("price", "outcome"),
    [
        ("193.04", "pass"),
        ("193.05", "pass"),  # reference 175.50 + 10 % exactly
        ("193.06", "block"),
        ("157.96", "pass"),
        ("157.95", "pass"),  # 175.50 - 10 % exactly
        ("157.94", "block"),
    ],
)
def test_price_collar_above_and_below_the_reference(place, what_if, price, outcome):
    assert what_if(limit_price=Decimal(price)).outcome == outcome
    order = place(limit_price=Decimal(price))

    expect(order, outcome, "price_collar")


def test_price_collar_follows_its_setting(place):
    rule_set("price_collar", threshold=Decimal("1"))

    assert_routed(place(limit_price=Decimal("177.255")))  # 175.50 + 1 % exactly
    assert_rejected(place(limit_price=Decimal("177.26")), "price_collar")


# ---------------------------------------------------------------- reference price
def test_missing_reference_price_blocks(place, what_if, aapl):
    aapl.reference_price = None
    aapl.reference_price_at = None
    aapl.save()

    assert what_if().outcome == "block"
    order = place()

    # The collar cannot be measured without a reference either.
    assert outcome_of(order) == (
        "rejected",
        [("price_collar", "block", "no_reference_price"), ("reference_price", "block", "no_reference_price")],
    )
    assert order.reject_reason == "AAPL has no reference price for the price collar.; AAPL has no reference price."


def test_missing_reference_price_blocks_a_market_order(place, aapl):
    aapl.reference_price = None
    aapl.save()

    order = place(order_type="MARKET")

    assert outcome_of(order) == (
        "rejected",
        [("max_order_notional", "block", "no_price"), ("reference_price", "block", "no_reference_price")],
    )


@pytest.mark.parametrize(("age", "outcome"), [(86400 - 30, "pass"), (86400 + 5, "block")], ids=["inside", "stale"])
def test_reference_price_older_than_the_window_is_stale(place, what_if, aapl, age, outcome):
    aapl.reference_price_at = now() - dt.timedelta(seconds=age)
    aapl.save()

    assert what_if().outcome == outcome
    order = place()

    expect(order, outcome, "reference_price", "stale_reference_price")


def test_reference_price_window_follows_its_setting(place, aapl):
    rule_set("reference_price", window_seconds=60)
    aapl.reference_price_at = now() - dt.timedelta(seconds=61)
    aapl.save()

    assert_rejected(place(), "reference_price", "stale_reference_price")


# -------------------------------------------------------------------------- limits
@pytest.mark.parametrize(("quantity", "outcome"), [(1999, "pass"), (2000, "pass"), (2001, "block")])
def test_position_limit_projects_the_position_with_working_orders(place, what_if, account, aapl, quantity, outcome):
    rule_set("position_limit", threshold=Decimal(5000))
    long_position(account, aapl, 1500)
    working = place(quantity=1500)  # a working buy
    assert working.status == "pending_new"

    assert what_if(quantity=quantity).outcome == outcome
    order = place(quantity=quantity)  # 1500 + 1500 + quantity against 5000

    expect(order, outcome, "position_limit")
    if outcome == "block":
        assert order.reject_reason == (
            "Projected position 5,001 in AAPL (position 1,500, working buys 3,501, sells 0) exceeds the limit 5,000."
        )


def test_position_limit_ignores_orders_that_ended(place, account, aapl):
    rule_set("position_limit", threshold=Decimal(5000))
    gone = place(quantity=3000)
    order_cancel(user=gone.created_by, order_id=gone.pk)

    assert_routed(place(quantity=5000))


def test_position_limit_on_the_short_side(place, account, aapl):
    rule_set("position_limit", threshold=Decimal(5000))
    long_position(account, aapl, 1000)
    make_locate(account, aapl, 10000)

    assert_routed(place(side="SELL_SHORT", quantity=6000))  # 1000 - 6000 = -5000
    assert_rejected(place(side="SELL_SHORT", quantity=1), "position_limit")


def notional_book(place, account, aapl, msft):
    """Long 1000 AAPL (175,500 at the reference), long 500 MSFT (207,600) and a working
    sell of 100 MSFT at 415.20 (41,520): gross 424,620, net 341,580."""
    long_position(account, aapl, 1000)
    long_position(account, msft, 500)
    sell = place(symbol="MSFT", side="SELL", quantity=100, limit_price=Decimal("415.20"))
    assert sell.status == "pending_new"


@pytest.mark.parametrize(("quantity", "outcome"), [(999, "pass"), (1000, "pass"), (1001, "block")])
def test_gross_notional_limit_counts_positions_and_working_orders(
    place, what_if, account, aapl, msft, quantity, outcome
):
    notional_book(place, account, aapl, msft)
    rule_set("gross_notional_limit", threshold=Decimal("424620") + Decimal("175500"))

    assert what_if(quantity=quantity).outcome == outcome
    order = place(quantity=quantity)

    expect(order, outcome, "gross_notional_limit")
    if outcome == "block":
        assert order.reject_reason == "Account gross notional would be 600,295.50; the limit is 600,120.00."


@pytest.mark.parametrize(("quantity", "outcome"), [(999, "pass"), (1000, "pass"), (1001, "block")])
def test_net_notional_limit_nets_sells_against_buys(place, what_if, account, aapl, msft, quantity, outcome):
    notional_book(place, account, aapl, msft)
    # Net, not gross: 341,580 + 175,500 (the gross would be 600,120, over the limit).
    rule_set("net_notional_limit", threshold=Decimal("341580") + Decimal("175500"))

    assert what_if(quantity=quantity).outcome == outcome
    order = place(quantity=quantity)

    expect(order, outcome, "net_notional_limit")


def test_net_notional_limit_on_the_short_side(place, account, aapl):
    rule_set("net_notional_limit", threshold=Decimal("175500"))
    long_position(account, aapl, 1000)

    assert_routed(place(side="SELL", quantity=1000))  # net 0
    make_locate(account, aapl, 2000)
    assert_routed(place(side="SELL_SHORT", quantity=1000))  # net -175,500
    assert_rejected(place(side="SELL_SHORT", quantity=1), "net_notional_limit")


@pytest.mark.parametrize(("quantity", "outcome"), [(999, "pass"), (1000, "pass"), (1001, "block")])
def test_daily_notional_limit_counts_today_but_not_rejected_orders(place, what_if, quantity, outcome):
    working = place(quantity=1100)  # 193,050
    filled = ack(place(quantity=400))
    fill(filled, 400, "175.00")  # 70,000 filled, the order is no longer working
    refused = place(quantity=100, limit_price=Decimal("250"))  # outside the collar: rejected, not counted
    yesterday = place(quantity=2000)
    Order.objects.filter(pk=yesterday.pk).update(created_at=now() - dt.timedelta(days=1))
    assert (working.status, filled.status, refused.status) == ("pending_new", "filled", "rejected")
    rule_set("daily_notional_limit", threshold=Decimal("193050") + Decimal("70000") + Decimal("175500"))

    assert what_if(quantity=quantity).outcome == outcome
    order = place(quantity=quantity)

    expect(order, outcome, "daily_notional_limit")


# ------------------------------------------------------------ duplicates, wash trades
def test_duplicate_order_is_held(place, what_if):
    first = place(quantity=1234)

    assert what_if(quantity=1234).outcome == "warn"
    twin = place(quantity=1234)

    assert_routed(first)
    assert_held(twin, "duplicate_order")
    assert result_of(twin, "duplicate_order").reason == (
        f"Same account, security, side, quantity and price as order #{first.pk} within 60 s."
    )
    assert AuditEvent.objects.filter(object_id=str(twin.pk), action="order.held").count() == 1


@pytest.mark.parametrize("change", [{"limit_price": Decimal("175.51")}, {"quantity": 1235}, {"side": "SELL"}])
def test_different_terms_are_not_a_duplicate(place, account, aapl, change):
    long_position(account, aapl, 5000)
    rule_set("wash_trade", enabled=False)  # the opposite side is a wash trade, not a duplicate
    place(quantity=1234)

    assert_routed(place(**{"quantity": 1234, **change}))


def test_a_rejected_twin_is_not_a_duplicate(place):
    rule_set("max_order_quantity", threshold=Decimal(1000))
    assert place(quantity=1234).status == "rejected"
    rule_set("max_order_quantity", threshold=Decimal(2000))

    assert_routed(place(quantity=1234))


@pytest.mark.parametrize(("age", "outcome"), [(55, "warn"), (61, "pass")], ids=["inside", "outside"])
def test_duplicate_window(place, age, outcome):
    first = place(quantity=1234)
    Order.objects.filter(pk=first.pk).update(created_at=now() - dt.timedelta(seconds=age))

    twin = place(quantity=1234)

    if outcome == "pass":
        assert_routed(twin)
    else:
        assert_held(twin, "duplicate_order")


def test_wash_trade_against_an_opposite_working_order_is_held(place, what_if, account, aapl):
    long_position(account, aapl, 5000)
    buy = place(quantity=1000)

    assert what_if(side="SELL", quantity=500).outcome == "warn"
    sell = place(side="SELL", quantity=500)

    assert_held(sell, "wash_trade")
    assert result_of(sell, "wash_trade").reason == (
        f"Order #{buy.pk} on the opposite side of AAPL is working in the same account."
    )


def test_wash_trade_with_severity_block_rejects(place, account, aapl):
    rule_set("wash_trade", severity="block")
    long_position(account, aapl, 5000)
    place(quantity=1000)

    assert_rejected(place(side="SELL", quantity=500), "wash_trade")


def test_wash_trade_ignores_other_accounts_and_securities(place, account, other_account, other_trader, aapl, msft):
    long_position(account, aapl, 5000)
    place(symbol="MSFT", quantity=100, limit_price=Decimal("415.20"))
    place(user=other_trader, account=other_account.code, quantity=1000)

    assert_routed(place(side="SELL", quantity=500))


@pytest.mark.parametrize(("age", "outcome"), [(290, "warn"), (301, "pass")], ids=["inside", "outside"])
def test_wash_trade_against_a_recent_opposite_fill(place, what_if, age, outcome):
    bought = fill(ack(place(quantity=300)), 300, "175.40")
    assert bought.status == "filled"  # no longer working: only its fill counts
    execution = Execution.objects.get(order=bought, exec_type="F")
    Execution.objects.filter(pk=execution.pk).update(received_at=now() - dt.timedelta(seconds=age))

    assert what_if(side="SELL", quantity=200).outcome == outcome
    sell = place(side="SELL", quantity=200)  # within the position the fill built

    if outcome == "pass":
        assert_routed(sell)
    else:
        assert_held(sell, "wash_trade")
        assert "filled in the same account within 300 s" in result_of(sell, "wash_trade").reason


def test_a_busted_fill_is_not_a_wash_trade(place):
    bought = fill(ack(place(quantity=300)), 300, "175.40")
    execution = Execution.objects.get(order=bought, exec_type="F")
    Execution.objects.filter(pk=execution.pk).update(in_effect=False)
    assert bought.account.positions.get().quantity == 300

    assert_routed(place(side="SELL", quantity=200))


# ---------------------------------------------------------------------- short sale


@pytest.mark.parametrize(("quantity", "outcome"), [(999, "pass"), (1000, "pass"), (1001, "block")])
def test_long_sale_within_the_position(place, what_if, account, aapl, quantity, outcome):
    long_position(account, aapl, 1000)

    assert what_if(side="SELL", quantity=quantity).outcome == outcome
    order = place(side="SELL", quantity=quantity)

    expect(order, outcome, "short_sale", "short_sale_unmarked")
    if outcome == "pass":
        assert result_of(order, "short_sale").code == "long_sale"


def test_long_sale_without_a_position_is_an_unmarked_short(place):
    assert_rejected(place(side="SELL", quantity=1), "short_sale", "short_sale_unmarked")


@pytest.mark.parametrize(("quantity", "outcome"), [(400, "pass"), (401, "block")])
def test_pending_sells_use_up_the_position(place, account, aapl, quantity, outcome):
    long_position(account, aapl, 1000)
    assert place(side="SELL", quantity=600).status == "pending_new"

    expect(place(side="SELL", quantity=quantity), outcome, "short_sale", "short_sale_unmarked")


def test_short_sale_without_a_locate_is_blocked(place, what_if, account, aapl, msft):
    make_locate(account, msft, 5000)  # another security's locate does not count

    assert what_if(side="SELL_SHORT", quantity=500).outcome == "block"
    order = place(side="SELL_SHORT", quantity=500)

    assert_rejected(order, "short_sale", "no_locate")
    assert not LocateUse.objects.exists()


def test_short_sale_reserves_its_locate_which_is_then_used_up(place, what_if, account, aapl):
    locate = make_locate(account, aapl, 500)

    order = place(side="SELL_SHORT", quantity=500)  # exactly the located quantity

    assert_routed(order)
    assert result_of(order, "short_sale").code == "locate"
    use = LocateUse.objects.get()
    assert (use.locate, use.order, use.quantity) == (locate, order, 500)
    reserved = AuditEvent.objects.get(action="locate.reserved")
    assert (reserved.object_id, reserved.after["order"], reserved.after["quantity"]) == (str(locate.pk), order.pk, 500)

    assert what_if(side="SELL_SHORT", quantity=1).outcome == "block"
    second = place(side="SELL_SHORT", quantity=1)
    assert_rejected(second, "short_sale", "no_locate")
    assert LocateUse.objects.count() == 1


def test_the_trail_of_a_short_sale_is_in_the_order_its_steps_happened(place, account, aapl):
    # The locate is reserved by a commit that writes on its own, after the order was
    # entered and before compliance's verdict: the trail keeps that order.
    locate = make_locate(account, aapl, 500)
    order = place(side="SELL_SHORT", quantity=500)

    trail = AuditEvent.objects.filter(
        Q(object_type="order", object_id=str(order.pk)) | Q(object_type="locate", object_id=str(locate.pk))
    ).order_by("id")
    actions = [action for action in trail.values_list("action", flat=True) if action != "locate.created"]
    assert actions[:3] == ["order.created", "locate.reserved", "compliance.evaluated"]


def test_short_sale_over_the_locate_is_blocked(place, account, aapl):
    make_locate(account, aapl, 500)

    assert_rejected(place(side="SELL_SHORT", quantity=501), "short_sale", "no_locate")
    assert not LocateUse.objects.exists()


def test_expired_or_ended_locate_does_not_cover(place, account, aapl, middle_office):
    expired = make_locate(account, aapl, 500, reference="L-EXP")
    Locate.objects.filter(pk=expired.pk).update(expires_at=now() - dt.timedelta(seconds=1))
    ended = make_locate(account, aapl, 500, reference="L-END")
    locate_end(user=middle_office, locate_id=ended.pk)

    assert_rejected(place(side="SELL_SHORT", quantity=500), "short_sale", "no_locate")


def test_cancelled_short_sale_frees_its_locate(place, account, aapl, trader):
    locate = make_locate(account, aapl, 500)
    first = place(side="SELL_SHORT", quantity=500)
    assert_routed(first)
    order_cancel(user=trader, order_id=first.pk)
    first.refresh_from_db()
    assert first.status == "cancelled"

    second = place(side="SELL_SHORT", quantity=500, limit_price=Decimal("175.40"))

    assert_routed(second)
    assert sorted(LocateUse.objects.values_list("order_id", "locate_id", "quantity")) == [
        (first.pk, locate.pk, 500),
        (second.pk, locate.pk, 500),
    ]


def test_filled_part_of_a_cancelled_short_sale_stays_used(place, account, aapl, trader):
    make_locate(account, aapl, 500)
    first = fill(ack(place(side="SELL_SHORT", quantity=500)), 200, "175.50")
    order_cancel(user=trader, order_id=first.pk)
    assert apply_cancelled(first).status == "cancelled"

    assert_rejected(place(side="SELL_SHORT", quantity=301), "short_sale", "no_locate")
    assert_routed(place(side="SELL_SHORT", quantity=300))


def apply_cancelled(order: Order) -> Order:
    order.refresh_from_db()
    cancel = OrderRequest.objects.get(order=order, kind="cancel")
    apply(order, ExecType="4", OrdStatus="4", ClOrdID=cancel.cl_ord_id, OrigClOrdID=order.cl_ord_id)
    return order


def test_short_exempt_needs_no_locate(place, what_if):
    assert what_if(side="SELL_SHORT", quantity=500, short_exempt_reason="market maker").outcome == "pass"
    order = place(side="SELL_SHORT", quantity=500, short_exempt_reason="market maker")

    assert_routed(order)
    assert result_of(order, "short_sale").code == "short_exempt"
    assert not LocateUse.objects.exists()


# --------------------------------------------------------------------- rate limits
def test_order_rate_per_trader(place, account, other_account, other_trader):
    rule_set("order_rate_trader", threshold=Decimal(3), window_seconds=60)
    for _ in range(3):
        assert_routed(place())  # the third message in the window passes
    assert_routed(place(user=other_trader, account=other_account.code))  # another trader's own count

    fourth = place()

    assert_rejected(fourth, "order_rate_trader")
    assert fourth.reject_reason == "Message rate for trader trader1: 4 in 60 s exceeds 3."


def test_order_rate_window(place):
    rule_set("order_rate_trader", threshold=Decimal(2), window_seconds=60)
    old = [place(), place()]
    Order.objects.filter(pk__in=[o.pk for o in old]).update(created_at=now() - dt.timedelta(seconds=61))

    assert_routed(place())


def test_order_rate_counts_cancels_and_replaces(place, trader):
    rule_set("order_rate_trader", threshold=Decimal(4), window_seconds=60)
    first = ack(place(quantity=1000))
    order_cancel(user=trader, order_id=first.pk)  # message 2
    second = ack(place(quantity=1100))  # message 3
    order_amend(user=trader, order_id=second.pk, quantity=1200)  # message 4: passes

    assert_rejected(place(), "order_rate_trader")  # message 5


def test_amend_over_the_rate_is_refused(place, trader):
    rule_set("order_rate_trader", threshold=Decimal(3), window_seconds=60)
    first = ack(place(quantity=1000))
    order_cancel(user=trader, order_id=first.pk)  # message 2
    second = ack(place(quantity=1100))  # message 3

    with pytest.raises(InvalidStateTransition) as refused:
        order_amend(user=trader, order_id=second.pk, quantity=1200)  # message 4

    assert refused.value.code == "compliance_refused"
    assert "Message rate for trader trader1: 4 in 60 s exceeds 3." in refused.value.message
    second.refresh_from_db()
    assert (second.status, second.quantity) == ("open", 1100)


def test_order_rate_per_account(place, account, other_trader):
    account.traders.add(other_trader)
    rule_set("order_rate_account", threshold=Decimal(3), window_seconds=60)
    assert_routed(place())
    assert_routed(place(user=other_trader))
    assert_routed(place())

    fourth = place(user=other_trader)

    assert_rejected(fourth, "order_rate_account")
    assert fourth.reject_reason == "Message rate for account ACC-1: 4 in 60 s exceeds 3."


def test_order_rate_per_account_ignores_other_accounts(place, account, other_account, other_trader):
    rule_set("order_rate_account", threshold=Decimal(1), window_seconds=60)
    assert_routed(place(user=other_trader, account=other_account.code))

    assert_routed(place())


def test_rejected_orders_count_as_messages(place):
    rule_set("order_rate_trader", threshold=Decimal(2), window_seconds=60)
    assert_rejected(place(limit_price=Decimal("250")), "price_collar")
    assert_routed(place())

    assert_rejected(place(), "order_rate_trader")


# ----------------------------------------------------------------------- the lists
@pytest.fixture
def apple_b(db):
    """Another security of the issuer of AAPL."""
    return SecurityFactory(symbol="AAPL.B", issuer="Apple Inc.", reference_price=Decimal("175.50"))


def test_restricted_symbol_blocks_every_security_of_its_issuer(place, what_if, middle_office, apple_b, msft):
    restricted_entry_add(user=middle_office, symbol="AAPL", reason="deal team: Project Orchard")

    assert what_if(symbol="AAPL.B").outcome == "block"
    for symbol in ("AAPL", "AAPL.B"):
        order = place(symbol=symbol)
        assert_rejected(order, "restricted_list")
        # The entry's reason may be inside information: traders see only the fact.
        assert order.reject_reason == "Apple Inc. is on the restricted list."
    assert_routed(place(symbol="MSFT", limit_price=Decimal("415.20")))


def test_restricted_issuer_blocks_regardless_of_case(place, middle_office):
    restricted_entry_add(user=middle_office, issuer="APPLE INC.", reason="watch")

    assert_rejected(place(), "restricted_list")


def test_restricted_entry_not_yet_in_force_does_not_block(place, middle_office):
    restricted_entry_add(
        user=middle_office, symbol="AAPL", reason="from tomorrow", effective_from=now() + dt.timedelta(days=1)
    )

    assert_routed(place())


def test_restricted_entry_past_its_end_does_not_block(place, middle_office):
    entry = restricted_entry_add(
        user=middle_office, symbol="AAPL", reason="until an hour ago", effective_to=now() + dt.timedelta(hours=1)
    )
    type(entry).objects.filter(pk=entry.pk).update(
        effective_from=now() - dt.timedelta(hours=2), effective_to=now() - dt.timedelta(hours=1)
    )

    assert_routed(place())


def test_ended_restricted_entry_does_not_block(place, middle_office):
    entry = restricted_entry_add(user=middle_office, symbol="AAPL", reason="lifted")
    assert_rejected(place(), "restricted_list")

    restricted_entry_end(user=middle_office, entry_id=entry.pk)

    assert_routed(place())


def test_watch_list_never_blocks_and_raises_a_review_item(place, what_if, middle_office):
    entry = watch_entry_add(user=middle_office, symbol="AAPL", reason="unusual volume")

    evaluation = what_if()
    assert (evaluation.outcome, evaluation.visible_reasons, evaluation.warnings) == ("pass", [], [])
    assert not ReviewItem.objects.exists()
    order = place()

    assert outcome_of(order) == ("pending_new", [("watch_list", "warn", "watch_list")])  # internal: not counted
    assert OutboundMessage.objects.filter(order_id=order.pk, msg_type="D").count() == 1
    watch = result_of(order, "watch_list")
    assert (watch.outcome, watch.code, watch.internal) == ("warn", "watch_list", True)
    item = ReviewItem.objects.get()
    assert (item.order, item.kind, item.details["entry"], item.resolved_at) == (order, "watch_list", entry.pk, None)
    evaluated = AuditEvent.objects.get(action="compliance.evaluated", object_id=str(order.pk))
    assert "watch_list" not in {r["rule"] for r in evaluated.details["results"]}
    assert AuditEvent.objects.filter(action="review_item.raised", object_id=str(item.pk)).exists()


# ----------------------------------------------------------------------- kill switch
KILL_SWITCHES = [("firm", ""), ("account", "ACC-1"), ("trader", "trader1"), ("symbol", "AAPL"), ("venue", "SIM")]


@pytest.mark.parametrize(("scope", "target"), KILL_SWITCHES)
def test_kill_switch_blocks_while_on(place, what_if, middle_office, scope, target):
    kill_switch_set(user=middle_office, scope=scope, target=target, active=True, reason="runaway algo")

    assert what_if(venue="SIM").outcome == "block"
    order = place(venue="SIM")

    assert_rejected(order, "kill_switch")
    assert order.reject_reason == f"Kill switch on ({scope} {target}".strip() + "): runaway algo"

    kill_switch_set(user=middle_office, scope=scope, target=target, active=False, reason="fixed")

    assert what_if(venue="SIM").outcome == "pass"
    assert_routed(place(venue="SIM"))


def test_kill_switch_on_the_venue_the_router_chose(place, middle_office):
    kill_switch_set(user=middle_office, scope="venue", target="SIM", active=True, reason="venue trouble")

    order = place()  # no venue given: compliance passes, the router picks SIM and refuses

    assert outcome_of(order) == ("rejected", [])
    assert order.reject_reason == "Kill switch on (venue SIM): venue trouble"
    assert not OutboundMessage.objects.filter(order_id=order.pk).exists()

    kill_switch_set(user=middle_office, scope="venue", target="SIM", active=False, reason="fixed")

    assert_routed(place())


@pytest.mark.parametrize(("scope", "target"), [("account", "ACC-3"), ("trader", "trader2"), ("symbol", "MSFT")])
def test_kill_switch_out_of_scope_does_not_block(place, middle_office, other_account, msft, scope, target):
    kill_switch_set(user=middle_office, scope=scope, target=target, active=True, reason="elsewhere")

    assert_routed(place())


# ------------------------------------------------------------------ scope precedence
def test_account_setting_overrides_the_firm_looser_and_tighter(place, account, other_account, other_trader):
    rule_set("max_order_quantity", threshold=Decimal(1000))
    rule_set("max_order_quantity", scope="account", account=account, threshold=Decimal(2000))
    rule_set("max_order_quantity", scope="account", account=other_account, threshold=Decimal(500))

    assert_routed(place(quantity=2000))  # looser than the firm
    assert_rejected(place(quantity=2001), "max_order_quantity")
    assert_rejected(place(user=other_trader, account=other_account.code, quantity=501), "max_order_quantity")
    assert_routed(place(user=other_trader, account=other_account.code, quantity=500))


def test_disabled_account_setting_switches_the_rule_off_for_that_account_only(
    place, account, other_account, other_trader
):
    rule_set("max_order_quantity", threshold=Decimal(1000))
    rule_set("max_order_quantity", scope="account", account=account, enabled=False)

    order = place(quantity=5000)

    assert_routed(order)
    assert result_of(order, "max_order_quantity").code == "not_configured"
    assert_rejected(place(user=other_trader, account=other_account.code, quantity=5000), "max_order_quantity")


def test_security_setting_wins_over_account(place, account, aapl, msft):
    rule_set("max_order_quantity", threshold=Decimal(1000))
    rule_set("max_order_quantity", scope="account", account=account, threshold=Decimal(2000))
    rule_set("max_order_quantity", scope="security", security=aapl, threshold=Decimal(500))

    assert_rejected(place(quantity=501), "max_order_quantity")
    assert_routed(place(quantity=500))
    assert_routed(place(symbol="MSFT", quantity=2000, limit_price=Decimal("415.20")))  # the account's setting


def test_issuer_setting_wins_over_account_and_trader(place, account, trader, apple_b):
    rule_set("max_order_quantity", scope="trader", trader=trader, threshold=Decimal(100))
    rule_set("max_order_quantity", scope="account", account=account, threshold=Decimal(2000))
    rule_set("max_order_quantity", scope="issuer", issuer="apple inc.", threshold=Decimal(700))

    assert_rejected(place(symbol="AAPL.B", quantity=701), "max_order_quantity")
    assert_routed(place(symbol="AAPL.B", quantity=700))


def test_trader_setting_overrides_the_firm(place, trader, other_trader, other_account):
    rule_set("max_order_quantity", threshold=Decimal(1000))
    rule_set("max_order_quantity", scope="trader", trader=trader, threshold=Decimal(100))

    assert_rejected(place(quantity=101), "max_order_quantity")
    assert_routed(place(user=other_trader, account=other_account.code, quantity=1000))


# --------------------------------------------------------------------- fail closed
@pytest.fixture
def broken_rule():
    def broken(check):
        raise RuntimeError("feed down")

    engine.rule_register("zz_broken", broken)
    yield "zz_broken"
    engine.rule_unregister("zz_broken")


def test_a_rule_that_raises_blocks(place, what_if, broken_rule):
    assert what_if().outcome == "block"
    order = place()

    assert outcome_of(order) == ("rejected", [("zz_broken", "block", "rule_error")])
    assert order.reject_reason == "Compliance rule zz_broken could not be evaluated."
    assert not OutboundMessage.objects.filter(order_id=order.pk).exists()


# ------------------------------------------------------------------------- what-if
def _what_if_setups(account, aapl, middle_office):
    return {
        "pass": lambda: {},
        "warn": lambda: {"prior": {"quantity": 1234}, "order": {"quantity": 1234}},
        "block": lambda: rule_set("max_order_quantity", threshold=Decimal(100)) and {"order": {"quantity": 101}},
        "watch_list": lambda: watch_entry_add(user=middle_office, symbol="AAPL", reason="watch") and {},
        "locate": lambda: make_locate(account, aapl, 500) and {"order": {"side": "SELL_SHORT", "quantity": 500}},
    }


@pytest.mark.parametrize("case", ["pass", "warn", "block", "watch_list", "locate"])
def test_what_if_persists_nothing_and_agrees_with_submit(place, what_if, account, aapl, middle_office, case):
    setup = _what_if_setups(account, aapl, middle_office)[case]() or {}
    if "prior" in setup:
        place(**setup["prior"])
    terms = setup.get("order", {"quantity": distinct_quantity()})
    before = counts()

    evaluation = what_if(**terms)

    assert counts() == before
    assert all(r.pk is None for r in evaluation.results)
    order = place(**terms)
    stored = ComplianceResult.objects.filter(order=order, stage="submit")
    assert {(r.rule, r.outcome, r.code, r.internal) for r in evaluation.results} == {
        (r.rule, r.outcome, r.code, r.internal) for r in stored
    }
    order.refresh_from_db()
    expected_status = {"pass": "pending_new", "warn": "held", "block": "rejected"}[evaluation.outcome]
    assert order.status == expected_status
    assert evaluation.outcome == {"watch_list": "pass", "locate": "pass"}.get(case, case)


def test_what_if_reports_reasons_without_internal_ones(what_if, place, middle_office):
    watch_entry_add(user=middle_office, symbol="AAPL", reason="secret")
    rule_set("max_order_quantity", threshold=Decimal(100))

    evaluation = what_if(quantity=101)

    assert evaluation.outcome == "block"
    assert evaluation.visible_reasons == ["Quantity 101 exceeds the maximum 100."]
    assert "watch_list" not in {r.rule for r in evaluation.visible_results}


# ----------------------------------------------------------------------- amend stage
def test_amend_that_would_breach_is_refused(place, trader):
    rule_set("max_order_quantity", threshold=Decimal(1000))
    order = ack(place(quantity=900))
    before = counts()

    with pytest.raises(InvalidStateTransition) as refused:
        order_amend(user=trader, order_id=order.pk, quantity=1001)

    assert refused.value.code == "compliance_refused"
    assert refused.value.message == "Amendment refused by compliance: Quantity 1,001 exceeds the maximum 1,000."
    order.refresh_from_db()
    assert (order.status, order.quantity) == ("open", 900)
    # The refusal and the verdicts are on record; no request or message was made.
    assert counts() == {
        **before,
        "AuditEvent": before["AuditEvent"] + 1,
        "ComplianceResult": before["ComplianceResult"] + len(engine.registered_rules()),
    }
    refusal = AuditEvent.objects.get(action="order.amend_refused")
    assert (refusal.object_id, refusal.details["code"]) == (str(order.pk), "compliance_refused")
    assert failures(order, stage="amend") == [("max_order_quantity", "block", "max_order_quantity")]
    amend_times = set(
        ComplianceResult.objects.filter(order=order, stage="amend").values_list("evaluated_at", flat=True)
    )
    assert len(amend_times) == 1  # one evaluation, one time

    amended = order_amend(user=trader, order_id=order.pk, quantity=1000)  # exactly at the limit

    assert amended.status == "pending_amend"
    assert OutboundMessage.objects.filter(order_id=order.pk, msg_type="G").count() == 1
    amend_results = ComplianceResult.objects.filter(order=order, stage="amend", rule="max_order_quantity")
    assert list(amend_results.order_by("id").values_list("outcome", flat=True)) == ["block", "pass"]


def test_amend_price_outside_the_collar_is_refused(place, trader):
    order = ack(place(quantity=900))

    with pytest.raises(InvalidStateTransition) as refused:
        order_amend(user=trader, order_id=order.pk, limit_price=Decimal("193.06"))

    assert refused.value.code == "compliance_refused"
    order.refresh_from_db()
    assert (order.status, order.limit_price) == ("open", Decimal("175.50"))
    assert not OrderRequest.objects.filter(order=order, kind="replace").exists()


def test_amend_counts_the_order_once_against_the_position_limit(place, trader, account, aapl):
    rule_set("position_limit", threshold=Decimal(3000))
    order = ack(place(quantity=2000))

    assert order_amend(user=trader, order_id=order.pk, quantity=3000).status == "pending_amend"


def test_amend_of_a_partly_filled_order_counts_its_fills_once(place, trader, account, aapl):
    rule_set("position_limit", threshold=Decimal(3000))
    order = fill(ack(place(quantity=2000)), 1000, "175.50")
    assert account.positions.get(security=aapl).quantity == 1000

    # Position 1000 + the 2000 still to fill: exactly the limit.
    assert order_amend(user=trader, order_id=order.pk, quantity=3000).status == "pending_amend"


def test_amend_of_a_partly_filled_order_is_refused_one_over(place, trader, account, aapl):
    rule_set("position_limit", threshold=Decimal(3000))
    order = fill(ack(place(quantity=2000)), 1000, "175.50")

    with pytest.raises(InvalidStateTransition) as refused:
        order_amend(user=trader, order_id=order.pk, quantity=3001)

    assert refused.value.code == "compliance_refused"
    assert "Projected position 3,001 in AAPL" in refused.value.message


@pytest.mark.parametrize(("quantity", "outcome"), [(1000, "pass"), (1001, "block")])
def test_amend_of_a_partly_filled_sale_within_the_position(place, trader, account, aapl, quantity, outcome):
    long_position(account, aapl, 1000)
    order = fill(ack(place(side="SELL", quantity=600)), 400, "175.50")
    assert account.positions.get(security=aapl).quantity == 600

    if outcome == "pass":  # 600 more to sell: the whole position
        assert order_amend(user=trader, order_id=order.pk, quantity=quantity).status == "pending_amend"
    else:
        with pytest.raises(InvalidStateTransition) as refused:
            order_amend(user=trader, order_id=order.pk, quantity=quantity)
        assert refused.value.code == "compliance_refused"
        assert "exceeds the long position available (600 after pending sells)" in refused.value.message


# ------------------------------------------------------------------ verdict storage
def test_one_evaluation_is_one_verdict_row_read_back_one_result_per_rule(place, middle_office):
    watch_entry_add(user=middle_office, symbol="AAPL", reason="secret")
    rule_set("max_order_quantity", threshold=Decimal(1000))
    before = ComplianceVerdict.objects.count()

    with CaptureQueriesContext(connection) as queries:
        order = place(quantity=distinct_quantity())

    verdicts = list(ComplianceVerdict.objects.filter(order=order))
    assert ComplianceVerdict.objects.count() == before + 1
    assert [(v.stage, v.outcome) for v in verdicts] == [("submit", "pass")]
    verdict = verdicts[0]
    assert [r["rule"] for r in verdict.results] == sorted(engine.registered_rules())
    # One row, written with the order's other rows (or by COPY, which the query log
    # does not capture): no statement names a per-rule table or view, and the verdict
    # table is written one row of VALUES at most, whatever the number of rules.
    named = [q["sql"] for q in queries.captured_queries if "compliance_compliance" in q["sql"]]
    assert not [sql for sql in named if ComplianceResult._meta.db_table in sql]
    for sql in named:
        verdict_insert = sql.split('INSERT INTO "compliance_complianceverdict"')[1].split(";")[0]
        assert verdict_insert.count("VALUES (") == 1 and "), (" not in verdict_insert
    # Read back one row per rule, numbered after the verdict, with the verdict's time.
    results = list(ComplianceResult.objects.filter(order=order).order_by("id"))
    assert [r.as_result() for r in results] == verdict.results
    assert [r.pk for r in results] == [verdict.pk * RESULT_ID_BASE + i for i in range(len(results))]
    assert {r.evaluated_at for r in results} == {verdict.evaluated_at}
    assert {r.verdict_id for r in results} == {verdict.pk}
    watch = ComplianceResult.objects.get(order=order, rule="watch_list")
    assert (watch.outcome, watch.internal, watch.overridden) == ("warn", True, False)
