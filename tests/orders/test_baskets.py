"""Baskets over the API and through the service: one transaction per basket, every line
validated first, compliance in line order (each line sees the ones before it, exactly
as one-by-one submission would), idempotency by client_basket_id, visibility, cancel,
and the orders' link to their basket. Negative paths assert that nothing was written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from compliance.models import ComplianceResult, RuleSetting
from oms_site.errors import InvalidInput
from orders.models import Basket, Order, OrderRequest
from orders.services import BASKET_MAX_LINES, basket_check, basket_submit, order_submit
from routing.models import OutboundMessage
from tests.compliance.conftest import rule_set
from tests.factories import AccountFactory
from tests.helpers import assert_error, client_for
from tests.helpers import order_line as line

pytestmark = pytest.mark.django_db

BASKETS = "/api/v1/baskets/"
ORDERS = "/api/v1/orders/"
COUNTED = (Basket, Order, OrderRequest, OutboundMessage, ComplianceResult, AuditEvent)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


def basket(*lines: dict, client_basket_id: str = "B-1", **fields) -> dict:
    return {"client_basket_id": client_basket_id, "orders": list(lines), **fields}


@pytest.fixture
def ready(account, aapl, msft, venue):
    """Reference data for valid baskets by the trader."""


def statuses(body: dict) -> list[str]:
    return [order["status"] for order in body["orders"]]


def actions(order_id: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="order", object_id=str(order_id))
        .order_by("id")
        .values_list("action", flat=True)
    )


def failed_rules(order_id: int) -> list[str]:
    return sorted(
        ComplianceResult.objects.filter(order_id=order_id).exclude(outcome="pass").values_list("rule", flat=True)
    )


# ---------------------------------------------------------------------------- create
def test_basket_is_201_with_every_order_in_line_order_routed_and_audited(api, ready, trader):
    lines = [line(0), line(1, symbol="MSFT", limit_price="415.20", quantity=50), line(2, side="SELL", quantity=30)]

    response = api.post(BASKETS, basket(*lines, name="rebalance"), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"id", "client_basket_id", "name", "created_at", "counts", "orders"}
    stored = Basket.objects.get()
    assert (body["id"], body["client_basket_id"], body["name"]) == (stored.pk, "B-1", "rebalance")
    assert body["created_at"].endswith("Z") and "." in body["created_at"]  # UTC, microseconds
    assert body["counts"] == {"total": 3, "routed": 3, "held": 0, "rejected": 0}
    assert [o["client_order_id"] for o in body["orders"]] == ["L-0", "L-1", "L-2"]
    assert [(o["symbol"], o["side"], o["quantity"]) for o in body["orders"]] == [
        ("AAPL", "BUY", 100),
        ("MSFT", "BUY", 50),
        ("AAPL", "SELL", 30),
    ]
    assert statuses(body) == ["pending_new"] * 3
    ids = [o["id"] for o in body["orders"]]
    assert ids == sorted(ids)
    # Each order as GET /api/v1/orders/{id}/ renders it, with its basket.
    for order in body["orders"]:
        assert order == api.get(f"{ORDERS}{order['id']}/").json()
        assert order["basket"] == stored.pk
        assert order["venue"] == "SIM" and order["executions"] == []
        assert order["compliance_results"] and all(r["outcome"] == "pass" for r in order["compliance_results"])
    # Routed: one NewOrderSingle and one request per order, with its ClOrdID.
    orders = list(Order.objects.order_by("id"))
    assert sorted(OutboundMessage.objects.values_list("order_id", "msg_type", "cl_ord_id", "state")) == [
        (o.pk, "D", o.cl_ord_id, "pending") for o in orders
    ]
    assert sorted(OrderRequest.objects.values_list("order_id", "kind", "cl_ord_id")) == [
        (o.pk, "new", o.cl_ord_id) for o in orders
    ]
    assert all(o.cl_ord_id == f"OMS{o.pk}-1" for o in orders)
    # The same audit events as a single submit, in the same order, plus the basket's.
    single, _ = order_submit(
        user=trader, client_order_id="S-1", account="ACC-1", symbol="AAPL", side="BUY", quantity=7,
        order_type="LIMIT", limit_price=Decimal("175.50"),
    )  # fmt: skip
    assert all(
        actions(o.pk) == actions(single.pk) == ["order.created", "compliance.evaluated", "order.routed"] for o in orders
    )
    created = AuditEvent.objects.get(object_type="order", object_id=str(orders[0].pk), action="order.created")
    assert created.details == {"origin": "api", "basket": stored.pk} and created.actor == "trader1"
    event = AuditEvent.objects.get(object_type="basket")
    assert (event.action, event.object_id, event.actor) == ("basket.created", str(stored.pk), "trader1")
    assert event.after == {"client_basket_id": "B-1", "name": "rebalance", "counts": body["counts"]}
    assert event.details == {"origin": "api", "orders": ids}


def test_same_client_basket_id_again_is_200_with_the_same_basket_and_nothing_new(api, ready):
    first = api.post(BASKETS, basket(line(0), line(1)), format="json")
    assert first.status_code == 201
    before = counts()

    # Different lines this time: the id decides, as for single orders.
    again = api.post(BASKETS, basket(line(5), line(6), line(7)), format="json")

    assert again.status_code == 200, again.json()
    assert again.json() == first.json()
    assert counts() == before


def test_another_user_may_use_the_same_client_basket_id(api, ready, other_trader, other_account):
    assert api.post(BASKETS, basket(line(0)), format="json").status_code == 201

    response = client_for(other_trader).post(BASKETS, basket(line(0, account="ACC-3")), format="json")

    assert response.status_code == 201
    assert Basket.objects.count() == 2


def test_a_warning_holds_that_line_and_a_block_rejects_that_line_only(api, ready, account, aapl):
    RuleSetting.objects.filter(scope="firm", rule="duplicate_order").update(enabled=True)
    rule_set("max_order_quantity", threshold=Decimal(1000))
    lines = [line(0), line(1), line(2, quantity=1001), line(3, quantity=200)]

    response = api.post(BASKETS, basket(*lines), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert statuses(body) == ["pending_new", "held", "rejected", "pending_new"]
    assert body["counts"] == {"total": 4, "routed": 2, "held": 1, "rejected": 1}
    ids = [o["id"] for o in body["orders"]]
    assert [failed_rules(i) for i in ids] == [[], ["duplicate_order"], ["max_order_quantity"], []]
    assert "Quantity 1,001 exceeds the maximum 1,000." in body["orders"][2]["reject_reason"]
    assert actions(ids[1]) == ["order.created", "compliance.evaluated", "order.held"]
    assert actions(ids[2]) == ["order.created", "compliance.evaluated", "order.compliance_rejected"]
    assert sorted(OutboundMessage.objects.values_list("order_id", flat=True)) == [ids[0], ids[3]]


def test_the_201_answer_is_what_the_basket_detail_reads_back(api, ready, account, aapl):
    # The answer renders the orders the request wrote, without reading them back: it
    # must be exactly what reading them gives, for routed, held and rejected lines.
    RuleSetting.objects.filter(scope="firm", rule="duplicate_order").update(enabled=True)
    rule_set("max_order_quantity", threshold=Decimal(1000))
    lines = [line(0), line(1), line(2, quantity=1001), line(3, symbol="MSFT", limit_price="415.2", quantity=7)]

    created = api.post(BASKETS, basket(*lines), format="json")

    assert created.status_code == 201, created.json()
    assert statuses(created.json()) == ["pending_new", "held", "rejected", "pending_new"]
    assert created.json() == api.get(f"{BASKETS}{created.json()['id']}/").json()


def test_the_verdicts_a_new_order_carries_are_its_own_whatever_is_chained_on_them(submit, trader, ready):
    # The answer's verdicts are kept on the order as prefetched; a query chained on
    # them must still be this order's, not every order's.
    first, second = submit(quantity=100), submit(quantity=200)
    entered = basket_submit(user=trader, client_basket_id="B-V", orders=[line(0), line(1)])[0].orders_entered

    for order in (first, second, *entered):
        assert list(order.compliance_verdicts.values_list("order_id", flat=True)) == [order.pk]
        assert order.compliance_verdicts.get().order_id == order.pk
        assert order.compliance_verdicts.filter(stage="submit").count() == 1


# ---------------------------------------------------------------------- limits
LIMITS = [
    # (rule, threshold, quantities): the third line crosses, the fourth fits again.
    ("position_limit", Decimal(5000), [2000, 2000, 2000, 1000]),
    ("daily_notional_limit", Decimal(877500), [2000, 2000, 2000, 1000]),  # 5,000 x 175.50
    ("gross_notional_limit", Decimal(877500), [2000, 2000, 2000, 1000]),
]


@pytest.mark.parametrize(("rule", "threshold", "quantities"), LIMITS)
def test_lines_that_together_cross_a_limit_block_the_crossing_line_only(
    api, ready, trader, rule, threshold, quantities
):
    rule_set(rule, threshold=threshold)
    lines = [line(i, quantity=q) for i, q in enumerate(quantities)]

    response = api.post(BASKETS, basket(*lines), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert statuses(body) == ["pending_new", "pending_new", "rejected", "pending_new"]
    assert [failed_rules(o["id"]) for o in body["orders"]] == [[], [], [rule], []]
    assert body["counts"] == {"total": 4, "routed": 3, "held": 0, "rejected": 1}


@pytest.mark.parametrize(("rule", "threshold", "quantities"), LIMITS)
def test_a_basket_decides_exactly_as_one_by_one_submission(
    trader, account, aapl, msft, venue, rule, threshold, quantities
):
    """The same lines in two accounts with the same limit: as a basket in one, one
    order at a time in the other; the outcome of every line is the same."""
    rule_set(rule, threshold=threshold)
    twin = AccountFactory(code="ACC-2")
    twin.traders.add(trader)
    terms = [
        {"symbol": symbol, "side": side, "quantity": quantity, "order_type": "LIMIT", "limit_price": price}
        for symbol, side, price in (("AAPL", "BUY", "175.50"), ("MSFT", "SELL", "415.20"))
        for quantity in quantities
    ]

    made, created = basket_submit(
        user=trader,
        client_basket_id="B-1",
        orders=[{"client_order_id": f"L-{i}", "account": "ACC-1", **t} for i, t in enumerate(terms)],
    )
    one_by_one = [
        order_submit(user=trader, client_order_id=f"S-{i}", account="ACC-2", **t)[0] for i, t in enumerate(terms)
    ]

    assert created
    in_basket = list(made.orders.order_by("id"))
    assert [(o.status, failed_rules(o.pk), o.reject_reason) for o in in_basket] == [
        (o.status, failed_rules(o.pk), o.reject_reason) for o in one_by_one
    ]
    assert "rejected" in {o.status for o in in_basket} and "pending_new" in {o.status for o in in_basket}


# ----------------------------------------------------------------- invalid input
def test_one_bad_line_is_400_naming_the_line_and_field_and_nothing_is_created(api, ready, other_account):
    before = counts()
    lines = [line(0), line(1, symbol="NOPE"), line(2), line(3, account="ACC-3"), line(4, quantity=10**13)]

    response = api.post(BASKETS, basket(*lines), format="json")

    body = assert_error(response, 400, "invalid")
    assert body["details"] == {
        "orders": {
            "1": {"symbol": ["Unknown symbol."]},
            "3": {"account": ["Unknown account, or you are not entitled to trade it."]},
            "4": {"quantity": ["Must be at most 1000000000000."]},
        }
    }
    assert counts() == before


def test_a_line_gets_exactly_the_errors_the_same_single_order_gets(api, ready):
    bad_lines = [
        line(0, symbol="NOPE", limit_price=None),  # unknown symbol; LIMIT without a price
        line(1, order_type="MARKET"),  # a price on a market order
        line(2, time_in_force="GTD"),  # no expiry
        line(3, venue="XNYS"),  # unknown venue
        line(4, side="SELL", short_exempt_reason="bona fide market making"),
    ]
    before = counts()

    response = api.post(BASKETS, basket(*bad_lines), format="json")

    body = assert_error(response, 400, "invalid")
    for index, bad in enumerate(bad_lines):
        single = api.post(ORDERS, bad, format="json")
        assert single.status_code == 400
        assert body["details"]["orders"][str(index)] == single.json()["details"], index
    assert counts() == before


def test_type_errors_of_a_line_are_named_by_its_index(api, ready):
    before = counts()

    response = api.post(BASKETS, basket(line(0), line(1, quantity="many"), "not an order"), format="json")

    body = assert_error(response, 400, "invalid")
    assert body["details"] == {
        "orders": {
            "1": {"quantity": ["A valid integer is required."]},
            "2": {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]},
        }
    }
    assert counts() == before


BASKET_ERRORS = [
    ({"orders": [line(0)]}, {"client_basket_id": ["This field is required."]}),
    (
        basket(line(0), client_basket_id="x" * 65),
        {"client_basket_id": ["Ensure this field has no more than 64 characters."]},
    ),
    (basket(line(0), client_basket_id="a\tb"), {"client_basket_id": ["At most 64 printable characters."]}),
    (basket(line(0), name="n" * 201), {"name": ["Ensure this field has no more than 200 characters."]}),
    ({"client_basket_id": "B-1"}, {"orders": ["This field is required."]}),
    (basket(), {"orders": ["Ensure this field has at least 1 elements."]}),
    (
        {"client_basket_id": "B-1", "orders": {"0": line(0)}},
        {"orders": ['Expected a list of items but got type "dict".']},
    ),
    (
        basket(*[line(i) for i in range(BASKET_MAX_LINES + 1)]),
        {"orders": [f"Ensure this field has no more than {BASKET_MAX_LINES} elements."]},
    ),
    (
        basket(line(0), line(1, client_order_id="L-0"), line(2), line(3, client_order_id="L-0", symbol="MSFT")),
        {
            "orders": {
                "1": {"client_order_id": ["Also on line 0: unique within the basket."]},
                "3": {"client_order_id": ["Also on line 0: unique within the basket."]},
            }
        },
    ),
]


@pytest.mark.parametrize(("body", "details"), BASKET_ERRORS)
def test_basket_level_errors_are_400_and_create_nothing(api, ready, body, details):
    before = counts()

    response = api.post(BASKETS, body, format="json")

    assert assert_error(response, 400, "invalid")["details"] == details
    assert counts() == before


def test_a_client_order_id_already_used_in_the_account_is_400(api, ready, trader):
    existing, _ = order_submit(
        user=trader, client_order_id="L-1", account="ACC-1", symbol="AAPL", side="BUY", quantity=5,
        order_type="LIMIT", limit_price=Decimal("175.50"),
    )  # fmt: skip
    before = counts()

    response = api.post(BASKETS, basket(line(0), line(1)), format="json")

    body = assert_error(response, 400, "invalid")
    assert body["details"] == {
        "orders": {
            "1": {
                "client_order_id": [
                    f"Already used by order #{existing.pk} of account ACC-1: a client order id identifies one "
                    "order of an account."
                ]
            }
        }
    }
    assert counts() == before


@pytest.mark.parametrize(
    ("orders", "details"),
    [
        ([{**line(0), "colour": "red"}], {"0": {"colour": ["Unknown field."]}}),
        ([line(0), 7], {"1": {"non_field_errors": ["An order line must be an object."]}}),
        ([{"client_order_id": "L-0", "account": "ACC-1", "symbol": "AAPL"}], None),
    ],
)
def test_the_service_checks_lines_it_is_given_directly(trader, ready, orders, details):
    before = counts()
    with pytest.raises(InvalidInput) as refused:
        basket_submit(user=trader, client_basket_id="B-1", orders=orders)
    if details is not None:
        assert refused.value.details == {"orders": details}
    else:
        assert set(refused.value.details["orders"]["0"]) == {"side", "quantity", "order_type"}
    assert counts() == before


# ------------------------------------------------------------------- message rate
def test_a_basket_is_one_message_for_the_rate_limits(api, ready, trader):
    RuleSetting.objects.filter(scope="firm", rule__in=["order_rate_trader", "order_rate_account"]).update(enabled=True)
    rule_set("order_rate_trader", threshold=Decimal(2), window_seconds=60)
    rule_set("order_rate_account", threshold=Decimal(2), window_seconds=60)

    first = api.post(BASKETS, basket(*[line(i, quantity=100 + i) for i in range(30)]), format="json")
    single, _ = order_submit(
        user=trader, client_order_id="S-1", account="ACC-1", symbol="AAPL", side="BUY", quantity=7,
        order_type="LIMIT", limit_price=Decimal("175.50"),
    )  # fmt: skip
    third = api.post(
        BASKETS, basket(*[line(i, quantity=100 + i) for i in range(30, 33)], client_basket_id="B-2"), format="json"
    )

    # Messages 1 (30 lines) and 2 (one order) pass; message 3 (the second basket) is over.
    assert first.json()["counts"] == {"total": 30, "routed": 30, "held": 0, "rejected": 0}
    assert single.status == "pending_new"
    assert third.json()["counts"] == {"total": 3, "routed": 0, "held": 0, "rejected": 3}
    assert {tuple(failed_rules(o["id"])) for o in third.json()["orders"]} == {
        ("order_rate_account", "order_rate_trader")
    }
    assert third.json()["orders"][0]["reject_reason"].startswith("Message rate for account ACC-1: 3 in 60 s exceeds 2.")


# ----------------------------------------------------------------- reading them
def test_list_and_detail_show_the_users_baskets(api, ready, trader):
    ids = [api.post(BASKETS, basket(line(i), client_basket_id=f"B-{i}"), format="json").json()["id"] for i in range(3)]

    listed = api.get(BASKETS).json()
    detail = api.get(f"{BASKETS}{ids[1]}/")

    assert listed["count"] == 3
    assert [b["id"] for b in listed["results"]] == ids[::-1]  # newest first
    assert set(listed["results"][0]) == {"id", "client_basket_id", "name", "created_at", "counts"}
    assert detail.status_code == 200
    assert detail.json()["orders"][0]["client_order_id"] == "L-1"
    assert detail.json()["counts"] == {"total": 1, "routed": 1, "held": 0, "rejected": 0}


def test_another_trader_gets_404_and_middle_office_sees_every_basket(api, ready, other_trader, middle_office):
    made = api.post(BASKETS, basket(line(0), line(1)), format="json").json()
    before = counts()
    stranger = client_for(other_trader)
    officer = client_for(middle_office)

    assert stranger.get(BASKETS).json()["count"] == 0
    assert_error(stranger.get(f"{BASKETS}{made['id']}/"), 404, "not_found")
    assert_error(stranger.post(f"{BASKETS}{made['id']}/cancel/"), 404, "not_found")
    assert_error(stranger.get(f"{BASKETS}999999/"), 404, "not_found")
    assert officer.get(BASKETS).json()["count"] == 1
    assert officer.get(f"{BASKETS}{made['id']}/").json() == made
    assert_error(officer.post(f"{BASKETS}{made['id']}/cancel/"), 403, "permission_denied")
    assert counts() == before


def test_orders_filter_by_basket_and_carry_it(api, ready, trader):
    one = api.post(BASKETS, basket(line(0), line(1)), format="json").json()
    two = api.post(BASKETS, basket(line(2), client_basket_id="B-2"), format="json").json()
    single, _ = order_submit(
        user=trader, client_order_id="S-1", account="ACC-1", symbol="AAPL", side="BUY", quantity=7,
        order_type="LIMIT", limit_price=Decimal("175.50"),
    )  # fmt: skip

    listed = api.get(ORDERS, {"basket": one["id"]}).json()

    assert sorted(o["id"] for o in listed["results"]) == [o["id"] for o in one["orders"]]
    assert {o["basket"] for o in listed["results"]} == {one["id"]}
    assert [o["id"] for o in api.get(ORDERS, {"basket": two["id"]}).json()["results"]] == [two["orders"][0]["id"]]
    assert api.get(f"{ORDERS}{single.pk}/").json()["basket"] is None
    assert api.get(ORDERS).json()["count"] == 4
    assert_error(api.get(ORDERS, {"basket": "x"}), 400, "invalid")


# ------------------------------------------------------------------------- cancel
def test_cancel_cancels_every_working_order_of_the_basket(api, ready, trader):
    rule_set("max_order_quantity", threshold=Decimal(1000))
    made = api.post(BASKETS, basket(line(0), line(1, quantity=5000), line(2), line(3)), format="json").json()
    working, rejected, sent, _ = (o["id"] for o in made["orders"])
    last = made["orders"][3]["id"]
    # One NewOrderSingle has left: that order needs a cancel request; the others never left.
    OutboundMessage.objects.filter(order_id=sent).update(state="sent", msg_seq_num=1)

    response = api.post(f"{BASKETS}{made['id']}/cancel/")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert set(body) == {"basket", "cancelled", "refused"}
    assert body["cancelled"] == [working, sent, last]
    assert body["refused"] == []
    assert statuses(body["basket"]) == ["cancelled", "rejected", "pending_cancel", "cancelled"]
    assert OrderRequest.objects.filter(order_id=sent, kind="cancel").count() == 1
    assert OutboundMessage.objects.filter(order_id=sent, msg_type="F").count() == 1
    assert set(OutboundMessage.objects.filter(order_id__in=[working, last]).values_list("state", flat=True)) == {"void"}
    assert actions(working)[-1] == "order.cancelled" and actions(sent)[-1] == "order.cancel_requested"
    event = AuditEvent.objects.filter(object_type="basket", action="basket.cancel_requested").get()
    assert (event.object_id, event.actor) == (str(made["id"]), "trader1")
    assert event.details == {"cancelled": [working, sent, last], "refused": []}

    # Nothing working is left to cancel: still 202, nothing cancelled, nothing changed
    # but the request's own audit event.
    before = counts()
    again = api.post(f"{BASKETS}{made['id']}/cancel/")
    assert again.status_code == 202
    assert again.json()["cancelled"] == []
    assert counts() == {**before, "AuditEvent": before["AuditEvent"] + 1}


# --------------------------------------------------------------------- statements
def _statements(trader, client_basket_id: str, lines: int, start: int) -> int:
    trader = type(trader).objects.get(pk=trader.pk)  # as each request has: nothing read of it yet
    with CaptureQueriesContext(connection) as captured:
        basket_submit(
            user=trader,
            client_basket_id=client_basket_id,
            orders=[line(start + i, quantity=100 + i) for i in range(lines)],
        )
    return len(captured.captured_queries)


def test_statements_per_line_stay_bounded(trader, ready):
    """What a basket line costs beyond a fixed part: the order insert, its created
    event, and compliance (its reads, one results insert, one evaluation event). The
    routing rows, status changes and outcome events are bulk statements."""
    _statements(trader, "B-0", 1, 1000)  # the process's copy of the reference data loaded
    small = _statements(trader, "B-1", 10, 0)
    large = _statements(trader, "B-2", 30, 100)

    per_line = (large - small) / 20
    assert per_line <= 13, (small, large)
    # 20, one (once per user) for whether the submitter is a portfolio manager, and
    # one (once per basket) for the working block orders whose funds' shares count;
    # less the reference data read once per process and version (one statement).
    assert small - 10 * per_line <= 22, (small, large)


def test_basket_check_answers_each_line_as_the_submission_would_and_writes_nothing(trader, ready):
    rule_set("max_order_quantity", threshold=Decimal(500))
    order_submit(user=trader, **line(9))  # L-9 is taken by an order of ACC-1
    events = AuditEvent.objects.count()
    answers = basket_check(
        user=trader,
        orders=[line(1), line(2, quantity=900), line(1), line(3, symbol="NOPE"), line(9)],
    )
    assert answers[0].outcome == "pass"
    assert answers[1].outcome == "block" and any(r.code == "max_order_quantity" for r in answers[1].results)
    assert "client_order_id" in answers[2] and "symbol" in answers[3]
    assert (Order.objects.count(), AuditEvent.objects.count()) == (1, events)
    # A line already used is found once the rest of the basket is valid.
    (taken,) = basket_check(user=trader, orders=[line(9)])
    assert "Already used by order" in taken["client_order_id"][0]
