"""The audited save of reference data (venues, securities, accounts, users): one
snapshot shape and one event per write ("<type>.created/changed/deleted", ``via`` the
interface that made it), whether the admin, a command or the seed wrote it. The apps'
services (``routing.services.venue_save``, ``orders.services.security_save`` ...) and
the audited admin bases build on it; it imports no domain app."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import Permission
from django.db import router, transaction
from django.db.models import Model

from .models import AuditEvent
from .services import audit_event_record


def _related_name(obj: Model) -> str:
    """A many-to-many member as the audit trail names it: a permission as
    ``app_label.codename`` (the has_perm form), anything else by its str()."""
    if isinstance(obj, Permission):
        return f"{obj.content_type.app_label}.{obj.codename}"
    return str(obj)


def reference_snapshot(obj: Model, *, secret_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every concrete field (foreign keys as ids) and every many-to-many as a sorted list
    of names; ``secret_fields`` (password hashes) never appear."""
    snapshot: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name not in secret_fields:
            snapshot[field.name] = field.value_from_object(obj)
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            related = getattr(obj, field.name).all()
            if field.related_model is Permission:
                related = related.select_related("content_type")
            snapshot[field.name] = sorted(_related_name(member) for member in related)
    return snapshot


def reference_change_record(
    *,
    actor: str,
    object_type: str,
    object_id: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    via: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """The event for one write to reference data, the same whichever interface made it
    (``via``: "admin", "command", "seed_demo", "csv"): ``<type>.created`` (no before),
    ``<type>.deleted`` (no after) or ``<type>.changed`` with the sorted
    ``changed_fields``; before and after are ``reference_snapshot()``s of the row as
    stored. In the caller's transaction."""
    if before is None and after is None:
        raise ValueError("a reference change needs a before or an after")
    recorded: dict[str, Any] = {"via": via}
    if before is None:
        action = "created"
    elif after is None:
        action = "deleted"
    else:
        action = "changed"
        recorded["changed_fields"] = sorted(k for k in after if before.get(k) != after[k])
    return audit_event_record(
        actor=actor,
        action=f"{object_type}.{action}",
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
        details={**recorded, **(details or {})},
    )


def reference_save(
    *,
    model: type[Model],
    key_field: str,
    key: Any,
    values: Mapping[str, Any],
    actor: str,
    via: str,
    new_defaults: Mapping[str, Any] | None = None,
    members: Mapping[str, Iterable[Model]] | None = None,
) -> tuple[Model, bool]:
    """Create the row whose ``key_field`` is ``key``, or change the given ``values`` of
    it; returns (row, created). One transaction: the row locked, the values applied and
    validated (``full_clean``: a ValidationError writes nothing), saved, read back and
    recorded by ``reference_change_record`` (object id ``key``). ``new_defaults`` are
    values a new row takes where ``values`` gives none; ``members`` sets many-to-many
    fields to exactly those rows. A change that changes nothing writes nothing and
    records nothing (a re-run of an idempotent command leaves no trace)."""
    members = {name: list(rows) for name, rows in (members or {}).items()}
    with transaction.atomic(using=router.db_for_write(model)):
        obj = model._default_manager.select_for_update().filter(**{key_field: key}).first()
        before = reference_snapshot(obj) if obj is not None else None
        if obj is None:
            obj = model(**{key_field: key, **(new_defaults or {})})
        for name, value in values.items():
            setattr(obj, name, value)
        obj.full_clean()
        if before is not None:
            pending = reference_snapshot(obj)  # m2m still as stored: replace those set here
            pending.update({name: sorted(_related_name(row) for row in rows) for name, rows in members.items()})
            if pending == before:
                return obj, False
        obj.save()
        for name, rows in members.items():
            getattr(obj, name).set(rows)
        # Read back as stored, so before and after render alike (a Decimal's places).
        obj.refresh_from_db()
        reference_change_record(
            actor=actor,
            object_type=model._meta.model_name,
            object_id=key,
            before=before,
            after=reference_snapshot(obj),
            via=via,
        )
    return obj, before is None
