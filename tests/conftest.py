"""Shared fixtures: personas (trader, other trader, middle office, API client,
outsider), reference data, and helpers to feed execution reports."""

from __future__ import annotations

import hashlib
import itertools
import os
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db.backends.signals import connection_created
from rest_framework.test import APIClient

from compliance.models import RuleSetting
from orders.models import Account, Order, Security
from orders.selectors import API_CLIENT_GROUP, MIDDLE_OFFICE_GROUP, TRADER_GROUP
from orders.services import execution_report_apply, order_submit
from routing.models import Venue

from .factories import AccountFactory, SecurityFactory, UserFactory

IS_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")

# One test database per checkout, under a name that stays the same from run to run so
# that ``pytest --reuse-db`` can keep it: two checkouts on one PostgreSQL (a developer's
# and CI's fresh clone) never share, nor drop, each other's. OMS_TEST_DB_SUFFIX names
# another one. Runs in one checkout at the same time take turns at the name: the first
# holds it, the others take one of their own (django_db_modify_db_settings).
if IS_POSTGRES:
    _checkout = hashlib.sha1(str(Path(__file__).resolve().parent.parent).encode()).hexdigest()[:8]
    _test_name = f"test_{settings.DATABASES['default']['NAME']}_{_checkout}"
    if os.environ.get("OMS_TEST_DB_SUFFIX"):
        _test_name += f"_{os.environ['OMS_TEST_DB_SUFFIX']}"
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = _test_name


def _claim_database_name(name: str) -> tuple[bool, psycopg.Connection | None]:
    """Claim ``name`` for this run: an advisory lock, held while the returned connection
    is open. (False, None) if another run holds it; an unreachable server counts as
    claimed (setting the test database up reports what is wrong)."""
    db = settings.DATABASES["default"]
    key = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)
    try:
        conn = psycopg.connect(
            dbname="postgres",
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            connect_timeout=5,
            autocommit=True,
        )
    except psycopg.Error:
        return True, None
    if conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        return True, conn
    conn.close()
    return False, None


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings):
    """Yields whether this run has a database of its own (its checkout's is in use by a
    concurrent run, which setting it up would drop)."""
    if not IS_POSTGRES:
        yield False
        return
    test = settings.DATABASES["default"]["TEST"]
    claimed, claim = _claim_database_name(test["NAME"])
    if not claimed:
        test["NAME"] = f"{test['NAME']}_{os.getpid()}"
    try:
        yield not claimed
    finally:  # after the databases are torn down (django_db_setup depends on this fixture)
        if claim is not None:
            claim.close()


@pytest.fixture(scope="session")
def django_db_keepdb(django_db_keepdb, django_db_modify_db_settings):
    # --reuse-db keeps the checkout's database, never a per-run one: nothing would reuse it.
    return django_db_keepdb and not django_db_modify_db_settings


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
    # Every persona has a password, and the production hasher (PBKDF2) is slow on
    # purpose. Only this process: the OMS that the browser tests start keeps the
    # production hashers and seeds its own users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
def acc2(db, trader) -> Account:
    """A second account of the trader's (a block order's second fund)."""
    account = AccountFactory(code="ACC-2", name="US Growth Fund")
    account.traders.add(trader)
    return account


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
