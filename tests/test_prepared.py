"""Reads compiled once per process (``oms_site.prepared``): each gives what its
queryset gives, with every parameter where the ORM puts it, on PostgreSQL and on the
embedded SQLite database; a read it cannot send as given is refused, not sent wrong."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.transaction import TransactionManagementError

from oms_site.prepared import PreparedRead, reads_together
from orders.models import Account, Security

from .factories import AccountFactory, SecurityFactory

ROOT = Path(__file__).resolve().parent.parent


def _securities(symbols):
    return Security.objects.filter(symbol__in=symbols, active=True)


@pytest.fixture
def securities(db):
    now = dt.datetime.now(dt.UTC)
    return [
        SecurityFactory(symbol="AAA", reference_price=Decimal("10.25"), reference_price_at=now),
        SecurityFactory(symbol="BBB", reference_price=Decimal("0.00012345"), reference_price_at=now),
        SecurityFactory(symbol="CCC", reference_price=None, reference_price_at=None),
        SecurityFactory(symbol="DDD", reference_price=Decimal("7"), active=False),
    ]


def test_a_values_read_gives_what_its_queryset_gives_with_each_call_s_values(securities):
    read = PreparedRead(
        lambda low, since: (
            Security.objects.filter(reference_price__gte=low, reference_price_at__gte=since)
            .order_by("symbol")
            .values_list("symbol", "reference_price", "reference_price_at")
        ),
        low=Decimal("1"),
        since=dt.datetime(2000, 1, 3, tzinfo=dt.UTC),
    )
    for low, since in [
        (Decimal("0.0001"), dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
        (Decimal("8"), dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
        (Decimal("0"), dt.datetime.now(dt.UTC) + dt.timedelta(days=1)),
    ]:
        expected = list(
            Security.objects.filter(reference_price__gte=low, reference_price_at__gte=since)
            .order_by("symbol")
            .values_list("symbol", "reference_price", "reference_price_at")
        )
        assert read.rows(low=low, since=since) == expected
    rows = read.rows(low=Decimal("0"), since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert [symbol for symbol, *_ in rows] == ["AAA", "BBB", "DDD"]
    assert rows[1][1] == Decimal("0.00012345") and isinstance(rows[1][1], Decimal)
    assert rows[0][2].tzinfo is not None


def test_a_model_read_gives_instances_equal_field_by_field(securities):
    read = PreparedRead(_securities, symbols=["A"])
    got = read.models(symbols=["CCC", "AAA", "DDD"])
    want = list(_securities(["CCC", "AAA", "DDD"]))
    assert [s.symbol for s in got] == [s.symbol for s in want] == ["AAA", "CCC"]
    fields = [f.attname for f in Security._meta.concrete_fields]
    assert [[getattr(s, f) for f in fields] for s in got] == [[getattr(s, f) for f in fields] for s in want]
    assert all(not s._state.adding and s._state.db == "default" for s in got)


def test_a_list_is_compiled_per_length_and_deduplicated_as_the_orm_does(securities, django_assert_num_queries):
    read = PreparedRead(_securities, symbols=["A"])
    for symbols in (["AAA"], ["BBB", "AAA"], ["AAA", "AAA", "BBB"], ["ZZZ", "CCC", "BBB", "AAA"]):
        with django_assert_num_queries(1):
            got = read.models(symbols=symbols)
        assert [s.pk for s in got] == [s.pk for s in _securities(symbols)]
    with pytest.raises(ValueError, match="empty"):
        read.models(symbols=[])


def test_a_shape_is_compiled_apart_and_a_parameter_it_does_not_use_is_ignored(securities):
    read = PreparedRead(
        lambda price, priced: Security.objects.filter(reference_price=price if priced else None).values_list("symbol"),
        shape=("priced",),
        price=Decimal("1"),
    )
    assert read.rows(price=Decimal("10.25"), priced=True) == [("AAA",)]
    assert read.rows(price=Decimal("10.25"), priced=False) == [("CCC",)]
    assert read.rows(price=Decimal("7.00"), priced=True) == [("DDD",)]


def test_reads_sent_together_give_what_each_gives_alone_in_one_statement(securities, django_assert_num_queries):
    models = PreparedRead(_securities, symbols=["A"])
    values = PreparedRead(
        lambda low: Security.objects.filter(reference_price__gte=low).order_by("symbol").values_list("symbol"),
        low=Decimal("1"),
    )
    empty = PreparedRead(lambda pk: Security.objects.filter(pk=pk).values_list("symbol"), pk=1)
    alone = [models.models(symbols=["AAA", "BBB"]), values.rows(low=Decimal("5")), empty.rows(pk=0)]

    with django_assert_num_queries(1):
        together = reads_together(
            (models, {"symbols": ["AAA", "BBB"]}), (values, {"low": Decimal("5")}), (empty, {"pk": 0})
        )

    assert [[s.pk for s in together[0]], *together[1:]] == [[s.pk for s in alone[0]], *alone[1:]]
    assert together[1] == [("AAA",), ("DDD",)] and together[2] == []


def test_select_for_update_and_limits_are_kept(
    securities, django_assert_num_queries, django_capture_on_commit_callbacks
):
    from django.db import transaction

    read = PreparedRead(lambda pk: Security.objects.select_for_update().filter(pk=pk), pk=1)
    with transaction.atomic(), django_assert_num_queries(1) as captured:
        assert read.models(pk=securities[1].pk)[0].symbol == "BBB"
    assert "FOR UPDATE" in captured.captured_queries[0]["sql"]


@pytest.mark.django_db(transaction=True)
def test_a_locking_read_outside_a_transaction_is_refused_as_the_orm_refuses_it(securities):
    read = PreparedRead(lambda pk: Security.objects.select_for_update().filter(pk=pk), pk=1)
    with transaction.atomic():
        read.models(pk=securities[0].pk)  # compiled inside one
    with pytest.raises(TransactionManagementError):
        read.models(pk=securities[0].pk)


def test_reads_it_cannot_send_as_given_are_refused(db):
    account = AccountFactory(code="X-1")
    computed = PreparedRead(lambda pk: Account.objects.filter(pk=pk + 1).values_list("code"), pk=1)
    with pytest.raises(ImproperlyConfigured, match="not sent as it is given"):
        computed.rows(pk=account.pk)
    wrapped = PreparedRead(lambda code: Account.objects.filter(code__contains=code).values_list("code"), code="X")
    with pytest.raises(ImproperlyConfigured, match="not sent as it is given"):
        wrapped.rows(code="X")
    scalar_in = PreparedRead(lambda code: Account.objects.filter(code__in=code).values_list("code"), code="XY")
    with pytest.raises(ImproperlyConfigured):
        scalar_in.rows(code="X-")
    related = PreparedRead(lambda: Account.objects.select_related("traders"))
    with pytest.raises(ImproperlyConfigured, match="every field of one model"):
        related.models()
    with pytest.raises(TypeError):
        PreparedRead(lambda pk: Account.objects.filter(pk=pk).values_list("code"), pk=1).rows(id=1)
    with pytest.raises(ImproperlyConfigured, match="use models"):
        PreparedRead(lambda pk: Account.objects.filter(pk=pk), pk=1).rows(pk=1)


SQLITE_SCRIPT = textwrap.dedent(
    """
    import datetime as dt
    from decimal import Decimal
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    from django.contrib.auth import get_user_model
    from compliance.models import RuleSetting
    from orders.models import Account, Order, Position
    from orders.services import order_submit
    from orders.selectors import accounts_and_securities_get
    from oms_site.prepared import PreparedRead, reads_together

    trader = get_user_model().objects.get(username="trader1")
    accounts, securities = accounts_and_securities_get(user=trader, codes=["ACC-1", "ACC-2", "ACC-3"], symbols=["msft"])
    assert (sorted(accounts), sorted(securities)) == (["ACC-1", "ACC-2"], ["MSFT"])
    aapl = accounts_and_securities_get(user=trader, codes=[], symbols=["aapl"])[1]["AAPL"]
    assert isinstance(aapl.reference_price, Decimal) and aapl.reference_price_at.tzinfo is not None
    since = PreparedRead(
        lambda at: Order.objects.filter(created_at__gte=at).values_list("pk", "limit_price", "created_at"),
        at=dt.datetime(2000, 1, 3, tzinfo=dt.UTC),
    )
    before = len(since.rows(at=dt.datetime.now(dt.UTC)))
    Position.objects.update_or_create(account=Account.objects.get(code="ACC-1"), security=aapl, defaults={"quantity": 100})
    RuleSetting.objects.filter(scope="firm", rule="daily_notional_limit").update(threshold=Decimal("1000000"))

    def submit(cl, side, qty):
        return order_submit(user=trader, client_order_id=cl, account="ACC-1", symbol="AAPL", side=side,
                            quantity=qty, order_type="LIMIT", limit_price=aapl.reference_price)[0]

    first = submit("sq-1", "BUY", 1000)
    twin = submit("sq-2", "BUY", 1000)         # same terms: a duplicate, held
    wash = submit("sq-3", "SELL", 5)           # long 100, the other side working: a wash trade, held
    over = submit("sq-4", "BUY", 9000)         # past the daily limit with the first two: blocked
    rows = since.rows(at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    assert len(rows) == before + 4 and all(isinstance(p, Decimal) and at.tzinfo for _, p, at in rows), rows
    for order in (first, twin, wash, over):
        results = order.compliance_verdicts.get().results
        print(order.status, ",".join(sorted(r["rule"] for r in results if r["outcome"] != "pass")) or "-")
    """
)


def test_the_embedded_sqlite_database_gets_its_own_compiled_reads(tmp_path):
    """The fallback database of DESIGN §9: the prepared reads of the submit path
    (accounts, securities, exposure, duplicates, wash trades) compiled for SQLite, and
    the rules decide there as they do on PostgreSQL."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "OMS_FIRM_TIME_ZONE")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'oms.sqlite3'}",
        OMS_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="oms_site.settings",
        CELERY_TASK_ALWAYS_EAGER="true",
    )
    result = subprocess.run(
        [sys.executable, "-c", SQLITE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-8:] == [
        *("pending_new", "-"),
        *("held", "duplicate_order"),
        *("held", "wash_trade"),
        *("rejected", "daily_notional_limit,wash_trade"),  # the held sell is working
    ]


def test_psycopg_keeps_the_parsing_of_the_long_statements_sent_together():
    # A psycopg upgrade that renames these limits must fail here, not slow submissions.
    from psycopg import _queries

    assert _queries.MAX_CACHED_STATEMENT_LENGTH >= 64 * 1024 and _queries.MAX_CACHED_STATEMENT_PARAMS >= 1000
