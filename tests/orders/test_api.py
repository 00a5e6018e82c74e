"""The REST API (DESIGN.md §8): every endpoint, every error path, entitlements, auth,
the OpenAPI schema, and the origin document's acceptance flow over HTTP with a token.

Every negative path asserts that nothing changed: no order, no request, no outbox row,
no audit event (or, for a refused state change, only the refusal's own audit event)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEvent
from compliance import engine as compliance_engine
from compliance.engine import RuleVerdict
from compliance.models import ComplianceResult, Outcome
from orders.models import Execution, Order, OrderRequest, Position
from orders.services import order_submit
from routing.models import OutboundMessage, Venue
from tests.conftest import apply
from tests.factories import AccountFactory, SecurityFactory
from tests.helpers import assert_error, assert_field_errors, client_for

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"

ORDER_FIELDS = {
    "id",
    "client_order_id",
    "account",
    "symbol",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "stop_price",
    "time_in_force",
    "expire_at",
    "venue",
    "status",
    "filled_quantity",
    "leaves_quantity",
    "avg_fill_price",
    "reject_reason",
    "short_exempt_reason",
    "compliance_results",
    "basket",
    "desk_order",
    "owner",
    "parent",
    "children",
    "placed_quantity",
    "block_order",
    "allocations",
    "created_at",
    "updated_at",
}
# DESIGN.md §8 lists these; the API may add more (expire_at, short_exempt_reason) but
# never drop one.
DESIGN_ORDER_FIELDS = ORDER_FIELDS - {
    "expire_at",
    "short_exempt_reason",
    "desk_order",
    "owner",
    "parent",
    "children",
    "placed_quantity",
    "block_order",
    "allocations",
}
# The detail adds the executions and a block's quantity not yet allocated.
DETAIL_FIELDS = ORDER_FIELDS | {"executions", "unallocated_quantity"}
EXECUTION_FIELDS = {
    "id",
    "order_id",
    "venue",
    "exec_id",
    "exec_type",
    "symbol",
    "last_qty",
    "last_px",
    "exec_ref_id",
    "in_effect",
    "outcome",
    "transact_time",
    "received_at",
}
POSITION_FIELDS = {
    "account",
    "symbol",
    "quantity",
    "bought_quantity",
    "bought_notional",
    "avg_buy_price",
    "sold_quantity",
    "sold_notional",
    "avg_sell_price",
    "average_cost",
    "cost_basis",
    "realized_pnl",
    "unrealized_pnl",
    "updated_at",
}
AUDIT_FIELDS = {"id", "occurred_at", "actor", "action", "object_type", "object_id", "before", "after", "details"}

_MISSING = object()


# ----------------------------------------------------------------------------- helpers
def payload(**overrides) -> dict:
    """A valid order request (BUY 1000 AAPL LIMIT 175.50 DAY on ACC-1); an override of
    ``_MISSING`` leaves the field out."""
    body = {
        "client_order_id": "C-1",
        "account": "ACC-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 1000,
        "order_type": "LIMIT",
        "limit_price": "175.50",
        "time_in_force": "DAY",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not _MISSING}


def row_counts() -> dict[str, int]:
    models = (Order, OrderRequest, OutboundMessage, AuditEvent, ComplianceResult, Execution, Position)
    return {model.__name__: model.objects.count() for model in models}


def footprint(order_id: int) -> dict:
    """Everything an action on the order could change."""
    return {
        "order": Order.objects.filter(pk=order_id).values().get(),
        "requests": list(OrderRequest.objects.filter(order_id=order_id).values()),
        "outbox": list(OutboundMessage.objects.filter(order_id=order_id).values()),
        "audit": list(audit_actions(order_id)),
    }


def audit_actions(order_id: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="order", object_id=str(order_id))
        .order_by("id")
        .values_list("action", flat=True)
    )


def tags(message: OutboundMessage) -> dict[int, str]:
    return {int(tag): value for tag, value in message.fields}


def mark_sent(order: Order) -> None:
    """What the venue's FIX session does after writing the message to the socket."""
    OutboundMessage.objects.filter(order_id=order.pk, state=OutboundMessage.State.PENDING).update(
        state=OutboundMessage.State.SENT, sent_at=dt.datetime.now(dt.UTC), msg_seq_num=1
    )


def acknowledge(order: Order) -> Order:
    mark_sent(order)
    apply(order, ExecType="0", OrdStatus="0", OrderQty=order.quantity, CumQty=0, LeavesQty=order.quantity)
    assert order.status == "open"
    return order


def fill(order: Order, qty: int, price: str = "175.50") -> Order:
    cum = order.filled_quantity + qty
    apply(
        order,
        ExecType="F",
        OrdStatus="2" if cum == order.quantity else "1",
        OrderQty=order.quantity,
        CumQty=cum,
        LeavesQty=order.quantity - cum,
        LastQty=qty,
        LastPx=price,
    )
    return order


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def other_api(other_trader, other_account) -> APIClient:
    return client_for(other_trader)


@pytest.fixture
def mo_api(middle_office) -> APIClient:
    return client_for(middle_office)


@pytest.fixture
def ready(account, aapl, venue):
    """Reference data for a valid submission by the trader."""


@pytest.fixture
def compliance_rule():
    """Register a compliance rule for one test: ``compliance_rule(outcome, stage=...)``."""
    registered = []

    def _register(
        outcome: str,
        *,
        stage: str = "submit",
        code: str = "test_rule",
        reason: str = "Test rule says so.",
        internal: bool = False,
    ):
        def rule(check):
            if check.stage != active_stage:
                return RuleVerdict(Outcome.PASS, code)
            return RuleVerdict(outcome, code, reason, internal=internal)

        active_stage = stage
        registered.append((code, compliance_engine.registered_rules().get(code)))
        compliance_engine.rule_register(code, rule)

    yield _register
    for code, previous in reversed(registered):
        # Put back a real rule the test rule stood in for.
        if previous is None:
            compliance_engine.rule_unregister(code)
        else:
            compliance_engine.rule_register(code, previous)


# ---------------------------------------------------------------------------- create
def test_create_returns_201_with_every_order_field(api, ready, trader):
    before = dt.datetime.now(dt.UTC)
    response = api.post(ORDERS, payload(client_order_id="C-201"), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == DETAIL_FIELDS
    assert DESIGN_ORDER_FIELDS <= set(body)
    order = Order.objects.get()
    assert {key: value for key, value in body.items() if key not in ("created_at", "updated_at")} == {
        "id": order.pk,
        "client_order_id": "C-201",
        "account": "ACC-1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 1000,
        "order_type": "LIMIT",
        "limit_price": "175.50000000",
        "stop_price": None,
        "time_in_force": "DAY",
        "expire_at": None,
        "venue": "SIM",
        "status": "pending_new",
        "filled_quantity": 0,
        "leaves_quantity": 1000,
        "avg_fill_price": None,
        "reject_reason": "",
        "short_exempt_reason": "",
        "compliance_results": body["compliance_results"],
        "basket": None,
        "desk_order": False,
        "owner": None,
        "parent": None,
        "children": [],
        "placed_quantity": 0,
        "block_order": False,
        "allocations": [],
        "unallocated_quantity": 0,
        "executions": [],
    }
    # One result per rule, every one a pass, with the stage and a code.
    results = body["compliance_results"]
    assert {r["rule"] for r in results} == set(compliance_engine.registered_rules()) - {"watch_list"}
    assert {(r["stage"], r["outcome"]) for r in results} == {("submit", "pass")}
    assert all(set(r) == {"rule", "stage", "outcome", "code", "reason", "evaluated_at"} for r in results)
    created_at = dt.datetime.fromisoformat(body["created_at"])
    assert created_at.utcoffset() == dt.timedelta(0)
    assert before <= created_at <= dt.datetime.now(dt.UTC)
    assert dt.datetime.fromisoformat(body["updated_at"]) >= created_at
    assert order.created_by == trader
    assert order.origin == "api"

    nos = OutboundMessage.objects.get()
    assert (nos.order_id, nos.msg_type, nos.state, nos.venue.code) == (order.pk, "D", "pending", "SIM")
    assert nos.cl_ord_id == order.cl_ord_id != ""
    sent = tags(nos)
    assert {k: sent[k] for k in (11, 1, 55, 54, 38, 40, 44, 59, 15)} == {
        11: order.cl_ord_id,
        1: "ACC-1",
        55: "AAPL",
        54: "1",
        38: "1000",
        40: "2",
        44: "175.5",
        59: "0",
        15: "USD",
    }
    assert 99 not in sent and 126 not in sent
    assert audit_actions(order.pk) == ["order.created", "compliance.evaluated", "order.routed"]
    assert AuditEvent.objects.filter(object_type="order", object_id=str(order.pk), actor="trader1").count() == 3


@pytest.mark.parametrize(
    ("overrides", "expected", "fix"),
    [
        (
            {"order_type": "MARKET", "limit_price": _MISSING, "side": "SELL"},
            {"order_type": "MARKET", "limit_price": None, "stop_price": None, "side": "SELL"},
            {40: "1", 54: "2"},
        ),
        (
            {"order_type": "STOP", "limit_price": _MISSING, "stop_price": "170.25", "side": "SELL_SHORT"},
            {"order_type": "STOP", "limit_price": None, "stop_price": "170.25000000", "side": "SELL_SHORT"},
            {40: "3", 99: "170.25", 54: "5"},
        ),
        (
            {"order_type": "STOP_LIMIT", "limit_price": "170.00", "stop_price": "170.25", "time_in_force": "GTC"},
            {"order_type": "STOP_LIMIT", "limit_price": "170.00000000", "stop_price": "170.25000000"},
            {40: "4", 44: "170", 99: "170.25", 59: "1"},
        ),
        ({"time_in_force": "IOC"}, {"time_in_force": "IOC"}, {59: "3"}),
        (
            {"time_in_force": "FOK", "limit_price": "0.00000001"},
            {"limit_price": "0.00000001"},
            {59: "4", 44: "0.00000001"},
        ),
        ({"symbol": "aapl", "time_in_force": _MISSING}, {"symbol": "AAPL", "time_in_force": "DAY"}, {55: "AAPL"}),
    ],
)
def test_create_each_order_type_side_and_time_in_force(api, ready, overrides, expected, fix):
    response = api.post(ORDERS, payload(**overrides), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert {key: body[key] for key in expected} == expected
    assert body["status"] == "pending_new"
    sent = tags(OutboundMessage.objects.get(order_id=body["id"], msg_type="D"))
    assert {k: sent.get(k) for k in fix} == fix
    if body["limit_price"] is None:
        assert 44 not in sent
    if body["stop_price"] is None:
        assert 99 not in sent


def test_create_gtd_carries_expire_time(api, ready):
    expire_at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    response = api.post(ORDERS, payload(time_in_force="GTD", expire_at=expire_at.isoformat()), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["time_in_force"] == "GTD"
    assert dt.datetime.fromisoformat(body["expire_at"]) == expire_at
    sent = tags(OutboundMessage.objects.get(order_id=body["id"]))
    assert sent[59] == "6"
    assert sent[126] == expire_at.strftime("%Y%m%d-%H:%M:%S.000")


def test_create_with_explicit_venue_overrides_the_router(api, ready):
    Venue.objects.create(code="ALT", name="Alternative", priority=500)

    response = api.post(ORDERS, payload(venue="ALT"), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["venue"] == "ALT"
    assert OutboundMessage.objects.get().venue.code == "ALT"


def test_create_without_venue_takes_the_router_choice(api, ready):
    Venue.objects.create(code="ALT", name="Alternative", priority=500)

    response = api.post(ORDERS, payload(venue=""), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["venue"] == "SIM"  # priority 100 beats 500


def test_same_client_order_id_same_account_returns_existing_order(api, ready):
    first = api.post(ORDERS, payload(client_order_id="DUP-1"), format="json")
    assert first.status_code == 201
    counts = row_counts()
    events = audit_actions(first.json()["id"])

    again = api.post(ORDERS, payload(client_order_id="DUP-1"), format="json")

    assert again.status_code == 200, again.json()
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "pending_new"
    assert row_counts() == counts
    assert Order.objects.count() == 1
    assert OutboundMessage.objects.count() == 1
    assert audit_actions(first.json()["id"]) == events


def test_same_client_order_id_with_other_terms_still_returns_the_original(api, ready):
    first = api.post(ORDERS, payload(client_order_id="DUP-2"), format="json").json()
    counts = row_counts()

    again = api.post(ORDERS, payload(client_order_id="DUP-2", quantity=5, side="SELL"), format="json")

    assert again.status_code == 200
    assert (again.json()["id"], again.json()["quantity"], again.json()["side"]) == (first["id"], 1000, "BUY")
    assert row_counts() == counts


def test_same_client_order_id_on_another_account_is_a_new_order(api, ready, trader):
    AccountFactory(code="ACC-2").traders.add(trader)

    first = api.post(ORDERS, payload(client_order_id="SHARED"), format="json")
    second = api.post(ORDERS, payload(client_order_id="SHARED", account="ACC-2"), format="json")

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert second.json()["account"] == "ACC-2"
    assert OutboundMessage.objects.filter(msg_type="D").count() == 2


def _past() -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()


def _future() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        pytest.param({"quantity": 0}, ["quantity"], id="zero-quantity"),
        pytest.param({"quantity": -100}, ["quantity"], id="negative-quantity"),
        pytest.param({"quantity": 10.5}, ["quantity"], id="fractional-quantity"),
        pytest.param({"quantity": "ten"}, ["quantity"], id="text-quantity"),
        pytest.param({"quantity": None}, ["quantity"], id="null-quantity"),
        pytest.param({"quantity": _MISSING}, ["quantity"], id="missing-quantity"),
        pytest.param({"quantity": 10**13}, ["quantity"], id="absurd-quantity"),
        pytest.param({"symbol": "NOPE"}, ["symbol"], id="unknown-symbol"),
        pytest.param({"symbol": ""}, ["symbol"], id="blank-symbol"),
        pytest.param({"limit_price": _MISSING}, ["limit_price"], id="limit-without-price"),
        pytest.param({"limit_price": None}, ["limit_price"], id="limit-with-null-price"),
        pytest.param({"order_type": "MARKET"}, ["limit_price"], id="market-with-limit-price"),
        pytest.param({"order_type": "STOP", "limit_price": _MISSING}, ["stop_price"], id="stop-without-stop-price"),
        pytest.param(
            {"order_type": "STOP_LIMIT", "limit_price": "170"}, ["stop_price"], id="stop-limit-without-stop-price"
        ),
        pytest.param({"stop_price": "170"}, ["stop_price"], id="limit-with-stop-price"),
        pytest.param({"limit_price": "-1.00"}, ["limit_price"], id="negative-price"),
        pytest.param({"limit_price": "0"}, ["limit_price"], id="zero-price"),
        pytest.param({"limit_price": "175.123456789"}, ["limit_price"], id="too-many-decimals"),
        pytest.param({"limit_price": "12345678901.5"}, ["limit_price"], id="too-many-digits"),
        pytest.param({"limit_price": "abc"}, ["limit_price"], id="text-price"),
        pytest.param({"limit_price": "NaN"}, ["limit_price"], id="nan-price"),
        pytest.param({"side": "BUY_BACK"}, ["side"], id="bad-side"),
        pytest.param({"side": "buy"}, ["side"], id="lowercase-side"),
        pytest.param({"order_type": "ICEBERG"}, ["order_type"], id="bad-order-type"),
        pytest.param({"time_in_force": "GTX"}, ["time_in_force"], id="bad-time-in-force"),
        pytest.param({"time_in_force": "GTD"}, ["expire_at"], id="gtd-without-expire-at"),
        pytest.param({"time_in_force": "GTD", "expire_at": _past()}, ["expire_at"], id="expire-at-in-past"),
        pytest.param({"time_in_force": "GTD", "expire_at": "tomorrow"}, ["expire_at"], id="expire-at-not-a-date"),
        pytest.param({"expire_at": _future()}, ["expire_at"], id="expire-at-without-gtd"),
        pytest.param({"venue": "NOWHERE"}, ["venue"], id="unknown-venue"),
        pytest.param({"account": "ACC-3"}, ["account"], id="account-not-entitled"),
        pytest.param({"account": "ACC-404"}, ["account"], id="unknown-account"),
        pytest.param({"account": _MISSING}, ["account"], id="missing-account"),
        pytest.param({"client_order_id": _MISSING}, ["client_order_id"], id="missing-client-order-id"),
        pytest.param({"client_order_id": "   "}, ["client_order_id"], id="blank-client-order-id"),
        pytest.param({"client_order_id": "X" * 65}, ["client_order_id"], id="too-long-client-order-id"),
        # Shape errors (serializer) are reported before domain errors (service): the
        # unknown symbol is only reported once side and quantity are well-formed.
        pytest.param(
            {"symbol": "NOPE", "side": "SIDEWAYS", "quantity": 0},
            ["side", "quantity"],
            id="several-shape-errors-at-once",
        ),
        pytest.param(
            {"symbol": "NOPE", "venue": "NOWHERE", "order_type": "MARKET"},
            ["symbol", "venue", "limit_price"],
            id="several-domain-errors-at-once",
        ),
    ],
)
def test_create_invalid_input_is_400_and_creates_nothing(api, ready, other_account, overrides, fields):
    counts = row_counts()

    response = api.post(ORDERS, payload(**overrides), format="json")

    assert_field_errors(response, *fields)
    assert row_counts() == counts
    assert not Order.objects.exists()
    assert not OutboundMessage.objects.exists()
    assert not AuditEvent.objects.filter(object_type="order").exists()


def test_create_quantity_must_be_a_multiple_of_the_lot_size(api, ready):
    SecurityFactory(symbol="LOT", lot_size=100)
    counts = row_counts()

    response = api.post(ORDERS, payload(symbol="LOT", quantity=150), format="json")

    body = assert_field_errors(response, "quantity")
    assert "lot size (100)" in body["details"]["quantity"][0]
    assert row_counts() == counts


def test_create_inactive_security_is_unknown(api, ready):
    SecurityFactory(symbol="GONE", active=False)
    counts = row_counts()

    assert_field_errors(api.post(ORDERS, payload(symbol="GONE"), format="json"), "symbol")
    assert row_counts() == counts


def test_create_disabled_venue_is_refused(api, ready):
    Venue.objects.create(code="OFF", enabled=False)
    counts = row_counts()

    assert_field_errors(api.post(ORDERS, payload(venue="OFF"), format="json"), "venue")
    assert row_counts() == counts


def test_create_malformed_json_is_400_parse_error(api, ready):
    counts = row_counts()

    response = api.post(ORDERS, data='{"client_order_id": "C-1", "quantity": ', content_type="application/json")

    body = assert_error(response, 400, "parse_error")
    assert "JSON" in body["message"]
    assert body["details"] == {}
    assert row_counts() == counts


def test_create_json_array_body_is_400(api, ready):
    counts = row_counts()

    response = api.post(ORDERS, [payload()], format="json")

    body = assert_error(response, 400, "invalid")
    assert set(body["details"]) == {"non_field_errors"}
    assert row_counts() == counts


def test_create_form_encoded_body_is_415(api, ready):
    counts = row_counts()

    response = api.post(ORDERS, payload(), format="multipart")

    assert_error(response, 415, "unsupported_media_type")
    assert row_counts() == counts


def test_create_with_no_venue_at_all_is_rejected_no_route(api, account, aapl):
    assert not Venue.objects.exists()

    response = api.post(ORDERS, payload(client_order_id="NR-1"), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["reject_reason"], body["venue"]) == ("rejected", "no route", None)
    assert (body["filled_quantity"], body["leaves_quantity"]) == (0, 0)
    assert not OutboundMessage.objects.exists()
    assert audit_actions(body["id"]) == ["order.created", "compliance.evaluated", "order.rejected"]


def test_create_compliance_block_is_a_rejected_order_with_rule_results(api, ready, compliance_rule):
    compliance_rule(Outcome.BLOCK, code="restricted", reason="AAPL is on the restricted list.")

    response = api.post(ORDERS, payload(), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["reject_reason"], body["venue"]) == (
        "rejected",
        "AAPL is on the restricted list.",
        None,
    )
    assert [
        (r["rule"], r["stage"], r["outcome"], r["code"], r["reason"])
        for r in body["compliance_results"]
        if r["outcome"] != "pass"
    ] == [("restricted", "submit", "block", "restricted", "AAPL is on the restricted list.")]
    # Every rule's verdict is kept, passes included.
    assert {r["rule"] for r in body["compliance_results"]} >= {"restricted", "max_order_quantity", "kill_switch"}
    assert not OutboundMessage.objects.exists()
    assert audit_actions(body["id"]) == ["order.created", "compliance.evaluated", "order.compliance_rejected"]


def test_create_compliance_warning_holds_the_order(api, ready, compliance_rule):
    compliance_rule(Outcome.WARN, code="fat_finger", reason="Notional above the desk's soft limit.")

    response = api.post(ORDERS, payload(), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["leaves_quantity"]) == ("held", 0)
    assert [(r["outcome"], r["code"]) for r in body["compliance_results"] if r["outcome"] != "pass"] == [
        ("warn", "fat_finger")
    ]
    assert not OutboundMessage.objects.exists()
    assert audit_actions(body["id"]) == ["order.created", "compliance.evaluated", "order.held"]


def test_create_internal_compliance_results_stay_internal(api, ready, compliance_rule):
    # Watch-list hits are for compliance only: never shown to the trader, never a block.
    compliance_rule(Outcome.BLOCK, code="watch_list", reason="AAPL on the watch list.", internal=True)
    compliance_rule(Outcome.PASS, code="visible_rule", reason="")

    response = api.post(ORDERS, payload(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending_new"
    assert "visible_rule" in [r["code"] for r in body["compliance_results"]]
    assert "watch_list" not in [r["rule"] for r in body["compliance_results"]]
    assert "watch list" not in response.content.decode()
    assert ComplianceResult.objects.filter(order_id=body["id"], internal=True).count() == 1


@pytest.mark.parametrize(
    "venue_attrs",
    [
        pytest.param({"enabled": False}, id="only-venue-disabled"),
        pytest.param({"symbols": ["MSFT"]}, id="venue-takes-other-symbols"),
        pytest.param({"asset_classes": ["FX"]}, id="venue-takes-other-asset-class"),
        pytest.param({"currencies": ["EUR"]}, id="venue-takes-other-currency"),
    ],
)
def test_create_with_no_venue_that_takes_the_order_is_rejected_no_route(api, account, aapl, venue_attrs):
    Venue.objects.create(code="ONLY", **venue_attrs)

    response = api.post(ORDERS, payload(), format="json")

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["reject_reason"]) == ("rejected", "no route")
    assert not OutboundMessage.objects.exists()


def test_create_ignores_read_only_fields(api, ready):
    response = api.post(
        ORDERS,
        payload(
            id=999999, status="filled", filled_quantity=1000, avg_fill_price="1", reject_reason="x", origin="venue"
        ),
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["id"] != 999999
    assert (body["status"], body["filled_quantity"], body["avg_fill_price"], body["reject_reason"]) == (
        "pending_new",
        0,
        None,
        "",
    )
    assert Order.objects.get().origin == "api"


def test_api_client_persona_with_an_entitled_account(ready, api_user, account):
    account.traders.add(api_user)
    client = token_client(api_user)

    response = client.post(ORDERS, payload(client_order_id="PM-1"), format="json")

    assert response.status_code == 201
    assert Order.objects.get().created_by == api_user
    assert set(AuditEvent.objects.filter(object_type="order").values_list("actor", flat=True)) == {"pm-system"}


def test_middle_office_cannot_submit(mo_api, ready):
    counts = row_counts()

    assert_field_errors(mo_api.post(ORDERS, payload(), format="json"), "account")
    assert row_counts() == counts


# ------------------------------------------------------------------------------ list
def test_list_is_paginated_newest_first(api, submit):
    orders = [submit(client_order_id=f"L-{n}") for n in range(3)]

    response = api.get(ORDERS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert (body["count"], body["next"], body["previous"]) == (3, None, None)
    assert [o["id"] for o in body["results"]] == [o.pk for o in reversed(orders)]
    assert set(body["results"][0]) == ORDER_FIELDS  # the list leaves executions to the detail


def test_list_pages(api, submit):
    orders = [submit(client_order_id=f"P-{n}") for n in range(5)]
    newest_first = [o.pk for o in reversed(orders)]

    first = api.get(ORDERS, {"page_size": 2}).json()
    assert first["count"] == 5 and first["previous"] is None and first["next"]
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()

    assert third["next"] is None and second["previous"]
    assert [o["id"] for page in (first, second, third) for o in page["results"]] == newest_first
    assert_error(api.get(ORDERS, {"page": 99}), 404, "not_found")


def test_list_filters(api, submit, trader, msft):
    AccountFactory(code="ACC-2").traders.add(trader)
    buy_aapl = submit(client_order_id="F-1")
    sell_msft = submit(client_order_id="F-2", symbol="MSFT", side="SELL", limit_price=Decimal("415.00"))
    acc2 = submit(client_order_id="F-3", account="ACC-2", side="SELL_SHORT")
    cancelled = submit(client_order_id="F-4")
    assert api.post(f"{ORDERS}{cancelled.pk}/cancel/").json()["status"] == "cancelled"

    def ids(**params):
        response = api.get(ORDERS, params)
        assert response.status_code == 200, response.json()
        return {o["id"] for o in response.json()["results"]}

    assert ids() == {buy_aapl.pk, sell_msft.pk, acc2.pk, cancelled.pk}
    assert ids(status="cancelled") == {cancelled.pk}
    assert ids(status="pending_new") == {buy_aapl.pk, sell_msft.pk, acc2.pk}
    assert ids(symbol="MSFT") == {sell_msft.pk}
    assert ids(symbol="msft") == {sell_msft.pk}
    assert ids(account="ACC-2") == {acc2.pk}
    assert ids(side="SELL") == {sell_msft.pk}
    assert ids(side="SELL_SHORT") == {acc2.pk}
    assert ids(side="BUY", account="ACC-1", status="pending_new") == {buy_aapl.pk}
    assert ids(created_after=(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()) == set()
    Order.objects.filter(pk=buy_aapl.pk).update(created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert ids(created_after="2021-01-01T00:00:00Z") == {sell_msft.pk, acc2.pk, cancelled.pk}
    assert ids(created_on="2020-01-01") == {buy_aapl.pk}
    assert ids(created_on=dt.datetime.now(dt.UTC).date().isoformat()) == {sell_msft.pk, acc2.pk, cancelled.pk}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"status": "PENDING_NEW"}, "status"),
        ({"side": "LONG"}, "side"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_on": "2026-13-01"}, "created_on"),
        ({"symbol": "X" * 33}, "symbol"),
    ],
)
def test_list_bad_filter_is_400(api, submit, params, field):
    submit()

    assert_field_errors(api.get(ORDERS, params), field)


def test_list_entitlements(api, other_api, mo_api, submit, outsider, other_trader, other_account):
    mine = submit(client_order_id="E-1")
    theirs, _ = _order_for_other_trader(other_trader, other_account)

    assert {o["id"] for o in api.get(ORDERS).json()["results"]} == {mine.pk}
    assert {o["id"] for o in other_api.get(ORDERS).json()["results"]} == {theirs.pk}
    assert other_api.get(ORDERS, {"account": "ACC-1"}).json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
    assert {o["id"] for o in mo_api.get(ORDERS).json()["results"]} == {mine.pk, theirs.pk}
    assert client_for(outsider).get(ORDERS).json()["count"] == 0


def _order_for_other_trader(other_trader, other_account) -> tuple[Order, bool]:
    return order_submit(
        user=other_trader,
        client_order_id="THEIRS-1",
        account=other_account.code,
        symbol="AAPL",
        side="SELL",
        quantity=200,
        order_type="MARKET",
    )


# ---------------------------------------------------------------------------- detail
def test_detail_includes_executions(api, submit):
    order = acknowledge(submit(quantity=1000))
    fill(order, 300, "175.48")
    execution = Execution.objects.get(order=order, exec_type="F")

    response = api.get(f"{ORDERS}{order.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETAIL_FIELDS
    assert (body["status"], body["filled_quantity"], body["leaves_quantity"], body["avg_fill_price"]) == (
        "partially_filled",
        300,
        700,
        "175.48000000",
    )
    assert len(body["executions"]) == 1  # the ack (ExecType 0) is not an execution
    (shown,) = body["executions"]
    assert set(shown) == EXECUTION_FIELDS
    assert {k: v for k, v in shown.items() if k not in ("transact_time", "received_at")} == {
        "id": execution.pk,
        "order_id": order.pk,
        "venue": "SIM",
        "exec_id": execution.exec_id,
        "exec_type": "F",
        "symbol": "AAPL",
        "last_qty": 300,
        "last_px": "175.48000000",
        "exec_ref_id": None,
        "in_effect": True,
        "outcome": "applied",
    }


def test_detail_of_other_traders_order_is_404(other_api, submit):
    order = submit()

    body = assert_error(other_api.get(f"{ORDERS}{order.pk}/"), 404, "not_found")
    assert body["details"] == {}


def test_detail_of_missing_order_is_404_like_a_foreign_one(api, other_api, submit):
    order = submit()

    missing = assert_error(api.get(f"{ORDERS}{order.pk + 1000}/"), 404, "not_found")
    foreign = assert_error(other_api.get(f"{ORDERS}{order.pk}/"), 404, "not_found")
    assert missing == foreign  # never reveals that the other order exists


def test_middle_office_sees_any_order(mo_api, submit):
    order = submit()

    response = mo_api.get(f"{ORDERS}{order.pk}/")

    assert response.status_code == 200
    assert response.json()["id"] == order.pk


# ---------------------------------------------------------------------------- cancel
def test_cancel_acknowledged_order_sends_cancel_request(api, submit):
    order = acknowledge(submit(quantity=1000))
    original_cl_ord_id = order.cl_ord_id

    response = api.post(f"{ORDERS}{order.pk}/cancel/")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["id"], body["status"], body["leaves_quantity"]) == (order.pk, "pending_cancel", 1000)
    cancel = OutboundMessage.objects.get(order_id=order.pk, msg_type="F")
    assert cancel.state == "pending"
    sent = tags(cancel)
    assert sent[41] == original_cl_ord_id
    assert sent[11] == cancel.cl_ord_id != original_cl_ord_id
    assert (sent[37], sent[1], sent[55], sent[54], sent[38]) == (f"V{order.pk}", "ACC-1", "AAPL", "1", "1000")
    order.refresh_from_db()
    assert order.status == "pending_cancel"
    assert order.cl_ord_id == original_cl_ord_id  # changes only when the venue confirms
    assert audit_actions(order.pk)[-1] == "order.cancel_requested"

    apply(order, ExecType="4", OrdStatus="4", ClOrdID=cancel.cl_ord_id, OrigClOrdID=original_cl_ord_id, CumQty=0)
    assert api.get(f"{ORDERS}{order.pk}/").json()["status"] == "cancelled"


def test_cancel_unsent_order_cancels_at_once_and_voids_the_new_order_single(api, submit):
    order = submit()
    assert OutboundMessage.objects.get(order_id=order.pk).state == "pending"

    response = api.post(f"{ORDERS}{order.pk}/cancel/")

    assert response.status_code == 202, response.json()
    assert (response.json()["status"], response.json()["leaves_quantity"]) == ("cancelled", 0)
    nos = OutboundMessage.objects.get(order_id=order.pk)
    assert (nos.msg_type, nos.state) == ("D", "void")
    assert not OutboundMessage.objects.filter(order_id=order.pk, msg_type="F").exists()
    assert OrderRequest.objects.get(order=order).state == "withdrawn"
    assert audit_actions(order.pk) == ["order.created", "compliance.evaluated", "order.routed", "order.cancelled"]


def test_cancel_sent_but_unacknowledged_order_sends_cancel_request(api, submit):
    order = submit()
    mark_sent(order)

    response = api.post(f"{ORDERS}{order.pk}/cancel/")

    assert response.status_code == 202
    assert response.json()["status"] == "pending_cancel"
    assert OutboundMessage.objects.get(order_id=order.pk, msg_type="D").state == "sent"
    assert tags(OutboundMessage.objects.get(order_id=order.pk, msg_type="F"))[41] == order.cl_ord_id


def test_cancel_held_order_cancels_at_once(api, ready, compliance_rule):
    compliance_rule(Outcome.WARN)
    order_id = api.post(ORDERS, payload(), format="json").json()["id"]

    response = api.post(f"{ORDERS}{order_id}/cancel/")

    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert not OutboundMessage.objects.exists()


@pytest.mark.parametrize("sent", [False, True], ids=["cancelled-unsent", "pending-cancel"])
def test_cancel_twice_is_409(api, submit, sent):
    order = acknowledge(submit()) if sent else submit()
    assert api.post(f"{ORDERS}{order.pk}/cancel/").status_code == 202
    before = footprint(order.pk)

    response = api.post(f"{ORDERS}{order.pk}/cancel/")

    body = assert_error(response, 409, "invalid_state")
    assert body["details"]["status"] == ("pending_cancel" if sent else "cancelled")
    after = footprint(order.pk)
    assert after["audit"] == [*before["audit"], "order.cancel_refused"]
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}


def test_cancel_by_other_trader_is_404_and_changes_nothing(other_api, submit):
    order = acknowledge(submit())
    before = footprint(order.pk)

    assert_error(other_api.post(f"{ORDERS}{order.pk}/cancel/"), 404, "not_found")

    assert footprint(order.pk) == before


def test_cancel_missing_order_is_404(api, submit):
    submit()
    counts = row_counts()

    assert_error(api.post(f"{ORDERS}999999/cancel/"), 404, "not_found")
    assert row_counts() == counts


def test_cancel_by_middle_office_is_refused_and_changes_nothing(mo_api, submit):
    # Middle office sees every order but trades none: 403 ("not permitted", STYLE.md),
    # not 404, since the order is visible to them; nothing changes.
    order = acknowledge(submit())
    before = footprint(order.pk)

    response = mo_api.post(f"{ORDERS}{order.pk}/cancel/")

    assert_error(response, 403, "permission_denied")
    assert footprint(order.pk) == before


def test_cancel_filled_order_is_409_and_audited(api, submit, trader):
    order = fill(acknowledge(submit(quantity=1000)), 1000)
    assert order.status == "filled"
    before = footprint(order.pk)

    body = assert_error(api.post(f"{ORDERS}{order.pk}/cancel/"), 409, "invalid_state")

    assert "filled" in body["message"]
    after = footprint(order.pk)
    assert after["audit"] == [*before["audit"], "order.cancel_refused"]
    assert after["order"] == before["order"] and after["outbox"] == before["outbox"]
    assert after["requests"] == before["requests"]
    refusal = AuditEvent.objects.filter(object_id=str(order.pk), action="order.cancel_refused").get()
    assert refusal.actor == "trader1"
    assert refusal.details["code"] == "invalid_state"


def test_cancel_live_order_of_deactivated_account(api, submit, account):
    order = acknowledge(submit())
    account.active = False
    account.save()
    assert api.get(f"{ORDERS}{order.pk}/").status_code == 200

    response = api.post(f"{ORDERS}{order.pk}/cancel/")

    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "pending_cancel"


def test_new_orders_on_deactivated_account_are_refused(api, ready, account):
    account.active = False
    account.save()
    counts = row_counts()

    assert_field_errors(api.post(ORDERS, payload(), format="json"), "account")
    assert row_counts() == counts


# ----------------------------------------------------------------------------- amend
def test_amend_sends_replace_and_waits_for_the_venue(api, submit):
    order = acknowledge(submit(quantity=1000))
    original_cl_ord_id = order.cl_ord_id

    response = api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 1500, "limit_price": "176.25"}, format="json")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["quantity"], body["limit_price"]) == ("pending_amend", 1000, "175.50000000")
    replace = OutboundMessage.objects.get(order_id=order.pk, msg_type="G")
    sent = tags(replace)
    assert (sent[38], sent[44], sent[41], sent[11]) == ("1500", "176.25", original_cl_ord_id, replace.cl_ord_id)
    assert (sent[55], sent[54], sent[40], sent[37]) == ("AAPL", "1", "2", f"V{order.pk}")
    order.refresh_from_db()
    assert (order.quantity, order.limit_price, order.cl_ord_id) == (1000, Decimal("175.5"), original_cl_ord_id)
    assert audit_actions(order.pk)[-1] == "order.amend_requested"

    apply(
        order,
        ExecType="5",
        OrdStatus="0",
        ClOrdID=replace.cl_ord_id,
        OrigClOrdID=original_cl_ord_id,
        OrderQty=1500,
        Price="176.25",
        CumQty=0,
        LeavesQty=1500,
    )

    shown = api.get(f"{ORDERS}{order.pk}/").json()
    assert (shown["status"], shown["quantity"], shown["leaves_quantity"], shown["limit_price"]) == (
        "open",
        1500,
        1500,
        "176.25000000",
    )
    assert order.cl_ord_id == replace.cl_ord_id


def test_amend_quantity_only_keeps_the_price(api, submit):
    order = acknowledge(submit(quantity=1000))

    response = api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 800}, format="json")

    assert response.status_code == 202
    sent = tags(OutboundMessage.objects.get(order_id=order.pk, msg_type="G"))
    assert (sent[38], sent[44]) == ("800", "175.5")


def test_amend_price_only_keeps_the_quantity(api, submit):
    order = acknowledge(submit(quantity=1000))

    response = api.post(f"{ORDERS}{order.pk}/amend/", {"limit_price": "174"}, format="json")

    assert response.status_code == 202
    sent = tags(OutboundMessage.objects.get(order_id=order.pk, msg_type="G"))
    assert (sent[38], sent[44]) == ("1000", "174")


def test_amend_partially_filled_order(api, submit):
    order = fill(acknowledge(submit(quantity=1000)), 400)

    response = api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 2000}, format="json")

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["filled_quantity"]) == ("pending_amend", 400)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({}, ["non_field_errors"], id="no-fields"),
        pytest.param({"quantity": 1000}, ["non_field_errors"], id="same-quantity"),
        pytest.param({"limit_price": "175.50"}, ["non_field_errors"], id="same-price"),
        pytest.param({"quantity": 1000, "limit_price": "175.5000"}, ["non_field_errors"], id="same-both"),
        pytest.param({"quantity": 0}, ["quantity"], id="zero-quantity"),
        pytest.param({"quantity": -5}, ["quantity"], id="negative-quantity"),
        pytest.param({"quantity": 1.5}, ["quantity"], id="fractional-quantity"),
        pytest.param({"quantity": None}, ["quantity"], id="null-quantity"),
        pytest.param({"limit_price": "-1"}, ["limit_price"], id="negative-price"),
        pytest.param({"limit_price": "1.123456789"}, ["limit_price"], id="too-many-decimals"),
        pytest.param({"limit_price": None}, ["limit_price"], id="null-price"),
    ],
)
def test_amend_invalid_is_400_and_changes_nothing(api, submit, body, fields):
    order = acknowledge(submit(quantity=1000))
    before = footprint(order.pk)

    assert_field_errors(api.post(f"{ORDERS}{order.pk}/amend/", body, format="json"), *fields)

    assert footprint(order.pk) == before


def test_amend_limit_price_on_market_order_is_400(api, submit):
    order = acknowledge(submit(order_type="MARKET", limit_price=None))
    before = footprint(order.pk)

    assert_field_errors(api.post(f"{ORDERS}{order.pk}/amend/", {"limit_price": "170"}, format="json"), "limit_price")
    assert footprint(order.pk) == before


def test_amend_malformed_json_is_400(api, submit):
    order = acknowledge(submit())
    before = footprint(order.pk)

    response = api.post(f"{ORDERS}{order.pk}/amend/", data="{quantity: 5}", content_type="application/json")

    assert_error(response, 400, "parse_error")
    assert footprint(order.pk) == before


def test_amend_while_pending_amend_is_409(api, submit):
    order = acknowledge(submit(quantity=1000))
    assert api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 1200}, format="json").status_code == 202
    before = footprint(order.pk)

    body = assert_error(api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 1300}, format="json"), 409, "invalid_state")

    assert body["details"]["status"] == "pending_amend"
    after = footprint(order.pk)
    assert after["audit"] == [*before["audit"], "order.amend_refused"]
    assert (after["order"], after["requests"], after["outbox"]) == (
        before["order"],
        before["requests"],
        before["outbox"],
    )


@pytest.mark.parametrize("state", ["filled", "pending_cancel", "cancelled", "pending_new"])
def test_amend_not_allowed_in_state_is_409(api, submit, state):
    order = submit(quantity=1000)
    if state == "filled":
        fill(acknowledge(order), 1000)
    elif state == "pending_cancel":
        acknowledge(order)
        api.post(f"{ORDERS}{order.pk}/cancel/")
    elif state == "cancelled":
        api.post(f"{ORDERS}{order.pk}/cancel/")
    order.refresh_from_db()
    assert order.status == state
    before = footprint(order.pk)

    body = assert_error(api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 500}, format="json"), 409, "invalid_state")

    assert body["details"]["status"] == state
    after = footprint(order.pk)
    assert after["audit"] == [*before["audit"], "order.amend_refused"]
    assert (after["order"], after["requests"], after["outbox"]) == (
        before["order"],
        before["requests"],
        before["outbox"],
    )


def test_amend_by_other_trader_is_404_and_changes_nothing(other_api, submit):
    order = acknowledge(submit(quantity=1000))
    before = footprint(order.pk)

    assert_error(other_api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 5}, format="json"), 404, "not_found")

    assert footprint(order.pk) == before


def test_amend_refused_by_compliance_is_409(api, submit, compliance_rule):
    order = acknowledge(submit(quantity=1000))
    compliance_rule(Outcome.BLOCK, stage="amend", code="limit", reason="Position limit exceeded.")
    before = footprint(order.pk)

    body = assert_error(
        api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 900000}, format="json"), 409, "compliance_refused"
    )

    assert "Position limit exceeded." in body["message"]
    after = footprint(order.pk)
    assert after["audit"] == [*before["audit"], "order.amend_refused"]
    # The refused amendment's verdicts are on record, though nothing else changed.
    assert set(ComplianceResult.objects.filter(order_id=order.pk, stage="amend").values_list("rule", "outcome")) >= {
        ("limit", "block"),
        ("max_order_quantity", "pass"),
    }
    assert (after["order"], after["requests"], after["outbox"]) == (
        before["order"],
        before["requests"],
        before["outbox"],
    )


def test_cancel_while_pending_amend_chains_to_the_replace(api, submit):
    order = acknowledge(submit(quantity=1000))
    api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 1200}, format="json")
    replace = OutboundMessage.objects.get(order_id=order.pk, msg_type="G")

    response = api.post(f"{ORDERS}{order.pk}/cancel/")

    assert (response.status_code, response.json()["status"]) == (202, "pending_cancel")
    cancel = tags(OutboundMessage.objects.get(order_id=order.pk, msg_type="F"))
    assert cancel[41] == replace.cl_ord_id  # optimistic chaining (FIX 4.4 Vol. 4 D.2)
    assert len({order.cl_ord_id, replace.cl_ord_id, cancel[11]}) == 3


def test_requests_after_a_confirmed_replace_chain_to_it(api, submit):
    order = acknowledge(submit(quantity=1000))
    api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 1200}, format="json")
    replace = OutboundMessage.objects.get(order_id=order.pk, msg_type="G")
    apply(order, ExecType="5", OrdStatus="0", ClOrdID=replace.cl_ord_id, OrderQty=1200, CumQty=0, LeavesQty=1200)
    assert (order.status, order.quantity) == ("open", 1200)

    second = api.post(f"{ORDERS}{order.pk}/amend/", {"limit_price": "175.00"}, format="json")
    assert second.status_code == 202
    replace2 = OutboundMessage.objects.filter(order_id=order.pk, msg_type="G").latest("id")
    assert (tags(replace2)[41], tags(replace2)[38], tags(replace2)[44]) == (replace.cl_ord_id, "1200", "175")


def test_amend_after_a_rejected_replace_chains_to_the_original(api, submit):
    order = acknowledge(submit(quantity=1000))
    original = order.cl_ord_id
    api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 1200}, format="json")
    replace = OutboundMessage.objects.get(order_id=order.pk, msg_type="G")
    apply(
        order,
        MsgType="9",
        ClOrdID=replace.cl_ord_id,
        OrigClOrdID=original,
        OrdStatus="0",
        CxlRejResponseTo="2",
        CxlRejReason="0",
    )
    assert (order.status, order.quantity) == ("open", 1000)  # a replace reject does not reject the order

    response = api.post(f"{ORDERS}{order.pk}/amend/", {"quantity": 1100}, format="json")

    assert response.status_code == 202
    retry = OutboundMessage.objects.filter(order_id=order.pk, msg_type="G").latest("id")
    assert (tags(retry)[41], tags(retry)[38]) == (original, "1100")


# ----------------------------------------------------------------------------- audit
def test_audit_trail_oldest_first(api, submit):
    order = fill(acknowledge(submit(quantity=1000)), 1000)
    api.post(f"{ORDERS}{order.pk}/cancel/")

    response = api.get(f"{ORDERS}{order.pk}/audit/")

    assert response.status_code == 200
    trail = response.json()
    assert [e["action"] for e in trail] == [
        "order.created",
        "compliance.evaluated",
        "order.routed",
        "order.acknowledged",
        "order.fill",
        "order.cancel_refused",
    ]
    assert all(set(e) == AUDIT_FIELDS for e in trail)
    assert [e["id"] for e in trail] == sorted(e["id"] for e in trail)
    occurred = [dt.datetime.fromisoformat(e["occurred_at"]) for e in trail]
    assert occurred == sorted(occurred)
    assert {(e["object_type"], e["object_id"]) for e in trail} == {("order", str(order.pk))}
    assert [e["actor"] for e in trail] == ["trader1", "trader1", "trader1", "venue:SIM", "venue:SIM", "trader1"]
    assert trail[0]["after"]["status"] == "new"
    assert trail[-2]["after"]["status"] == "filled"


def test_audit_trail_of_other_traders_order_is_404(other_api, mo_api, submit):
    order = submit()

    assert_error(other_api.get(f"{ORDERS}{order.pk}/audit/"), 404, "not_found")
    assert [e["action"] for e in mo_api.get(f"{ORDERS}{order.pk}/audit/").json()] == [
        "order.created",
        "compliance.evaluated",
        "order.routed",
    ]


# ------------------------------------------------------------ executions, positions
def test_executions_list_and_entitlement(api, other_api, mo_api, submit):
    order = acknowledge(submit(quantity=1000))
    fill(order, 300, "175.48")
    fill(order, 700, "175.50")

    body = api.get("/api/v1/executions/").json()

    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    assert all(set(e) == EXECUTION_FIELDS for e in body["results"])
    assert [(e["last_qty"], e["last_px"]) for e in body["results"]] == [(700, "175.50000000"), (300, "175.48000000")]
    assert {(e["order_id"], e["symbol"], e["venue"], e["exec_type"]) for e in body["results"]} == {
        (order.pk, "AAPL", "SIM", "F")
    }
    assert other_api.get("/api/v1/executions/").json()["count"] == 0
    assert mo_api.get("/api/v1/executions/").json()["count"] == 2


def test_executions_filters(api, submit, msft):
    first = acknowledge(submit(quantity=1000))
    fill(first, 300, "175.48")
    second = acknowledge(submit(quantity=500))
    fill(second, 500, "175.40")
    other = acknowledge(submit(symbol="MSFT", quantity=100, limit_price=Decimal("415")))
    fill(other, 100, "415.00")

    def listed(**params) -> list[tuple[int, int]]:
        response = api.get("/api/v1/executions/", params)
        assert response.status_code == 200, response.json()
        return [(e["order_id"], e["last_qty"]) for e in response.json()["results"]]

    assert listed(order=first.pk) == [(first.pk, 300)]
    assert listed(order=second.pk) == [(second.pk, 500)]
    assert listed(symbol="msft") == [(other.pk, 100)]
    assert listed(account="ACC-1", symbol="AAPL") == [(second.pk, 500), (first.pk, 300)]
    assert listed(account="ACC-9") == []
    today = dt.datetime.now(dt.UTC).date()
    assert len(listed(created_on=today.isoformat())) == 3
    assert listed(created_on=(today - dt.timedelta(days=1)).isoformat()) == []
    for bad in ({"order": "x"}, {"order": "0"}, {"created_on": "yesterday"}, {"symbol": ""}, {"account": ""}):
        response = api.get("/api/v1/executions/", bad)
        assert response.status_code == 400, (bad, response.content)
        assert set(response.json()["details"]) == set(bad), response.json()


def test_positions_list_filters_and_entitlement(api, other_api, mo_api, submit, msft):
    fill(acknowledge(submit(quantity=1000)), 1000, "175.00")
    fill(acknowledge(submit(symbol="MSFT", side="SELL", quantity=100, limit_price=Decimal("415"))), 100, "415.00")

    body = api.get("/api/v1/positions/").json()

    assert set(body) == {"count", "next", "previous", "results"}
    assert all(set(p) == POSITION_FIELDS for p in body["results"])
    assert [
        (p["account"], p["symbol"], p["quantity"], p["avg_buy_price"], p["avg_sell_price"]) for p in body["results"]
    ] == [
        ("ACC-1", "AAPL", 1000, "175.00000000", None),
        ("ACC-1", "MSFT", -100, None, "415.00000000"),
    ]
    assert [p["symbol"] for p in api.get("/api/v1/positions/", {"symbol": "msft"}).json()["results"]] == ["MSFT"]
    assert api.get("/api/v1/positions/", {"account": "ACC-3"}).json()["count"] == 0
    assert other_api.get("/api/v1/positions/").json()["count"] == 0
    assert mo_api.get("/api/v1/positions/").json()["count"] == 2


# ------------------------------------------------------------------------------ auth
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ORDERS),
        ("post", ORDERS),
        ("get", f"{ORDERS}1/"),
        ("post", f"{ORDERS}1/cancel/"),
        ("post", f"{ORDERS}1/amend/"),
        ("get", f"{ORDERS}1/audit/"),
        ("get", "/api/v1/executions/"),
        ("get", "/api/v1/positions/"),
    ],
)
def test_unauthenticated_is_401_everywhere(ready, method, path):
    counts = row_counts()

    response = getattr(APIClient(), method)(path, payload() if method == "post" else None, format="json")

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert row_counts() == counts


def test_bad_token_is_401(ready):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert_error(client.get(ORDERS), 401, "authentication_failed")


def test_token_auth_works(ready, trader):
    client = token_client(trader)

    created = client.post(ORDERS, payload(client_order_id="TOK-1"), format="json")

    assert created.status_code == 201
    assert Order.objects.get().created_by == trader
    assert client.get(ORDERS).json()["count"] == 1


def test_session_auth_works(ready, trader):
    client = APIClient()
    assert client.login(username="trader1", password="pass-Word-1")

    created = client.post(ORDERS, payload(client_order_id="SES-1"), format="json")

    assert created.status_code == 201
    assert client.get(f"{ORDERS}{created.json()['id']}/").json()["client_order_id"] == "SES-1"


def test_session_auth_requires_csrf_token_for_writes(ready, trader):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="trader1", password="pass-Word-1")
    counts = row_counts()

    response = client.post(ORDERS, payload(), format="json")

    body = assert_error(response, 403, "permission_denied")
    assert "CSRF" in body["message"]
    assert row_counts() == counts
    assert client.get(ORDERS).status_code == 200  # reads need no token


def test_method_not_allowed_has_error_shape(api, submit):
    order = submit()

    assert_error(api.delete(f"{ORDERS}{order.pk}/"), 405, "method_not_allowed")
    assert_error(api.get(f"{ORDERS}{order.pk}/cancel/"), 405, "method_not_allowed")
    assert Order.objects.filter(pk=order.pk, status="pending_new").exists()


# ---------------------------------------------------------------------- schema, docs
def test_openapi_schema(api):
    response = api.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/v1/orders/",
        "/api/v1/orders/{order_id}/",
        "/api/v1/orders/{order_id}/cancel/",
        "/api/v1/orders/{order_id}/amend/",
        "/api/v1/orders/{order_id}/audit/",
        "/api/v1/executions/",
        "/api/v1/positions/",
    } <= set(schema["paths"])
    assert set(schema["paths"]["/api/v1/orders/"]["post"]["responses"]) >= {"200", "201"}


def test_openapi_schema_default_format(api):
    response = api.get("/api/schema/")

    assert response.status_code == 200
    assert b"openapi: 3." in response.content


def test_api_docs_page(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


# ------------------------------------------------- acceptance flow (DESIGN "Done when")
def test_origin_acceptance_flow_over_http_with_tokens(ready, trader, other_trader, other_account):
    trader1 = token_client(trader)
    trader2 = token_client(other_trader)

    created = trader1.post(ORDERS, payload(client_order_id="ORIGIN-1", quantity=1000), format="json")
    assert created.status_code == 201, created.json()
    order_id = created.json()["id"]
    assert created.json()["status"] == "pending_new"
    assert [o["id"] for o in trader1.get(ORDERS).json()["results"]] == [order_id]
    assert trader1.get(f"{ORDERS}{order_id}/").json()["client_order_id"] == "ORIGIN-1"

    again = trader1.post(ORDERS, payload(client_order_id="ORIGIN-1", quantity=1000), format="json")
    assert (again.status_code, again.json()["id"]) == (200, order_id)

    counts = row_counts()
    for overrides, field in (
        ({"quantity": 0}, "quantity"),
        ({"symbol": "ZZZZ"}, "symbol"),
        ({"limit_price": _MISSING}, "limit_price"),
    ):
        refused = trader1.post(ORDERS, payload(client_order_id="ORIGIN-BAD", **overrides), format="json")
        assert_field_errors(refused, field)
    assert row_counts() == counts

    assert_error(trader2.get(f"{ORDERS}{order_id}/"), 404, "not_found")
    assert_error(trader2.post(f"{ORDERS}{order_id}/cancel/"), 404, "not_found")
    assert row_counts() == counts

    trail = trader1.get(f"{ORDERS}{order_id}/audit/").json()
    assert [e["action"] for e in trail] == ["order.created", "compliance.evaluated", "order.routed"]

    cancelled = trader1.post(f"{ORDERS}{order_id}/cancel/")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"  # never sent: withdrawn from the outbox
    assert [e["action"] for e in trader1.get(f"{ORDERS}{order_id}/audit/").json()][-1] == "order.cancelled"


@pytest.mark.parametrize("path", ["/api/v1/orders/abc/", "/api/v1/nothing-here/", "/api/v1/orders/1/explode/"])
def test_unmatched_api_urls_get_the_json_error_body(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response.json() == {"message": "Not found.", "code": "not_found", "details": {}}
