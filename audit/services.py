"""The only write path to the audit trail. Callers pass plain values; this module
imports no domain app (STYLE.md: apps depend one way)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from .models import AuditEvent

SYSTEM_ACTOR = "system"


def actor_name(user: Any) -> str:
    """The actor string for a user, or the system when nobody is signed in."""
    if user is None or not getattr(user, "is_authenticated", False):
        return SYSTEM_ACTOR
    return user.get_username()


def audit_event_record(
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
    """Append one event in the caller's transaction."""
    return AuditEvent.objects.create(
        occurred_at=occurred_at or dt.datetime.now(dt.UTC),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=before,
        after=after,
        details=details or {},
    )


def audit_event_record_independent(**kwargs: Any) -> AuditEvent:
    """Append an event that must survive the caller's rollback (a refused or failed
    attempt). Call it after the failed transaction has rolled back."""
    with transaction.atomic():
        return audit_event_record(**kwargs)
