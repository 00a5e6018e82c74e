"""The audit trail is append-only at the database, hash-chained, and verifiable."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent, AuditSeal
from audit.services import audit_event_record, audit_seal
from audit.verify import chain_verify

pytestmark = pytest.mark.postgres


def record(n: int) -> list[AuditEvent]:
    return [
        audit_event_record(
            actor="tester", action="thing.changed", object_type="thing", object_id=i, after={"n": i, "px": "1.50"}
        )
        for i in range(n)
    ]


def sql(statement: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def tamper(statement: str, params=None) -> None:
    """As a superuser who switches the triggers off: what verify_audit must catch."""
    with transaction.atomic():
        sql("SET LOCAL session_replication_role = replica")
        sql(statement, params)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET actor = 'mallory'",
        "UPDATE audit_auditevent SET actor = 'mallory' WHERE id = -1",  # statement level: even no row
        "DELETE FROM audit_auditevent",
        "DELETE FROM audit_auditseal",
        "UPDATE audit_auditseal SET hash = 'x'",
    ],
)
def test_update_and_delete_fail_at_the_database(db, statement):
    record(3)
    audit_seal()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql(statement)

    assert AuditEvent.objects.count() == 3 and set(AuditEvent.objects.values_list("actor", flat=True)) == {"tester"}
    assert chain_verify().ok


def test_truncate_fails_at_the_database(db):
    record(1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql("SET LOCAL oms.audit_allow_truncate = 'off'")  # the test suite's sessions may; the application's may not
        sql("TRUNCATE audit_auditevent CASCADE")
    assert AuditEvent.objects.count() == 1


def test_model_and_queryset_refuse_changes_too(db):
    (event,) = record(1)
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(actor="mallory")
    with pytest.raises(PermissionError):
        event.save()


def test_sealed_chain_verifies(db, capsys):
    record(5)

    call_command("verify_audit")

    assert AuditSeal.objects.count() == 5
    assert list(AuditSeal.objects.values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    seals = list(AuditSeal.objects.order_by("seq"))
    assert all(b.prev_hash == a.hash for a, b in zip(seals, seals[1:], strict=False))
    assert "audit chain OK: 5 events verified" in capsys.readouterr().out


def test_an_edited_event_is_named(db):
    events = record(5)
    audit_seal()

    tamper('UPDATE audit_auditevent SET after = \'{"n": 99, "px": "1.50"}\' WHERE id = %s', [events[2].pk])

    with pytest.raises(CommandError, match=f"event {events[2].pk} .*content was changed"):
        call_command("verify_audit")


def test_a_deleted_event_is_named(db):
    events = record(5)
    audit_seal()

    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])

    with pytest.raises(CommandError, match=f"event {events[1].pk} .*deleted"):
        call_command("verify_audit")
    # The dangling seal would fail the test database's constraint check at teardown.
    tamper("DELETE FROM audit_auditseal WHERE event_id = %s", [events[1].pk])


def test_a_deleted_event_and_seal_break_the_link(db):
    events = record(5)
    audit_seal()

    tamper("DELETE FROM audit_auditseal WHERE event_id = %s", [events[1].pk])
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])

    with pytest.raises(CommandError, match="seal #2 is missing"):
        call_command("verify_audit")


def test_an_event_inserted_out_of_band_is_named(db):
    events = record(3)
    audit_seal()
    tamper(
        "INSERT INTO audit_auditevent (id, occurred_at, actor, action, object_type, object_id, details)"
        " VALUES (%s, now(), 'mallory', 'order.created', 'order', '1', '{}')",
        [events[0].pk - 1 if events[0].pk > 1 else 0],
    )
    # an id below the sealed ones: the sealer never chains it
    audit_seal()
    inserted = AuditEvent.objects.get(actor="mallory")

    with pytest.raises(CommandError, match=f"event {inserted.pk}: not in the chain"):
        call_command("verify_audit", "--no-seal")


def test_range_verification(db, capsys):
    events = record(4)
    audit_seal()
    since = events[2].occurred_at.isoformat()

    call_command("verify_audit", "--since", since)

    assert "2 events verified in range" in capsys.readouterr().out


def test_export_round_trip_verifies(db, tmp_path, capsys, submit):
    order = submit()
    record(3)
    path = tmp_path / "audit.jsonl"

    call_command("export_audit", "--output", str(path))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    call_command("verify_audit", "--file", str(path))

    assert len(lines) == AuditEvent.objects.count()
    assert all(line["hash"] and line["prev_hash"] for line in lines)
    assert "export OK" in capsys.readouterr().out

    call_command("export_audit", "--order", str(order.pk), "--output", str(path))
    order_lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {line["object_id"] for line in order_lines} == {str(order.pk)}
    call_command("verify_audit", "--file", str(path))  # each line's own hash still checks

    lines[1]["actor"] = "mallory"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(CommandError, match=f"line 2 \\(event {lines[1]['id']}\\)"):
        call_command("verify_audit", "--file", str(path))
