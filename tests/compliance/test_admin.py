"""The middle-office console in the Django admin: every page loads for middle office,
traders never reach it, and every action goes through the services (audited, with who,
before and after)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from compliance import services
from compliance.models import (
    ComplianceResult,
    KillSwitch,
    Locate,
    OverrideRequest,
    RestrictedEntry,
    ReviewItem,
    RuleSetting,
    WatchEntry,
)
from orders import services as order_services
from orders.models import Order
from orders.selectors import MIDDLE_OFFICE_GROUP, TRADER_GROUP
from orders.services import order_override_request, order_submit

from ..factories import UserFactory

pytestmark = pytest.mark.django_db

CONSOLE = ["rulesetting", "restrictedentry", "watchentry", "locate", "killswitch", "overriderequest", "reviewitem"]
ADDABLE = ["rulesetting", "restrictedentry", "watchentry", "locate", "killswitch"]


def url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:compliance_{model}_{view}", args=args)


def console_urls() -> list[str]:
    return (
        [url(m) for m in [*CONSOLE, "complianceresult"]]
        + [url(m, "add") for m in ADDABLE]
        + [url("restrictedentry", "import"), url("watchentry", "import")]
    )


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def later(**delta) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(**delta)


@pytest.fixture
def mo(client, middle_office):
    client.force_login(middle_office)
    return client


@pytest.fixture
def held(submit, trader):
    """A duplicate order, held by the duplicate rule, with the trader's override request."""
    submit()
    order = submit()
    assert order.status == "held"
    override = order_override_request(user=trader, order_id=order.pk, justification="hedging a client fill")
    return order, override


@pytest.fixture
def console_data(submit, held, middle_office, aapl, msft, account):
    """One row of each console record, made through the services."""
    services.restricted_entry_add(user=middle_office, issuer="Acme Corp", reason="merger talks")
    services.watch_entry_add(user=middle_office, symbol="AAPL", reason="rumours")
    submit(quantity=777)  # a watch-list hit -> review item
    locate = Locate(
        account=account, security=aapl, broker="GS", reference="L-1", quantity=1000, expires_at=later(days=1)
    )
    services.console_record_save(user=middle_office, instance=locate, before=None)
    # a switch on a symbol nobody trades here: the held order stays held
    order_services.kill_switch_set(user=middle_office, scope="symbol", target="MSFT", active=True, reason="drill")
    assert ReviewItem.objects.exists()


# --------------------------------------------------------------------- access control
@pytest.mark.parametrize("path", console_urls())
def test_every_console_page_loads_for_middle_office(mo, console_data, path):
    response = mo.get(path)
    assert response.status_code == 200, path


@pytest.mark.parametrize(
    "model, record",
    [
        ("rulesetting", lambda: RuleSetting.objects.first()),
        ("restrictedentry", lambda: RestrictedEntry.objects.first()),
        ("watchentry", lambda: WatchEntry.objects.first()),
        ("locate", lambda: Locate.objects.first()),
        ("killswitch", lambda: KillSwitch.objects.first()),
        ("overriderequest", lambda: OverrideRequest.objects.first()),
        ("reviewitem", lambda: ReviewItem.objects.first()),
        ("complianceresult", lambda: ComplianceResult.objects.first()),
    ],
)
def test_every_record_page_loads_and_nothing_can_be_deleted(mo, console_data, model, record):
    obj = record()
    assert mo.get(url(model, "change", obj.pk)).status_code == 200
    assert mo.get(url(model, "delete", obj.pk)).status_code == 403
    assert mo.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    action_form = mo.get(url(model)).context["action_form"]
    assert action_form is None or "delete_selected" not in dict(action_form.fields["action"].choices)
    assert type(obj).objects.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("model", ["restrictedentry", "watchentry", "killswitch", "overriderequest", "reviewitem"])
def test_records_changed_only_by_actions_are_read_only(mo, console_data, model):
    obj = {
        "restrictedentry": RestrictedEntry,
        "watchentry": WatchEntry,
        "killswitch": KillSwitch,
        "overriderequest": OverrideRequest,
        "reviewitem": ReviewItem,
    }[model].objects.first()
    page = mo.get(url(model, "change", obj.pk))
    assert 'name="_save"' not in page.content.decode()
    assert mo.post(url(model, "change", obj.pk), {"reason": "edited"}).status_code == 403


@pytest.mark.parametrize("path", console_urls())
def test_a_trader_is_sent_to_the_admin_login(client, trader, console_data, path):
    client.force_login(trader)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_a_trader_cannot_post_console_actions(client, trader, console_data, held):
    _order, override = held
    entry = RestrictedEntry.objects.get()
    switch = KillSwitch.objects.get()
    item = ReviewItem.objects.first()
    client.force_login(trader)  # the login itself is audited (auth.login); count after it
    before = AuditEvent.objects.count()
    posts = [
        (url("restrictedentry"), {"action": "end_entries", "_selected_action": [entry.pk]}),
        (url("overriderequest"), {"action": "approve", "_selected_action": [override.pk], "confirm": "yes"}),
        (url("overriderequest"), {"action": "deny", "_selected_action": [override.pk], "confirm": "yes", "note": "no"}),
        (
            url("killswitch"),
            {"action": "release_switches", "_selected_action": [switch.pk], "confirm": "yes", "note": "ok"},
        ),
        (url("reviewitem"), {"action": "resolve", "_selected_action": [item.pk], "confirm": "yes", "note": "ok"}),
        (url("restrictedentry", "add"), {"issuer": "Other Corp", "reason": "x"}),
        (url("killswitch", "add"), {"scope": "firm", "reason": "x"}),
        (url("restrictedentry", "import"), {"file": SimpleUploadedFile("l.csv", b"issuer,reason\nX Corp,y\n")}),
    ]
    for path, data in posts:
        response = client.post(path, data)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    entry.refresh_from_db()
    switch.refresh_from_db()
    override.refresh_from_db()
    assert entry.ended_at is None and switch.active and override.status == "pending"
    assert ReviewItem.objects.filter(resolved_at__isnull=False).count() == 0
    assert AuditEvent.objects.count() == before
    assert not RestrictedEntry.objects.filter(issuer__in=["Other Corp", "X Corp"]).exists()


def test_staff_without_the_decide_permission_cannot_approve(client, held):
    _order, override = held
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_overriderequest"))
    client.force_login(viewer)
    assert client.get(url("overriderequest")).status_code == 200
    client.post(url("overriderequest"), {"action": "approve", "_selected_action": [override.pk], "confirm": "yes"})
    override.refresh_from_db()
    assert override.status == "pending"
    assert not events("override.approved")


# ---------------------------------------------------------------------- rule settings
def rule_form(**fields) -> dict:
    data = {
        "rule": "max_order_quantity",
        "scope": "firm",
        "account": "",
        "trader": "",
        "security": "",
        "issuer": "",
        "enabled": "on",
        "severity": "block",
        "threshold": "",
        "window_seconds": "",
        "note": "",
    }
    data.update(fields)
    return data


def test_rule_setting_form_shows_the_rule_parameters(mo):
    page = mo.get(url("rulesetting", "add")).content.decode()
    assert "threshold = maximum quantity (inclusive)" in page


def test_add_rule_setting_through_the_form(mo, account, middle_office):
    response = mo.post(
        url("rulesetting", "add"),
        rule_form(scope="account", account=account.pk, threshold="5000", note="desk limit"),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    setting = RuleSetting.objects.get(rule="max_order_quantity", scope="account")
    assert setting.account == account and setting.threshold == Decimal("5000")
    assert setting.updated_by == middle_office
    (event,) = events("rulesetting.created")
    assert event.actor == "mo1" and event.before is None
    assert Decimal(event.after["threshold"]) == Decimal("5000") and event.after["account"] == account.pk
    assert event.object_id == str(setting.pk)


def test_change_rule_setting_audits_before_and_after(mo):
    setting = RuleSetting.objects.get(rule="max_order_quantity", scope="firm")
    old = setting.threshold
    response = mo.post(url("rulesetting", "change", setting.pk), rule_form(threshold="2000"))
    assert response.status_code == 302
    setting.refresh_from_db()
    assert setting.threshold == Decimal("2000")
    (event,) = events("rulesetting.changed")
    assert event.actor == "mo1"
    assert Decimal(event.before["threshold"]) == old and Decimal(event.after["threshold"]) == Decimal("2000")


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"scope": "account", "threshold": "10"}, "account", "Required for scope account."),
        ({"scope": "issuer", "threshold": "10"}, "issuer", "Required for scope issuer."),
        ({"threshold": ""}, "threshold", "required"),
        ({"rule": "short_sale", "severity": "warn"}, "severity", "always blocked"),
    ],
)
def test_invalid_rule_setting_shows_the_form_error_and_saves_nothing(mo, fields, field, message):
    before = RuleSetting.objects.count(), AuditEvent.objects.count()
    response = mo.post(url("rulesetting", "add"), rule_form(**fields))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert (RuleSetting.objects.count(), AuditEvent.objects.count()) == before


def test_duplicate_rule_setting_is_a_form_error(mo):
    response = mo.post(url("rulesetting", "add"), rule_form(threshold="10"))
    assert response.status_code == 200
    assert "already exists" in " ".join(response.context["adminform"].form.non_field_errors())
    assert not events("rulesetting.created")


# ---------------------------------------------------------- restricted and watch lists
def entry_form(**fields) -> dict:
    data = {
        "symbol": "",
        "issuer": "",
        "reason": "",
        "effective_from_0": "",
        "effective_from_1": "",
        "effective_to_0": "",
        "effective_to_1": "",
    }
    data.update(fields)
    return data


def test_add_restricted_entry_by_issuer(mo, middle_office):
    response = mo.post(url("restrictedentry", "add"), entry_form(issuer="Acme Corp", reason="merger talks"))
    assert response.status_code == 302
    entry = RestrictedEntry.objects.get()
    assert entry.issuer == "Acme Corp" and entry.security is None and entry.added_by == middle_office
    assert entry.effective_to is None
    (event,) = events("restrictedentry.added")
    assert event.actor == "mo1" and event.after["issuer"] == "Acme Corp"
    assert any("Added issuer Acme Corp" in text for text in texts(response))


def test_add_watch_entry_by_symbol_with_a_period(mo, aapl):
    response = mo.post(
        url("watchentry", "add"),
        entry_form(
            symbol="aapl", reason="rumours", effective_to_0=later(days=2).date().isoformat(), effective_to_1="12:00"
        ),
    )
    assert response.status_code == 302
    entry = WatchEntry.objects.get()
    assert entry.security == aapl and entry.issuer == "Apple Inc." and entry.effective_to is not None
    assert events("watchentry.added")[0].actor == "mo1"


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"symbol": "AAPL", "issuer": "Apple Inc.", "reason": "x"}, None, "not both"),
        ({"symbol": "NOPE", "reason": "x"}, "symbol", "Unknown symbol."),
        ({"issuer": "Acme Corp"}, "reason", "required"),
        ({"reason": "x"}, None, "Give a symbol or an issuer."),
        (
            {"issuer": "Acme", "reason": "x", "effective_to_0": "2001-01-01", "effective_to_1": "00:00"},
            "effective_to",
            "",
        ),
    ],
)
def test_invalid_list_entry_shows_form_errors(mo, aapl, fields, field, message):
    response = mo.post(url("restrictedentry", "add"), entry_form(**fields))
    assert response.status_code == 200
    form = response.context["form"]
    errors = form.non_field_errors() if field is None else form.errors[field]
    assert message in " ".join(errors)
    assert not RestrictedEntry.objects.exists()
    assert not events("restrictedentry.added")


@pytest.mark.parametrize("model", ["restrictedentry", "watchentry"])
def test_end_selected_entries(mo, middle_office, aapl, model):
    add = services.restricted_entry_add if model == "restrictedentry" else services.watch_entry_add
    first = add(user=middle_office, issuer="Acme Corp", reason="x")
    second = add(user=middle_office, symbol="AAPL", reason="y")
    response = mo.post(url(model), {"action": "end_entries", "_selected_action": [first.pk, second.pk]})
    assert response.status_code == 302
    for entry in (first, second):
        entry.refresh_from_db()
        assert entry.ended_by == middle_office and entry.effective_to <= later(seconds=1)
    ended = events(f"{model}.ended")
    assert len(ended) == 2
    assert all(e.actor == "mo1" and e.before["effective_to"] is None and e.after["effective_to"] for e in ended)
    assert type(first).objects.count() == 2  # kept as history
    in_force = mo.get(url(model), {"in_force": "yes"}).context["cl"].result_count
    ended_rows = mo.get(url(model), {"in_force": "no"}).context["cl"].result_count
    assert (in_force, ended_rows) == (0, 2)


def test_list_changelists_offer_the_csv_import(mo):
    for model in ("restrictedentry", "watchentry"):
        assert f'href="{url(model, "import")}"' in mo.get(url(model)).content.decode()


def test_in_force_filter_and_search(mo, middle_office, aapl):
    services.restricted_entry_add(user=middle_office, issuer="Acme Corp", reason="x")
    services.restricted_entry_add(user=middle_office, symbol="AAPL", reason="y", effective_from=later(days=1))
    assert mo.get(url("restrictedentry"), {"in_force": "yes"}).context["cl"].result_count == 1
    assert mo.get(url("restrictedentry"), {"in_force": "no"}).context["cl"].result_count == 1
    assert [e.issuer for e in mo.get(url("restrictedentry"), {"q": "aapl"}).context["cl"].result_list] == ["Apple Inc."]
    assert mo.get(url("restrictedentry"), {"q": "acme"}).context["cl"].result_count == 1


CSV = (
    "symbol,issuer,reason,effective_from,effective_to\n"
    "AAPL,,wall crossed,,\n"
    ",Acme Corp,merger talks,2026-01-01,\n"
    "MSFT,,bad date,yesterday,\n"
    "ZZZZ,,unknown symbol,,\n"
    "MSFT,,,,\n"
    "MSFT,Microsoft,both,,\n"
)


@pytest.mark.parametrize("model", ["restrictedentry", "watchentry"])
def test_csv_import_adds_good_lines_and_reports_bad_ones(mo, aapl, msft, model):
    upload = SimpleUploadedFile("list.csv", CSV.encode(), content_type="text/csv")
    response = mo.post(url(model, "import"), {"file": upload})
    assert response.status_code == 302 and response["Location"] == url(model)
    entries = {"restrictedentry": RestrictedEntry, "watchentry": WatchEntry}[model].objects.all()
    assert sorted(e.issuer for e in entries) == ["Acme Corp", "Apple Inc."]
    assert len(events(f"{model}.added")) == 2
    messages = texts(response)
    assert "Imported 2 entries; 4 bad lines skipped." in messages
    assert any(m.startswith("Line 4: effective_from") for m in messages)
    assert "Line 5: symbol: Unknown symbol." in messages
    assert any(m.startswith("Line 6: reason") for m in messages)
    assert any(m.startswith("Line 7:") and "not both" in m for m in messages)
    assert not [m for m in messages if m.startswith(("Line 2", "Line 3"))]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"symbol,reason\nAAPL,\xff\xfe caf\xe9\n", "not UTF-8"),
        (b"AAPL,wall crossed\nMSFT,other\n", "header"),
        (b"", "empty"),
        (b"symbol,issuer\nAAPL,\n", "header"),
    ],
)
def test_csv_import_unreadable_file_is_an_error_not_a_500(mo, aapl, msft, content, message):
    response = mo.post(url("restrictedentry", "import"), {"file": SimpleUploadedFile("list.csv", content)})
    assert response.status_code == 200
    shown = [*texts(response), *response.context["form"].errors["file"]]
    assert any(message in m for m in shown), shown
    assert not RestrictedEntry.objects.exists()


# ------------------------------------------------------------------------------ locates
def test_add_change_and_end_locate(mo, account, aapl, middle_office):
    expires = later(days=1)
    data = {
        "account": account.pk,
        "security": aapl.pk,
        "broker": "GS",
        "reference": "L-42",
        "quantity": "1000",
        "expires_at_0": expires.date().isoformat(),
        "expires_at_1": "23:00:00",
    }
    response = mo.post(url("locate", "add"), data)
    assert response.status_code == 302
    locate = Locate.objects.get()
    assert locate.created_by == middle_office and locate.quantity == 1000
    (created,) = events("locate.created")
    assert created.actor == "mo1" and created.before is None and created.after["quantity"] == 1000

    response = mo.post(url("locate", "change", locate.pk), {**data, "quantity": "1500"})
    assert response.status_code == 302
    (changed,) = events("locate.changed")
    assert changed.before["quantity"] == 1000 and changed.after["quantity"] == 1500

    listing = mo.get(url("locate"))
    assert "1500" in listing.content.decode()  # quantity and unused

    response = mo.post(url("locate"), {"action": "end_locates", "_selected_action": [locate.pk]})
    assert response.status_code == 302
    locate.refresh_from_db()
    assert locate.ended_at is not None
    (ended,) = events("locate.ended")
    assert ended.actor == "mo1" and ended.before["ended_at"] is None and ended.after["ended_at"]
    # an ended locate is history: read-only
    assert mo.post(url("locate", "change", locate.pk), {**data, "quantity": "9"}).status_code == 403


def test_invalid_locate_is_a_form_error(mo, account, aapl):
    response = mo.post(
        url("locate", "add"),
        {
            "account": account.pk,
            "security": aapl.pk,
            "broker": "GS",
            "reference": "L-1",
            "quantity": "0",
            "expires_at_0": later(days=1).date().isoformat(),
            "expires_at_1": "10:00",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not Locate.objects.exists() and not events("locate.created")


# -------------------------------------------------------------------------- kill switch
def test_kill_switch_add_then_release_with_reason(mo, submit, middle_office):
    working = submit()
    assert working.status == "pending_new"
    response = mo.post(url("killswitch", "add"), {"scope": "account", "target": "ACC-1", "reason": "runaway algo"})
    assert response.status_code == 302
    switch = KillSwitch.objects.get()
    assert switch.active and switch.activated_by == middle_office and switch.cancels_requested == 1
    assert any("1 cancel(s) sent" in m for m in texts(response))
    (activated,) = events("kill_switch.activated")
    assert activated.actor == "mo1" and activated.after["scope"] == "account"
    assert mo.get(url("killswitch"), {"active": "yes"}).context["cl"].result_count == 1

    # the release asks for a reason first
    step = mo.post(url("killswitch"), {"action": "release_switches", "_selected_action": [switch.pk]})
    assert step.status_code == 200 and "Release reason" in step.content.decode()
    refused = mo.post(
        url("killswitch"), {"action": "release_switches", "_selected_action": [switch.pk], "confirm": "yes", "note": ""}
    )
    assert refused.status_code == 200 and refused.context["form"].errors
    switch.refresh_from_db()
    assert switch.active

    response = mo.post(
        url("killswitch"),
        {"action": "release_switches", "_selected_action": [switch.pk], "confirm": "yes", "note": "algo fixed"},
    )
    assert response.status_code == 302
    switch.refresh_from_db()
    assert not switch.active and switch.released_by == middle_office and switch.release_reason == "algo fixed"
    (released,) = events("kill_switch.released")
    assert released.actor == "mo1" and released.before["released_at"] is None and released.after["released_at"]
    assert mo.get(url("killswitch"), {"active": "no"}).context["cl"].result_count == 1


@pytest.mark.parametrize(
    "data, field",
    [
        ({"scope": "account", "target": "NOPE", "reason": "x"}, "target"),
        ({"scope": "firm", "target": "ACC-1", "reason": "x"}, "target"),
        ({"scope": "firm", "target": "", "reason": ""}, "reason"),
    ],
)
def test_invalid_kill_switch_is_a_form_error(mo, account, data, field):
    response = mo.post(url("killswitch", "add"), data)
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert not KillSwitch.objects.exists()


def test_kill_switch_already_on_changes_nothing(mo, middle_office):
    order_services.kill_switch_set(user=middle_office, scope="firm", target="", active=True, reason="drill")
    response = mo.post(url("killswitch", "add"), {"scope": "firm", "target": "", "reason": "again"})
    assert response.status_code == 200
    assert "already on" in " ".join(response.context["form"].non_field_errors())
    assert KillSwitch.objects.count() == 1 and len(events("kill_switch.activated")) == 1


# ---------------------------------------------------------------------- override queue
def test_override_queue_lists_pending_first(mo, held, submit, trader, middle_office):
    _order, pending = held
    submit(quantity=5)
    decided_order = submit(quantity=5)
    decided = order_override_request(user=trader, order_id=decided_order.pk, justification="x")
    order_services.override_deny(user=middle_office, override_id=decided.pk, note="no")
    rows = list(mo.get(url("overriderequest")).context["cl"].result_list)
    assert [r.pk for r in rows] == [pending.pk, decided.pk]
    assert [r.pk for r in mo.get(url("overriderequest"), {"status__exact": "denied"}).context["cl"].result_list] == [
        decided.pk
    ]


def approve(client, override, note=""):
    return client.post(
        url("overriderequest"),
        {"action": "approve", "_selected_action": [override.pk], "confirm": "yes", "note": note},
    )


def test_approve_by_another_middle_office_user_decides_and_audits(mo, held, middle_office):
    _order, override = held
    step = mo.post(url("overriderequest"), {"action": "approve", "_selected_action": [override.pk]})
    assert step.status_code == 200 and "Approve override requests" in step.content.decode()
    override.refresh_from_db()
    assert override.status == "pending"  # the intermediate page changed nothing
    response = approve(mo, override)
    assert response.status_code == 302
    override.refresh_from_db()
    assert override.status == "approved" and override.decided_by == middle_office
    (event,) = events("override.approved")
    assert event.actor == "mo1" and event.before["status"] == "pending" and event.after["status"] == "approved"
    assert any("Approved 1" in m for m in texts(response))


def test_approve_releases_the_held_order(mo, held):
    order, override = held
    assert override.warnings == ["duplicate_order"]
    assert approve(mo, override, note="ok").status_code == 302
    order.refresh_from_db()
    assert order.status == "pending_new"


def test_self_approval_is_refused_with_a_message(client, submit, account):
    both = UserFactory(username="both2", is_staff=True)
    both.groups.add(
        Group.objects.get_or_create(name=TRADER_GROUP)[0], Group.objects.get_or_create(name=MIDDLE_OFFICE_GROUP)[0]
    )
    account.traders.add(both)
    submit(user=both)
    order = submit(user=both)
    assert order.status == "held"
    override = order_override_request(user=both, order_id=order.pk, justification="mine")
    client.force_login(both)
    before = AuditEvent.objects.count()
    response = approve(client, override, note="ok")
    assert response.status_code == 302
    messages = texts(response)
    assert any(f"Override #{override.pk}" in m and "Four eyes" in m for m in messages), messages
    override.refresh_from_db()
    order.refresh_from_db()
    assert override.status == "pending" and order.status == "held"
    assert AuditEvent.objects.count() == before


def test_deny_needs_a_note_and_rejects_the_order(mo, held, middle_office):
    order, override = held
    step = mo.post(url("overriderequest"), {"action": "deny", "_selected_action": [override.pk]})
    assert step.status_code == 200
    refused = mo.post(
        url("overriderequest"), {"action": "deny", "_selected_action": [override.pk], "confirm": "yes", "note": " "}
    )
    assert refused.status_code == 200 and refused.context["form"].errors["note"]
    override.refresh_from_db()
    assert override.status == "pending"

    response = mo.post(
        url("overriderequest"),
        {"action": "deny", "_selected_action": [override.pk], "confirm": "yes", "note": "not a hedge"},
    )
    assert response.status_code == 302
    override.refresh_from_db()
    order.refresh_from_db()
    assert override.status == "denied" and override.decision_note == "not a hedge"
    assert order.status == "rejected"
    (event,) = events("override.denied")
    assert event.actor == "mo1" and event.before["status"] == "pending" and event.after["status"] == "denied"


def test_expired_and_already_decided_overrides_are_error_messages(mo, held, middle_office):
    order, override = held
    OverrideRequest.objects.filter(pk=override.pk).update(expires_at=later(seconds=-1))
    response = mo.post(
        url("overriderequest"), {"action": "approve", "_selected_action": [override.pk], "confirm": "yes"}
    )
    assert response.status_code == 302
    assert any("expired" in m for m in texts(response))
    override.refresh_from_db()
    order.refresh_from_db()
    assert override.status == "expired" and order.status == "held"

    again = mo.post(
        url("overriderequest"), {"action": "deny", "_selected_action": [override.pk], "confirm": "yes", "note": "n"}
    )
    assert again.status_code == 302
    assert any("already expired" in m for m in texts(again))
    order.refresh_from_db()
    assert order.status == "held"


# ------------------------------------------------------------------------- review items
def test_resolve_review_item(mo, submit, middle_office):
    services.watch_entry_add(user=middle_office, symbol="AAPL", reason="rumours")
    submit()
    item = ReviewItem.objects.get()
    assert mo.get(url("reviewitem"), {"resolved": "no"}).context["cl"].result_count == 1
    step = mo.post(url("reviewitem"), {"action": "resolve", "_selected_action": [item.pk]})
    assert step.status_code == 200
    response = mo.post(
        url("reviewitem"), {"action": "resolve", "_selected_action": [item.pk], "confirm": "yes", "note": "checked"}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.resolved_by == middle_office and item.resolution_note == "checked"
    (event,) = events("review_item.resolved")
    assert event.actor == "mo1" and event.before["resolved_at"] is None and event.after["resolved_at"]
    assert mo.get(url("reviewitem"), {"resolved": "yes"}).context["cl"].result_count == 1
    # resolving again is an error message, not a 500
    again = mo.post(
        url("reviewitem"), {"action": "resolve", "_selected_action": [item.pk], "confirm": "yes", "note": "again"}
    )
    assert again.status_code == 302 and any("already resolved" in m for m in texts(again))


# -------------------------------------------------------------------- compliance results
def test_compliance_result_filters(mo, submit, other_trader, other_account, aapl):
    submit()
    held = submit()
    other, _ = order_submit(
        user=other_trader,
        client_order_id="O-1",
        account=other_account.code,
        symbol=aapl.symbol,
        side="BUY",
        quantity=300,
        order_type="LIMIT",
        limit_price=Decimal("175.50"),
    )

    def rows(**params) -> set[tuple[int, str, str]]:
        response = mo.get(url("complianceresult"), params)
        assert response.status_code == 200
        return {(r.order_id, r.rule, r.outcome) for r in response.context["cl"].queryset}

    all_rows = rows()
    assert {order_id for order_id, _, _ in all_rows} == set(Order.objects.values_list("pk", flat=True))
    assert {o for o, _, _ in rows(order__account__id__exact=other_account.pk)} == {other.pk}
    assert rows(outcome__exact="warn") == {(held.pk, "duplicate_order", "warn")}
    assert {(o, outcome) for o, _, outcome in rows(rule="duplicate_order")} == {
        (o, outcome) for o, rule, outcome in all_rows if rule == "duplicate_order"
    }
    today = dt.datetime.now(dt.UTC).date()
    assert rows(evaluated_at__year=today.year, evaluated_at__month=today.month, evaluated_at__day=today.day) == all_rows
    tomorrow = today + dt.timedelta(days=1)
    assert rows(evaluated_at__gte=f"{tomorrow} 00:00:00+00:00") == set()
    assert rows(evaluated_at__gte=f"{today} 00:00:00+00:00", evaluated_at__lt=f"{tomorrow} 00:00:00+00:00") == all_rows


@pytest.mark.parametrize("model", ["complianceresult", "overriderequest", "reviewitem", "restrictedentry"])
def test_changelist_queries_do_not_grow_with_rows(mo, submit, trader, middle_office, model):
    services.watch_entry_add(user=middle_office, symbol="AAPL", reason="rumours")

    def add_rows(quantity):
        submit(quantity=quantity)
        held = submit(quantity=quantity)
        order_override_request(user=trader, order_id=held.pk, justification="x")
        services.restricted_entry_add(user=middle_office, issuer=f"Issuer {quantity}", reason="x")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert mo.get(url(model)).status_code == 200
        return len(captured)

    add_rows(11)
    few = queries()
    add_rows(12)
    add_rows(13)
    assert queries() == few
