"""Shared fixtures: personas (trader, other trader, middle office, API client,
outsider), reference data, and helpers to feed execution reports."""

from __future__ import annotations

import itertools
import os
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db.backends.signals import connection_created
from rest_framework.test import APIClient

from orders.models import Account, Order, Security
from orders.selectors import API_CLIENT_GROUP, MIDDLE_OFFICE_GROUP, TRADER_GROUP
from orders.services import execution_report_apply, order_submit
from routing.models import Venue

from .factories import AccountFactory, SecurityFactory, UserFactory

IS_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")

# Each test run gets its own test database, so runs on one machine (a developer's and
# CI's, or parallel runs) never drop each other's database.
if IS_POSTGRES:
    _test = settings.DATABASES["default"].setdefault("TEST", {})
    _test["NAME"] = f"test_{settings.DATABASES['default']['NAME']}_{os.getpid()}"


def _audit_truncate_allowed(sender, connection, **kwargs):
    # Test databases are emptied between transactional tests by TRUNCATE, which the
    # audit tables' triggers refuse unless the session says so (only tests do).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET oms.audit_allow_truncate = 'on'")


connection_created.connect(_audit_truncate_allowed, dispatch_uid="tests.audit_truncate_allowed")


def pytest_configure(config):
    # CI must exercise row locks and concurrency for real.
    if os.environ.get("CI") == "true" and not IS_POSTGRES:
        raise pytest.UsageError("CI runs the tests on PostgreSQL: set DATABASE_URL to a postgres:// URL")


def pytest_collection_modifyitems(config, items):
    if IS_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


# Rules that judge trading intent (duplicates, wash trades, short-sale marking, price
# collars, message rates). The order-lifecycle and FIX suites submit many identical or
# off-market orders on purpose, so they switch these off the way a firm would, in the
# firm settings; tests/compliance runs every rule with the firm defaults.
LIFECYCLE_QUIET_RULES = (
    "duplicate_order",
    "wash_trade",
    "short_sale",
    "price_collar",
    "order_rate_trader",
    "order_rate_account",
)


def compliance_quiet_for_lifecycle(request) -> None:
    """For autouse fixtures of the lifecycle suites: switch off LIFECYCLE_QUIET_RULES
    in tests that use the database (others have no settings to change)."""
    if request.node.get_closest_marker("django_db") is None:
        database = next((f for f in ("transactional_db", "db") if f in request.fixturenames), None)
        if database is None:
            return
        request.getfixturevalue(database)  # set the test database up before touching it
    from compliance.models import RuleSetting

    RuleSetting.objects.filter(scope="firm", rule__in=LIFECYCLE_QUIET_RULES).update(enabled=False)


@pytest.fixture
def venue(db) -> Venue:
    return Venue.objects.create(code="SIM", name="Simulator", sender_comp_id="OMS", target_comp_id="SIM")


@pytest.fixture
def aapl(db) -> Security:
    return SecurityFactory(symbol="AAPL", name="Apple Inc.", issuer="Apple Inc.", reference_price=Decimal("175.50"))


@pytest.fixture
def msft(db) -> Security:
    return SecurityFactory(symbol="MSFT", name="Microsoft", issuer="Microsoft", reference_price=Decimal("415.20"))


@pytest.fixture
def trader(db):
    user = UserFactory(username="trader1")
    user.groups.add(Group.objects.get_or_create(name=TRADER_GROUP)[0])
    return user


@pytest.fixture
def other_trader(db):
    user = UserFactory(username="trader2")
    user.groups.add(Group.objects.get_or_create(name=TRADER_GROUP)[0])
    return user


@pytest.fixture
def middle_office(db):
    user = UserFactory(username="mo1", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=MIDDLE_OFFICE_GROUP)[0])
    return user


@pytest.fixture
def api_user(db):
    user = UserFactory(username="pm-system")
    user.groups.add(Group.objects.get_or_create(name=API_CLIENT_GROUP)[0])
    return user


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider")


@pytest.fixture
def account(db, trader) -> Account:
    acc = AccountFactory(code="ACC-1")
    acc.traders.add(trader)
    return acc


@pytest.fixture
def other_account(db, other_trader) -> Account:
    acc = AccountFactory(code="ACC-3")
    acc.traders.add(other_trader)
    return acc


@pytest.fixture
def api(trader) -> APIClient:
    client = APIClient()
    client.force_authenticate(trader)
    return client


_client_ids = itertools.count(1)


@pytest.fixture
def submit(trader, account, aapl, venue):
    """Submit an order through the service (defaults: BUY 10000 AAPL LIMIT 175.50)."""

    def _submit(**overrides) -> Order:
        params = {
            "user": trader,
            "client_order_id": f"T-{next(_client_ids)}",
            "account": account.code,
            "symbol": aapl.symbol,
            "side": "BUY",
            "quantity": 10000,
            "order_type": "LIMIT",
            "limit_price": Decimal("175.50"),
        }
        params.update(overrides)
        order, _ = order_submit(**params)
        return order

    return _submit


_exec_ids = itertools.count(1)


def report(order: Order, **tags) -> dict[int, str]:
    """An ExecutionReport for ``order`` as a dict of FIX tags. Keyword names are the
    FIX field names used below; anything not given is left out."""
    names = {
        "ClOrdID": 11,
        "OrigClOrdID": 41,
        "OrderID": 37,
        "ExecID": 17,
        "ExecType": 150,
        "OrdStatus": 39,
        "OrderQty": 38,
        "CumQty": 14,
        "LeavesQty": 151,
        "LastQty": 32,
        "LastPx": 31,
        "AvgPx": 6,
        "ExecRefID": 19,
        "Price": 44,
        "Text": 58,
        "CxlRejReason": 102,
        "CxlRejResponseTo": 434,
        "ExecRestatementReason": 378,
        "MsgType": 35,
        "Account": 1,
        "Symbol": 55,
        "Side": 54,
    }
    msg = {35: "8", 37: f"V{order.pk}", 17: f"X{next(_exec_ids)}", 55: order.security.symbol}
    if order.cl_ord_id:
        msg[11] = order.cl_ord_id
    for name, value in tags.items():
        msg[names[name]] = str(value)
    if msg[35] == "9":
        msg.pop(17, None)
    return msg


def apply(order: Order, **tags):
    """Feed one report for ``order`` to the service and return the refreshed order."""
    result = execution_report_apply(venue_code=order.venue.code, message=report(order, **tags))
    order.refresh_from_db()
    return result
