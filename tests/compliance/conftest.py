"""Fixtures and helpers shared by the compliance tests: rule settings, order entry
through the services with distinct terms, and counts of what a step may write."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from compliance.defaults import firm_defaults_ensure
from compliance.models import ComplianceResult, LocateUse, OverrideRequest, ReviewItem, RuleSetting
from orders.models import Order, OrderRequest, Position
from orders.selectors import MIDDLE_OFFICE_GROUP, TRADER_GROUP
from orders.services import order_check, order_submit
from routing.models import OutboundMessage
from tests.conftest import apply

from ..factories import UserFactory

NOT_RATE_LIMITED = Decimal("100000")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rule_set(rule: str, *, scope: str = "firm", **fields: Any) -> RuleSetting:
    """Create or change the setting of ``rule`` for one target (firm by default); the
    target is given as account=, trader=, security= or issuer=."""
    target = {name: fields.pop(name, None) for name in ("account", "trader", "security")}
    target["issuer"] = fields.pop("issuer", "")
    setting, _ = RuleSetting.objects.update_or_create(rule=rule, scope=scope, **target, defaults=fields)
    setting.full_clean()
    return setting


@pytest.fixture(autouse=True)
def firm_defaults(db):
    """The firm defaults of the data migration (a transactional test elsewhere may have
    flushed them), with the message-rate limits raised out of the way: a test that is
    about the rate limits sets them itself."""
    firm_defaults_ensure()
    RuleSetting.objects.filter(scope="firm", rule__in=["order_rate_trader", "order_rate_account"]).update(
        threshold=NOT_RATE_LIMITED
    )


_client_ids = itertools.count(1)
_quantities = itertools.count(101)


def distinct_quantity() -> int:
    """A quantity no other order of the test run has, so the duplicate rule stays out
    of tests that are not about it."""
    return next(_quantities)


def order_params(trader, account, aapl, overrides: dict[str, Any]) -> dict[str, Any]:
    params = {
        "user": trader,
        "account": account.code,
        "symbol": aapl.symbol,
        "side": "BUY",
        "order_type": "LIMIT",
        "limit_price": Decimal("175.50"),
    }
    params.update(overrides)
    if "quantity" not in params:
        params["quantity"] = distinct_quantity()
    if params["order_type"] in ("MARKET", "STOP"):
        params.pop("limit_price", None)
    return params


@pytest.fixture
def place(trader, account, aapl, venue):
    """Submit through ``order_submit`` (defaults: trader1 on ACC-1, BUY AAPL LIMIT 175.50,
    a distinct quantity); returns the stored order."""

    def _place(**overrides: Any) -> Order:
        params = order_params(trader, account, aapl, overrides)
        params.setdefault("client_order_id", f"C-{next(_client_ids)}")
        order, created = order_submit(**params)
        assert created
        return order

    return _place


@pytest.fixture
def what_if(trader, account, aapl, venue):
    """The same order as ``place`` through the what-if ``order_check``."""

    def _what_if(**overrides: Any):
        return order_check(**order_params(trader, account, aapl, overrides))

    return _what_if


def result_of(order: Order, rule: str, stage: str = "submit") -> ComplianceResult:
    return ComplianceResult.objects.get(order=order, rule=rule, stage=stage)


def failures(order: Order, stage: str = "submit") -> list[tuple[str, str, str]]:
    """(rule, outcome, code) of the rules that did not pass, internal ones included."""
    return sorted(
        ComplianceResult.objects.filter(order=order, stage=stage)
        .exclude(outcome="pass")
        .values_list("rule", "outcome", "code")
    )


def outcome_of(order: Order) -> tuple[str, list[tuple[str, str, str]]]:
    order.refresh_from_db()
    return order.status, failures(order)


def ack(order: Order) -> Order:
    """The venue accepted the order (pending_new -> open)."""
    assert apply(order, ExecType="0", OrdStatus="0").outcome == "applied"
    assert order.status == "open"
    return order


def fill(order: Order, qty: int, price: str) -> Order:
    status = "2" if order.filled_quantity + qty == order.quantity else "1"
    assert apply(order, ExecType="F", OrdStatus=status, LastQty=qty, LastPx=price).outcome == "applied"
    return order


def mark_sent(order: Order) -> None:
    """The session sent the order's queued messages."""
    sent = OutboundMessage.objects.filter(order_id=order.pk, state=OutboundMessage.State.PENDING).update(
        state=OutboundMessage.State.SENT, sent_at=now(), msg_seq_num=1
    )
    assert sent


def long_position(account, security, quantity: int) -> Position:
    return Position.objects.create(account=account, security=security, quantity=quantity, bought_quantity=quantity)


COUNTED = (Order, OrderRequest, OutboundMessage, ComplianceResult, AuditEvent, LocateUse, ReviewItem, OverrideRequest)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED}


@pytest.fixture
def trading_officer(account):
    """A user who trades ACC-1 and is middle office too (the four-eyes case)."""
    user = UserFactory(username="both1")
    user.groups.add(
        Group.objects.get_or_create(name=TRADER_GROUP)[0], Group.objects.get_or_create(name=MIDDLE_OFFICE_GROUP)[0]
    )
    account.traders.add(user)
    return user
