"""Management commands of the orders app: seed_demo (idempotent demo data),
load_securities (upsert the security master from CSV), and drf_create_token for a
seeded user (DESIGN.md §8)."""

from __future__ import annotations

import re
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEvent
from oms_site.roles import PORTFOLIO_MANAGER_GROUP
from orders.models import Account, AssetClass, Order, Security
from orders.selectors import MIDDLE_OFFICE_GROUP, TRADER_GROUP, accounts_tradable_by, accounts_visible_to
from routing.models import OutboundMessage, Venue
from tests.factories import SecurityFactory

pytestmark = pytest.mark.django_db

User = get_user_model()


# ------------------------------------------------------------------------- seed_demo
def seed(**options) -> dict[str, str]:
    """Run seed_demo and return the printed ``{username: password}``."""
    out = StringIO()
    call_command("seed_demo", stdout=out, **options)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Demo data ready. Users and passwords:"
    return {line.split()[0]: line.split()[1] for line in lines[1:] if line.strip()}


def demo_state() -> dict:
    return {
        "users": sorted(User.objects.values_list("username", flat=True)),
        "accounts": sorted(Account.objects.values_list("code", "name", "active")),
        "securities": sorted(Security.objects.values_list("symbol", "asset_class", "reference_price", "active")),
        "venues": sorted(Venue.objects.values_list("code", "enabled")),
        "groups": sorted(Group.objects.values_list("name", flat=True)),
        "memberships": sorted(User.groups.through.objects.values_list("user__username", "group__name")),
        "traders": sorted(Account.traders.through.objects.values_list("account__code", "user__username")),
    }


@pytest.fixture
def demo_settings(settings, monkeypatch):
    settings.DEBUG = True  # pytest-django runs with DEBUG off; seed_demo refuses then
    monkeypatch.delenv("OMS_DEMO_PASSWORD", raising=False)
    return settings


def test_seed_demo_creates_the_demo_world(demo_settings):
    passwords = seed()

    assert set(passwords) == {"trader1", "trader2", "pm1", "mo1", "mo2", "admin"}
    assert sorted(User.objects.values_list("username", flat=True)) == [
        "admin",
        "mo1",
        "mo2",
        "pm1",
        "trader1",
        "trader2",
    ]
    assert sorted(Account.objects.values_list("code", flat=True)) == ["ACC-1", "ACC-2", "ACC-3"]
    assert Security.objects.filter(active=True).count() >= 20
    assert {"AAPL", "MSFT", "SPY"} <= set(Security.objects.values_list("symbol", flat=True))
    assert Security.objects.get(symbol="SPY").asset_class == AssetClass.ETF
    assert Security.objects.get(symbol="AAPL").reference_price == Decimal("175.50")
    sim = Venue.objects.get()
    assert (sim.code, sim.enabled, sim.sender_comp_id, sim.target_comp_id) == ("SIM", True, "OMS", "SIM")

    trader1, trader2, mo1, admin = (User.objects.get(username=u) for u in ("trader1", "trader2", "mo1", "admin"))
    assert set(accounts_tradable_by(user=trader1).values_list("code", flat=True)) == {"ACC-1", "ACC-2"}
    assert set(accounts_tradable_by(user=trader2).values_list("code", flat=True)) == {"ACC-3"}
    assert not accounts_tradable_by(user=mo1).exists()
    assert accounts_visible_to(user=mo1).count() == 3
    assert list(trader1.groups.values_list("name", flat=True)) == [TRADER_GROUP]
    assert list(trader2.groups.values_list("name", flat=True)) == [TRADER_GROUP]
    assert list(mo1.groups.values_list("name", flat=True)) == [MIDDLE_OFFICE_GROUP]
    pm1 = User.objects.get(username="pm1")
    assert list(pm1.groups.values_list("name", flat=True)) == [PORTFOLIO_MANAGER_GROUP]
    assert set(accounts_tradable_by(user=pm1).values_list("code", flat=True)) == {"ACC-1", "ACC-2", "ACC-3"}
    assert (mo1.is_staff, mo1.is_superuser) == (True, False)
    assert (admin.is_staff, admin.is_superuser) == (True, True)
    assert (trader1.is_staff, trader1.is_superuser) == (False, False)
    assert mo1.has_perm("orders.view_order") and not mo1.has_perm("orders.change_order")

    for username, password in passwords.items():
        assert authenticate(username=username, password=password) == User.objects.get(username=username)
        assert authenticate(username=username, password=password + "x") is None


def test_seed_demo_twice_is_idempotent(demo_settings):
    first_passwords = seed()
    first = demo_state()
    last_event_id = AuditEvent.objects.latest("id").pk

    second_passwords = seed()

    assert demo_state() == first  # same rows
    # and the only new audit events are the reference prices stamped afresh (every write is audited)
    again = AuditEvent.objects.filter(pk__gt=last_event_id)
    assert {(e.action, e.actor, e.details["via"], tuple(e.details["changed_fields"])) for e in again} == {
        ("security.changed", "system:seed_demo", "seed_demo", ("reference_price_at",))
    }
    assert again.count() == Security.objects.count()
    assert second_passwords == first_passwords
    for username, password in second_passwords.items():
        assert authenticate(username=username, password=password) is not None


def test_seed_demo_audits_what_it_creates_as_the_admin_does(demo_settings):
    seed()

    def created(object_type, object_id):
        (event,) = AuditEvent.objects.filter(object_type=object_type, object_id=object_id)
        assert (event.action, event.actor, event.before) == (f"{object_type}.created", "system:seed_demo", None)
        assert event.details == {"via": "seed_demo"}
        return event.after

    sim, acc1, aapl = created("venue", "SIM"), created("account", "ACC-1"), created("security", "AAPL")
    assert set(sim) == {f.name for f in Venue._meta.concrete_fields} and sim["target_comp_id"] == "SIM"
    assert set(acc1) == {"id", "code", "name", "active", "traders"} and acc1["traders"] == ["pm1", "trader1"]
    assert set(aapl) == {f.name for f in Security._meta.concrete_fields}
    assert Decimal(aapl["reference_price"]) == Decimal("175.50")


def test_seed_demo_restores_drifted_demo_data(demo_settings):
    passwords = seed()
    trader1 = User.objects.get(username="trader1")
    trader1.set_password("changed-Pass-9")
    trader1.save()
    Security.objects.filter(symbol="AAPL").update(reference_price=Decimal("1"), active=False)
    Venue.objects.filter(code="SIM").update(enabled=False)
    Account.objects.get(code="ACC-2").traders.remove(trader1)

    seed()

    assert authenticate(username="trader1", password=passwords["trader1"]) == trader1
    assert Security.objects.filter(symbol="AAPL", reference_price=Decimal("175.50"), active=True).exists()
    assert Venue.objects.get(code="SIM").enabled
    assert set(accounts_tradable_by(user=trader1).values_list("code", flat=True)) == {"ACC-1", "ACC-2"}


def test_seed_demo_password_from_environment(demo_settings, monkeypatch):
    monkeypatch.setenv("OMS_DEMO_PASSWORD", "Env-Demo-Pass-42")

    passwords = seed()

    assert set(passwords.values()) == {"Env-Demo-Pass-42"}
    assert authenticate(username="trader2", password="Env-Demo-Pass-42") is not None


def test_seed_demo_refuses_with_debug_off(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo", stdout=StringIO())

    assert not User.objects.exists()
    assert not Security.objects.exists()
    assert not Venue.objects.exists()


def test_seed_demo_force_with_debug_off(settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.delenv("OMS_DEMO_PASSWORD", raising=False)

    passwords = seed(force=True)

    assert set(passwords) == {"trader1", "trader2", "pm1", "mo1", "mo2", "admin"}


def test_drf_create_token_after_seed_demo_gives_a_working_token(demo_settings):
    seed()
    out = StringIO()

    call_command("drf_create_token", "trader1", stdout=out)

    token = Token.objects.get(user__username="trader1")
    assert out.getvalue().strip() == f"Generated token {token.key} for user trader1"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.post(
        "/api/v1/orders/",
        {
            "client_order_id": "SEEDED-1",
            "account": "ACC-2",
            "symbol": "MSFT",
            "side": "BUY",
            "quantity": 100,
            "order_type": "LIMIT",
            "limit_price": "415.00",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["status"], response.json()["venue"]) == ("pending_new", "SIM")
    assert Order.objects.get().created_by.username == "trader1"
    assert OutboundMessage.objects.get().msg_type == "D"
    assert client.get("/api/v1/orders/").json()["count"] == 1

    again = StringIO()
    call_command("drf_create_token", "trader1", stdout=again)
    assert token.key in again.getvalue()  # the same token, not a new one
    assert Token.objects.filter(user__username="trader1").count() == 1


def test_drf_create_token_for_unknown_user_fails(demo_settings):
    seed()

    with pytest.raises(CommandError, match="nobody"):
        call_command("drf_create_token", "nobody", stdout=StringIO())
    assert not Token.objects.exists()


# ------------------------------------------------------------------- load_securities
def load(path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("load_securities", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write(tmp_path, text: str, name: str = "securities.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


MIXED_CSV = """symbol,name,currency,reference_price,asset_class,lot_size,active,issuer
NEWCO,New Company,USD,12.34,EQUITY,1,true,NewCo Holdings
aapl,Apple Inc. (updated),usd,180.00,EQUITY,1,true,Apple Inc.
BAD1,,USD,1.00,,,,
BAD2,Bad Two,US,1.00,,,,
BAD3,Bad Three,USD,-5,,,,
BAD4,Bad Four,USD,1.123456789,,,,
BAD5,Bad Five,USD,1,CRYPTO,,,
BAD6,Bad Six,USD,1,,0,,
BAD7,Bad Seven,USD,1,,,maybe,
,No Symbol,USD,1,,,,
ETFX,Some ETF,eur,50,etf,100,no,
"""


def test_load_securities_upserts_good_rows_and_reports_bad_ones(tmp_path, aapl):
    out, err = load(write(tmp_path, MIXED_CSV))

    assert out.strip() == "2 created, 1 updated, 8 rejected"
    reported = dict(re.fullmatch(r"line (\d+): (.*)", line).groups() for line in err.strip().splitlines())
    assert {int(line) for line in reported} == set(range(4, 12))
    expected_field = {4: "name", 5: "currency", 6: "reference_price", 7: "reference_price", 8: "asset_class"}
    expected_field |= {9: "lot_size", 10: "active", 11: "symbol"}
    for line, field in expected_field.items():
        assert reported[str(line)].startswith(f"{field}:"), (line, reported[str(line)])

    assert sorted(Security.objects.values_list("symbol", flat=True)) == ["AAPL", "ETFX", "NEWCO"]
    newco = Security.objects.get(symbol="NEWCO")
    assert (newco.name, newco.issuer, newco.currency, newco.reference_price, newco.lot_size, newco.active) == (
        "New Company",
        "NewCo Holdings",
        "USD",
        Decimal("12.34"),
        1,
        True,
    )
    assert newco.reference_price_at is not None
    etf = Security.objects.get(symbol="ETFX")
    assert (etf.asset_class, etf.currency, etf.lot_size, etf.active) == ("ETF", "EUR", 100, False)
    aapl.refresh_from_db()
    assert (aapl.pk, aapl.name, aapl.reference_price) == (aapl.pk, "Apple Inc. (updated)", Decimal("180.00"))

    events = AuditEvent.objects.filter(object_type="security").order_by("id")
    assert [(e.action, e.object_id, e.actor) for e in events] == [
        ("security.created", "NEWCO", "system:load_securities"),
        ("security.changed", "AAPL", "system:load_securities"),
        ("security.created", "ETFX", "system:load_securities"),
    ]
    assert Decimal(events[1].before["reference_price"]) == Decimal("175.50")
    assert Decimal(events[1].after["reference_price"]) == Decimal("180.00")


def test_load_securities_audits_as_the_admin_does(tmp_path, aapl):
    load(write(tmp_path, "symbol,name,currency,reference_price\nAAPL,Apple Inc.,USD,180.00\nNEWCO,New Co,USD,1\n"))

    changed, created = AuditEvent.objects.filter(object_type="security").order_by("id")
    assert (changed.action, changed.details["via"]) == ("security.changed", "csv")
    assert changed.details["changed_fields"] == ["reference_price", "reference_price_at"]
    assert set(changed.before) == set(changed.after) == {f.name for f in Security._meta.concrete_fields}
    assert (created.action, created.details, created.after["issuer"]) == ("security.created", {"via": "csv"}, "New Co")


def test_load_securities_twice_updates_instead_of_duplicating(tmp_path):
    path = write(tmp_path, "symbol,name,currency,reference_price\nNEWCO,New Company,USD,12.34\n")

    assert load(path) == ("1 created, 0 updated, 0 rejected\n", "")
    assert load(path) == ("0 created, 1 updated, 0 rejected\n", "")
    assert Security.objects.filter(symbol="NEWCO").count() == 1


def test_load_securities_accepts_bom_and_loose_header(tmp_path):
    path = write(
        tmp_path, " Symbol , NAME ,Currency,Reference_Price,note\nbom,Bom Inc,USD,2.5,ignored\n", encoding="utf-8-sig"
    )

    out, err = load(path)

    assert (out, err) == ("1 created, 0 updated, 0 rejected\n", "")
    assert Security.objects.get(symbol="BOM").reference_price == Decimal("2.5")


def test_load_securities_update_keeps_optional_fields_the_file_does_not_give(tmp_path):
    SecurityFactory(symbol="SPY", issuer="State Street", asset_class=AssetClass.ETF, lot_size=10, active=False)
    path = write(tmp_path, "symbol,name,currency,reference_price\nSPY,SPDR S&P 500 ETF Trust,USD,550.00\n")

    assert load(path)[0] == "0 created, 1 updated, 0 rejected\n"

    spy = Security.objects.get(symbol="SPY")
    assert spy.reference_price == Decimal("550.00")
    assert (spy.issuer, spy.asset_class, spy.lot_size, spy.active) == ("State Street", "ETF", 10, False)


def test_load_securities_missing_file_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        load(tmp_path / "absent.csv")
    assert not Security.objects.exists()


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("symbol,name,currency", "reference_price"),
        ("symbol,currency,reference_price", "name"),
        ("ticker,name,ccy,price", "symbol, currency, reference_price"),
    ],
)
def test_load_securities_missing_required_column_is_a_command_error(tmp_path, header, missing):
    path = write(tmp_path, f"{header}\nAAA,Aaa,USD,1\n")

    with pytest.raises(CommandError, match=f"missing column\\(s\\): {missing}$"):
        load(path)
    assert not Security.objects.exists()
    assert not AuditEvent.objects.exists()


def test_load_securities_empty_file_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="missing column"):
        load(write(tmp_path, ""))


def test_load_securities_only_bad_rows_is_a_command_error(tmp_path):
    path = write(tmp_path, "symbol,name,currency,reference_price\nAAA,,USD,1\nBBB,Bbb,USD,zero\n")
    err = StringIO()

    with pytest.raises(CommandError, match="no valid rows"):
        call_command("load_securities", str(path), stdout=StringIO(), stderr=err)

    assert err.getvalue().splitlines() == [
        "line 2: name: required",
        "line 3: reference_price: Enter a valid decimal number.",
    ]
    assert not Security.objects.exists()


def test_load_securities_not_utf8_is_a_command_error(tmp_path):
    path = write(tmp_path, "symbol,name,currency,reference_price\nSOC,Soci\u00e9t\u00e9,EUR,1\n", encoding="latin-1")

    with pytest.raises(CommandError, match="not UTF-8"):
        load(path)
    assert not Security.objects.exists()


def test_load_securities_encoding_error_late_in_the_file_is_all_or_reported(tmp_path):
    good = "".join(f"S{n},Security {n},USD,1\n" for n in range(2000))  # well past one read buffer
    path = tmp_path / "late.csv"
    path.write_bytes(
        ("symbol,name,currency,reference_price\n" + good).encode() + "SOC,Soci\u00e9t\u00e9,EUR,1\n".encode("latin-1")
    )
    err = StringIO()

    try:
        call_command("load_securities", str(path), stdout=StringIO(), stderr=err)
    except CommandError:
        assert Security.objects.count() == 0  # rejected as a whole: nothing loaded
    else:
        assert Security.objects.count() == 2000  # or every good row kept, the bad line reported
        assert "line 2002" in err.getvalue()
