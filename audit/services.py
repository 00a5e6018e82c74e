"""The only write path to the audit trail. Callers pass plain values; this module
imports no domain app (STYLE.md: apps depend one way)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.db import transaction

from oms_site.db import rows_insert

from .models import AuditEvent

SYSTEM_ACTOR = "system"


def actor_name(user: Any) -> str:
    """The actor string for a user, or the system when nobody is signed in."""
    if user is None or not getattr(user, "is_authenticated", False):
        return SYSTEM_ACTOR
    return user.get_username()


def audit_event_build(
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: Any,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    occurred_at: dt.datetime | None = None,
) -> AuditEvent:
    """One event, not yet stored: for callers that write many at once
    (``audit_events_store``). The time is taken now, when the step happened."""
    return AuditEvent(
        occurred_at=occurred_at or dt.datetime.now(dt.UTC),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=before,
        after=after,
        details=details or {},
    )


def audit_event_record(**kwargs: Any) -> AuditEvent:
    """Append one event in the caller's transaction (the arguments of
    ``audit_event_build``)."""
    event = audit_event_build(**kwargs)
    event.save()
    return event


def audit_events_store(events: list[AuditEvent]) -> None:
    """Append built events in the caller's transaction, in list order (ids follow it),
    with one multi-row INSERT (a few for very many); the events get no id."""
    rows_insert(AuditEvent, events, ids=False)


def audit_events_record(events: list[dict[str, Any]]) -> None:
    """Append many events, each given as the arguments of ``audit_event_build``."""
    audit_events_store([audit_event_build(**event) for event in events])


def audit_event_record_independent(**kwargs: Any) -> AuditEvent:
    """Append an event that must survive the caller's rollback (a refused or failed
    attempt). Call it after the failed transaction has rolled back."""
    with transaction.atomic():
        return audit_event_record(**kwargs)


# ------------------------------------------------------------------------ the chain
SEAL_LOCK = 0x6F6D7361  # advisory lock key: one sealer at a time, any process


SETTLE_WAIT = 2.0  # seconds a sealing round waits for older writers before giving up


def _settled_up_to(cursor, wait: float) -> int | None:
    """The highest event id that is final: no event with a smaller or equal id can
    still commit. None when a transaction that may hold such an id is still open after
    ``wait`` seconds.

    Writers take their transaction id before their event id (the insert trigger), so
    every id handed out before we read the sequence (L) belongs to a transaction older
    than a transaction id taken afterwards (N); once every transaction below N has
    ended, ids up to L are committed or gone for good. (An event's own transaction id
    says nothing about ids taken by transactions that started later but inserted
    earlier, so it cannot decide this alone.) Run in autocommit: each statement is its
    own transaction, so N is fresh and this session does not hold the horizon back."""
    cursor.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM audit_auditevent_id_seq")
    (handed_out,) = cursor.fetchone()
    cursor.execute("SELECT pg_current_xact_id()::text::bigint")
    (fresh,) = cursor.fetchone()
    deadline = time.monotonic() + wait
    pause = 0.001
    while True:
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        if cursor.fetchone()[0] >= fresh:
            return handed_out
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def audit_seal(*, batch: int = 5000, wait: float = SETTLE_WAIT) -> int:
    """Chain committed events, in id order, onto the sealed chain; returns how many.

    Writers only insert (no global lock on the hot path). Outside a transaction (the
    Sealer thread, verify_audit) a round first finds the highest id that is final
    (``_settled_up_to``: every transaction that could still commit an event with a
    smaller id has ended) and seals up to it, so the chain never skips an event that
    commits later. Inside a caller's transaction (tests, a command's own transaction)
    it seals the events of that transaction and those of transactions that ended
    before it began, stopping at the first other event. One sealer runs at a time
    (advisory lock); others return 0.
    """
    from django.db import connection

    from .chain import GENESIS, event_content, link_hash
    from .models import AuditAnchor, AuditSeal

    postgres = connection.vendor == "postgresql"
    settled = None
    if postgres and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            settled = _settled_up_to(cursor, wait)
        if settled is None:
            return 0
    with transaction.atomic():
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK])
                if not cursor.fetchone()[0]:
                    return 0
        last = AuditSeal.objects.order_by("-seq").first()
        if last is not None:
            seq, prev_hash, after_id = last.seq, last.hash, last.event_id
        else:
            anchor = AuditAnchor.objects.order_by("-seq").first()
            seq, prev_hash, after_id = (anchor.seq, anchor.hash, anchor.last_event_id) if anchor else (0, GENESIS, 0)
        xmin = own = None
        if postgres and settled is None:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint,"
                    " pg_current_xact_id_if_assigned()::text::bigint"
                )
                xmin, own = cursor.fetchone()
        events = AuditEvent.objects.filter(id__gt=after_id)
        if settled is not None:
            events = events.filter(id__lte=settled)
        seals = []
        now = dt.datetime.now(dt.UTC)
        for event in events.order_by("id")[:batch]:
            # In a caller's transaction: its own events, or those of transactions that
            # ended before it began.
            if xmin is not None and event.txid != own and (event.txid is None or event.txid >= xmin):
                break
            seq += 1
            prev_hash, link = link_hash(prev_hash, seq, event_content(event)), prev_hash
            seals.append(AuditSeal(event=event, seq=seq, prev_hash=link, hash=prev_hash, sealed_at=now))
        AuditSeal.objects.bulk_create(seals)
        sealed = len(seals)
    return sealed
