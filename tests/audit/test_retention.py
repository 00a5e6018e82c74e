"""Retention: policies per record type, legal holds, and the purge of the oldest part
of the sealed chain, which refuses anything younger than its retention or held."""

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from audit.models import AuditAnchor, AuditEvent, AuditSeal, LegalHold, RetentionPolicy
from audit.retention import (
    audit_purge,
    legal_hold_change,
    legal_hold_place,
    legal_hold_release,
    retention_policy_set,
    retention_years,
)
from audit.services import audit_event_record, audit_seal
from audit.verify import chain_verify
from oms_site.errors import NotPermitted
from tests.factories import UserFactory

pytestmark = pytest.mark.postgres

NOW = dt.datetime.now(dt.UTC)
TEN_YEARS_AGO = NOW - dt.timedelta(days=3653)
TOMORROW = (NOW + dt.timedelta(days=1)).date().isoformat()


def record(n: int, *, when: dt.datetime, object_type: str = "thing", first: int = 0) -> list[AuditEvent]:
    return [
        audit_event_record(
            actor="tester",
            action=f"{object_type}.changed",
            object_type=object_type,
            object_id=first + i,
            after={"n": first + i, "px": "1.50"},
            occurred_at=when + dt.timedelta(seconds=i),
        )
        for i in range(n)
    ]


def purge(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("purge_audit", *args, stdout=out)
    return out.getvalue()


def seal_all() -> None:
    while audit_seal():
        pass


@pytest.fixture
def keeper(db):
    """Middle office with the retention grants (compliance.roles grants them in production)."""
    user = UserFactory(username="keeper", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="audit",
            codename__in=["add_legalhold", "change_legalhold", "add_retentionpolicy", "change_retentionpolicy"],
        )
    )
    return user


# ------------------------------------------------------------------------ the purge
def test_purge_removes_the_old_prefix_and_the_chain_still_verifies(db, capsys):
    old = record(5, when=TEN_YEARS_AGO)
    recent = record(2, when=NOW - dt.timedelta(days=30))
    seal_all()

    out = purge("--before", TOMORROW)

    assert out.startswith("5 purged")
    assert f"stopped at event {recent[0].pk} because it is younger than its retention (7 years for 'thing'" in out
    assert not AuditEvent.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert not AuditSeal.objects.filter(event_id__in=[e.pk for e in old]).exists()
    anchor = AuditAnchor.objects.get()
    assert (anchor.seq, anchor.last_event_id, anchor.purged_events) == (5, old[-1].pk, 5)
    assert anchor.actor == "system:purge_audit"
    purged = AuditEvent.objects.get(action="audit.purged")
    assert purged.object_id == str(anchor.pk)
    assert purged.details["purged_events"] == 5
    assert (purged.details["first_event_id"], purged.details["last_event_id"]) == (old[0].pk, old[-1].pk)
    assert purged.details["anchor"] == {"id": anchor.pk, "seq": 5, "hash": anchor.hash}

    call_command("verify_audit")  # seals the purge's own event, verifies from the anchor

    assert "audit chain OK: 3 events verified" in capsys.readouterr().out
    assert purged.seal.seq == 8  # sealed later, after the survivors (#6, #7)
    assert chain_verify().ok


def test_a_second_purge_continues_from_the_anchor(db):
    first = record(3, when=TEN_YEARS_AGO)
    seal_all()
    assert purge("--before", TOMORROW).startswith("3 purged")
    seal_all()  # the audit.purged event: young, so it stops the next purge

    out = purge("--before", TOMORROW)

    purged_event = AuditEvent.objects.get(action="audit.purged")
    assert out.startswith(f"nothing eligible: event {purged_event.pk} because it is younger than its retention")
    assert AuditAnchor.objects.count() == 1 and first[-1].pk < purged_event.pk
    assert chain_verify().ok


def test_events_younger_than_their_retention_stay(db):
    events = record(3, when=NOW - dt.timedelta(days=3 * 365))
    seal_all()

    out = purge("--before", TOMORROW)

    assert out.startswith(f"nothing eligible: event {events[0].pk} because it is younger than its retention")
    assert "7 years for 'thing'" in out
    assert AuditEvent.objects.count() == 3 and AuditSeal.objects.count() == 3
    assert not AuditAnchor.objects.exists()
    assert not AuditEvent.objects.filter(action="audit.purged").exists()


def test_a_policy_per_record_type_decides(db, keeper):
    things = record(2, when=NOW - dt.timedelta(days=3 * 365))
    orders = record(2, when=NOW - dt.timedelta(days=3 * 365) + dt.timedelta(minutes=1), object_type="order")
    retention_policy_set(user=keeper, record_type="thing", years=2, note="test")
    retention_policy_set(user=keeper, record_type="*", years=10)
    seal_all()

    out = purge("--before", TOMORROW)

    assert out.startswith("2 purged")
    assert f"stopped at event {orders[0].pk} because it is younger than its retention (10 years for 'order'" in out
    assert not AuditEvent.objects.filter(pk__in=[e.pk for e in things]).exists()
    assert retention_years("fix_session") == 10 and retention_years("thing") == 2


def test_nothing_at_or_after_the_before_date_is_purged(db):
    events = record(4, when=TEN_YEARS_AGO)
    seal_all()
    cutoff = events[2].occurred_at

    result = audit_purge(before=cutoff, actor="tester")

    assert result.purged == 2 and result.stopped_at == events[2].pk
    assert result.reason.startswith("because it is not before")
    assert list(AuditEvent.objects.filter(action="thing.changed").values_list("pk", flat=True)) == [
        events[2].pk,
        events[3].pk,
    ]


def test_unsealed_events_stop_the_purge(db):
    sealed = record(2, when=TEN_YEARS_AGO)
    seal_all()
    unsealed = record(1, when=TEN_YEARS_AGO + dt.timedelta(minutes=1), first=2)

    result = audit_purge(before=NOW, actor="tester")

    assert result.purged == 2 and result.stopped_at == unsealed[0].pk and "not sealed" in result.reason
    assert not AuditEvent.objects.filter(pk__in=[e.pk for e in sealed]).exists()


def test_a_legal_hold_stops_the_purge_at_the_held_event(db, keeper):
    events = record(5, when=TEN_YEARS_AGO)
    hold = legal_hold_place(user=keeper, object_type="thing", object_id=2, reason="SEC inquiry 2026-17")
    seal_all()

    out = purge("--before", TOMORROW)

    assert out.startswith("2 purged")
    assert f"stopped at event {events[2].pk} because it is under legal hold #{hold.pk}" in out
    assert "SEC inquiry 2026-17" in out
    assert AuditEvent.objects.filter(pk__in=[e.pk for e in events[2:]]).count() == 3
    assert chain_verify().ok

    legal_hold_release(user=keeper, hold_id=hold.pk)
    seal_all()

    assert purge("--before", TOMORROW).startswith("3 purged")
    assert chain_verify().ok


def test_a_type_wide_hold_stops_the_purge_at_the_first_event_of_the_type(db, keeper):
    things = record(2, when=TEN_YEARS_AGO)
    accounts = record(2, when=TEN_YEARS_AGO + dt.timedelta(minutes=1), object_type="account")
    record(1, when=TEN_YEARS_AGO + dt.timedelta(minutes=2), first=5)
    hold = legal_hold_place(user=keeper, object_type="account", reason="litigation hold")
    seal_all()

    result = audit_purge(before=NOW, actor="tester")

    assert result.purged == 2 and result.stopped_at == accounts[0].pk
    assert f"legal hold #{hold.pk} (every account: litigation hold)" in result.reason
    assert not AuditEvent.objects.filter(pk__in=[e.pk for e in things]).exists()


def test_a_released_hold_does_not_stop_the_purge(db, keeper):
    record(2, when=TEN_YEARS_AGO)
    hold = legal_hold_place(user=keeper, object_type="thing", reason="closed matter")
    legal_hold_release(user=keeper, hold_id=hold.pk)
    seal_all()

    assert audit_purge(before=NOW, actor="tester").purged == 2


def test_dry_run_deletes_nothing(db):
    events = record(3, when=TEN_YEARS_AGO)
    seal_all()

    out = purge("--before", TOMORROW, "--dry-run")

    assert out.startswith("3 would be purged (dry run)")
    assert AuditEvent.objects.count() == 3 and AuditSeal.objects.count() == 3
    assert not AuditAnchor.objects.exists()
    assert not AuditEvent.objects.filter(action="audit.purged").exists()
    assert events[0].pk in AuditEvent.objects.values_list("pk", flat=True)


def test_a_tampered_prefix_refuses_the_whole_purge(db):
    events = record(4, when=TEN_YEARS_AGO)
    seal_all()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE audit_auditevent SET actor = 'mallory' WHERE id = %s", [events[2].pk])

    with pytest.raises(CommandError, match=f"nothing deleted: event {events[2].pk} .*content was changed"):
        purge("--before", TOMORROW)

    assert AuditEvent.objects.count() == 4 and not AuditAnchor.objects.exists()


def test_a_delete_without_the_purge_setting_still_fails(db):
    record(3, when=TEN_YEARS_AGO)
    seal_all()
    purge("--before", TOMORROW, "--dry-run")
    audit_purge(before=TEN_YEARS_AGO + dt.timedelta(seconds=1), actor="tester")  # purges one, same transaction
    record(1, when=TEN_YEARS_AGO)
    seal_all()

    for statement in ("DELETE FROM audit_auditseal", "DELETE FROM audit_auditevent", "DELETE FROM audit_auditanchor"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)

    assert AuditEvent.objects.count() == 4 and AuditAnchor.objects.count() == 1


def test_bad_before_date_is_a_command_error(db):
    with pytest.raises(CommandError, match="not a date"):
        purge("--before", "last year")


# ------------------------------------------------------------------ policies and holds
def test_policy_and_hold_changes_are_audited_with_who_before_and_after(db, keeper):
    policy = retention_policy_set(user=keeper, record_type="order", years=8, note="MiFIR + margin")
    retention_policy_set(user=keeper, record_type="order", years=9)
    hold = legal_hold_place(user=keeper, object_type="order", object_id="42", reason="subpoena")
    legal_hold_change(user=keeper, hold_id=hold.pk, reason="subpoena 2026-3")
    legal_hold_release(user=keeper, hold_id=hold.pk)
    legal_hold_release(user=keeper, hold_id=hold.pk)  # twice: nothing more

    events = list(AuditEvent.objects.filter(object_type__in=["retentionpolicy", "legalhold"]).order_by("id"))
    assert [e.action for e in events] == [
        "retentionpolicy.created",
        "retentionpolicy.changed",
        "legalhold.placed",
        "legalhold.changed",
        "legalhold.released",
    ]
    assert {e.actor for e in events} == {"keeper"}
    assert events[0].before is None and events[0].after["years"] == 8
    assert (events[1].before["years"], events[1].after["years"]) == (8, 9)
    assert events[1].object_id == str(policy.pk)
    assert events[3].before["reason"] == "subpoena" and events[3].after["reason"] == "subpoena 2026-3"
    assert events[4].before["released_at"] is None and events[4].after["released_by"] == keeper.pk
    hold.refresh_from_db()
    assert not hold.active and hold.released_by == keeper


def test_only_permitted_users_manage_retention(db, trader):
    with pytest.raises(NotPermitted):
        legal_hold_place(user=trader, object_type="order", reason="x")
    with pytest.raises(NotPermitted):
        retention_policy_set(user=trader, record_type="*", years=1)
    assert not LegalHold.objects.exists() and not RetentionPolicy.objects.exists()
    assert not AuditEvent.objects.exists()


def test_policies_and_holds_are_never_deleted(db, keeper):
    policy = retention_policy_set(user=keeper, record_type="*", years=7)
    hold = legal_hold_place(user=keeper, object_type="order", reason="x")
    for obj in (policy, hold):
        with pytest.raises(PermissionError):
            obj.delete()
        with pytest.raises(PermissionError):
            type(obj).objects.all().delete()


def test_admin_places_changes_and_releases_holds(db, keeper):
    from django.test import Client

    client = Client()
    client.force_login(keeper)

    response = client.post(
        reverse("admin:audit_legalhold_add"), {"object_type": "order", "object_id": "7", "reason": "subpoena"}
    )
    assert response.status_code == 302, response.content
    hold = LegalHold.objects.get()
    assert (hold.placed_by, hold.object_id, hold.active) == (keeper, "7", True)

    response = client.post(reverse("admin:audit_legalhold_change", args=[hold.pk]), {"reason": "subpoena, amended"})
    assert response.status_code == 302, response.content

    response = client.post(
        reverse("admin:audit_legalhold_changelist"), {"action": "release_holds", "_selected_action": [hold.pk]}
    )
    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.reason == "subpoena, amended" and hold.released_by == keeper
    assert list(AuditEvent.objects.filter(object_type="legalhold").values_list("action", flat=True)) == [
        "legalhold.placed",
        "legalhold.changed",
        "legalhold.released",
    ]
    assert client.get(reverse("admin:audit_legalhold_delete", args=[hold.pk])).status_code == 403
    assert "delete_selected" not in client.get(reverse("admin:audit_legalhold_changelist")).content.decode()


def test_admin_sets_policies(db, keeper):
    from django.test import Client

    client = Client()
    client.force_login(keeper)

    response = client.post(reverse("admin:audit_retentionpolicy_add"), {"record_type": "order", "years": "8"})
    assert response.status_code == 302, response.content
    policy = RetentionPolicy.objects.get()
    response = client.post(reverse("admin:audit_retentionpolicy_change", args=[policy.pk]), {"years": "9", "note": "x"})
    assert response.status_code == 302, response.content
    policy.refresh_from_db()
    assert (policy.record_type, policy.years, policy.updated_by) == ("order", 9, keeper)
    response = client.post(reverse("admin:audit_retentionpolicy_add"), {"record_type": "fix_session", "years": "0"})
    assert response.status_code == 200 and RetentionPolicy.objects.count() == 1  # form error, nothing saved
    assert client.get(reverse("admin:audit_retentionpolicy_delete", args=[policy.pk])).status_code == 403
    actions = list(AuditEvent.objects.filter(object_type="retentionpolicy").values_list("action", "actor"))
    assert actions == [("retentionpolicy.created", "keeper"), ("retentionpolicy.changed", "keeper")]


def test_admin_is_closed_to_traders(db, trader):
    from django.test import Client

    trader.is_staff = True
    trader.save()
    client = Client()
    client.force_login(trader)
    assert client.get(reverse("admin:audit_legalhold_changelist")).status_code == 403
    assert (
        client.post(reverse("admin:audit_retentionpolicy_add"), {"record_type": "*", "years": "1"}).status_code == 403
    )
