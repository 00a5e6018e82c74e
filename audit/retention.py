"""Retention of the audit trail: policies per record type, legal holds, and the one
sanctioned deletion, the purge of the oldest part of the sealed chain.

Policies and holds change only here, each change audited with who, before and after.
The purge (``manage.py purge_audit``) removes a *prefix* of the chain only: it walks
the events in chain order from the start (or the last purge's anchor) and stops at
the first that must stay, so what remains still verifies from the anchor it records.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from oms_site.errors import InvalidInput, NotFound, NotPermitted

from .chain import GENESIS, event_content, link_hash
from .models import (
    ANY_RECORD_TYPE,
    DEFAULT_RETENTION_YEARS,
    AuditAnchor,
    AuditEvent,
    AuditSeal,
    LegalHold,
    RetentionPolicy,
)
from .services import SEAL_LOCK, actor_name, audit_event_record


def _snapshot(instance) -> dict[str, Any]:
    return model_to_dict(instance, fields=[f.name for f in instance._meta.concrete_fields])


def _require(user, permission: str) -> None:
    if user is None or not user.has_perm(f"audit.{permission}"):
        raise NotPermitted("Only superusers and middle office manage retention and legal holds.")


def _audit(user, action: str, instance, *, before=None) -> None:
    audit_event_record(
        actor=actor_name(user),
        action=action,
        object_type=instance._meta.model_name,
        object_id=instance.pk,
        before=before,
        after=_snapshot(instance),
    )


# ------------------------------------------------------------------------ policies
def retention_policy_set(*, user, record_type: str, years: int, note: str = "") -> RetentionPolicy:
    """Create or change the policy of a record type ("*" = the default)."""
    record_type = (record_type or "").strip()
    errors: dict[str, list[str]] = {}
    if not record_type:
        errors["record_type"] = ["An audit object type, or * for the default."]
    if not isinstance(years, int) or isinstance(years, bool) or years < 1:
        errors["years"] = ["A whole number of years, at least 1."]
    if errors:
        raise InvalidInput("Invalid retention policy.", details=errors)
    with transaction.atomic():
        policy = RetentionPolicy.objects.select_for_update().filter(record_type=record_type).first()
        if policy is None:
            _require(user, "add_retentionpolicy")
            before = None
            policy = RetentionPolicy(record_type=record_type)
        else:
            _require(user, "change_retentionpolicy")
            before = _snapshot(policy)
        policy.years, policy.note = years, note or ""
        policy.updated_by = user if getattr(user, "is_authenticated", False) else None
        policy.updated_at = timezone.now()
        policy.save()
        _audit(user, f"retentionpolicy.{'created' if before is None else 'changed'}", policy, before=before)
    return policy


def retention_years(record_type: str, policies: dict[str, int] | None = None) -> int:
    """Years to keep events of ``record_type``: its own policy, else the "*" policy,
    else DEFAULT_RETENTION_YEARS."""
    if policies is None:
        policies = dict(RetentionPolicy.objects.values_list("record_type", "years"))
    return policies.get(record_type, policies.get(ANY_RECORD_TYPE, DEFAULT_RETENTION_YEARS))


def years_before(moment: dt.datetime, years: int) -> dt.datetime:
    """The same calendar moment ``years`` earlier (later when negative; 29 February →
    28 February)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


# ------------------------------------------------------------------------ legal holds
def legal_hold_place(*, user, object_type: str, object_id: Any = "", reason: str) -> LegalHold:
    """Hold one object's events (or, with a blank object_id, every object of the type)."""
    _require(user, "add_legalhold")
    object_type = (object_type or "").strip()
    object_id = str(object_id or "").strip()
    errors: dict[str, list[str]] = {}
    if not object_type:
        errors["object_type"] = ["Required: the audit object type (order, account, ...)."]
    if not (reason or "").strip():
        errors["reason"] = ["Say why (the matter, the request)."]
    if errors:
        raise InvalidInput("Invalid legal hold.", details=errors)
    with transaction.atomic():
        hold = LegalHold.objects.create(
            object_type=object_type,
            object_id=object_id,
            reason=reason.strip(),
            placed_by=user if getattr(user, "is_authenticated", False) else None,
            placed_at=timezone.now(),
        )
        _audit(user, "legalhold.placed", hold)
    return hold


def legal_hold_change(*, user, hold_id: int, reason: str) -> LegalHold:
    """Change an active hold's reason (what it covers is fixed: place another)."""
    _require(user, "change_legalhold")
    if not (reason or "").strip():
        raise InvalidInput("Invalid legal hold.", details={"reason": ["Say why (the matter, the request)."]})
    with transaction.atomic():
        hold = LegalHold.objects.select_for_update().filter(pk=hold_id).first()
        if hold is None:
            raise NotFound("No such legal hold.")
        if not hold.active:
            raise InvalidInput("A released hold is not changed.")
        if hold.reason == reason.strip():
            return hold
        before = _snapshot(hold)
        hold.reason = reason.strip()
        hold.save()
        _audit(user, "legalhold.changed", hold, before=before)
    return hold


def legal_hold_release(*, user, hold_id: int) -> LegalHold:
    """Release a hold now; the row stays as history. Releasing twice changes nothing."""
    _require(user, "change_legalhold")
    with transaction.atomic():
        hold = LegalHold.objects.select_for_update().filter(pk=hold_id).first()
        if hold is None:
            raise NotFound("No such legal hold.")
        if not hold.active:
            return hold
        before = _snapshot(hold)
        hold.released_at = timezone.now()
        hold.released_by = user if getattr(user, "is_authenticated", False) else None
        hold.save()
        _audit(user, "legalhold.released", hold, before=before)
    return hold


# ------------------------------------------------------------------------ the purge
class PurgeRefused(Exception):
    """The chain to be purged does not verify: nothing is deleted (investigate first)."""


@dataclass
class PurgeResult:
    purged: int = 0
    first_event_id: int | None = None
    last_event_id: int | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    stopped_at: int | None = None  # the first event kept, None when none remain
    reason: str = ""
    anchor_id: int | None = None
    dry_run: bool = False

    def summary(self) -> str:
        stop = f"event {self.stopped_at} {self.reason}" if self.stopped_at is not None else self.reason
        if not self.purged:
            return f"nothing eligible: {stop}"
        verb = "would be purged (dry run)" if self.dry_run else "purged"
        return (
            f"{self.purged} {verb} (events {self.first_event_id}..{self.last_event_id}, "
            f"seals #{self.first_seq}..#{self.last_seq}); stopped at {stop}"
        )


def _keep_reason(
    event: AuditEvent, *, before: dt.datetime, now: dt.datetime, policies: dict[str, int], holds: dict[str, Any]
) -> str | None:
    """Why this event must stay, or None when it may go."""
    if event.occurred_at >= before:
        return f"because it is not before {before.date().isoformat()} (occurred {event.occurred_at.isoformat()})"
    years = retention_years(event.object_type, policies)
    if event.occurred_at > years_before(now, years):
        kept_until = years_before(event.occurred_at, -years).date().isoformat()
        return (
            f"because it is younger than its retention ({years} years for {event.object_type!r}: "
            f"kept until {kept_until})"
        )
    hold = holds.get((event.object_type, "")) or holds.get((event.object_type, event.object_id))
    if hold is not None:
        scope = f"every {hold.object_type}" if not hold.object_id else f"{hold.object_type}:{hold.object_id}"
        return f"because it is under legal hold #{hold.pk} ({scope}: {hold.reason})"
    return None


def audit_purge(
    *, before: dt.datetime, actor: str, dry_run: bool = False, now: dt.datetime | None = None, chunk: int = 2000
) -> PurgeResult:
    """Delete the oldest sealed events that are past ``before``, past their retention
    and under no legal hold, stopping at the first that is not (the chain stays a
    prefix-trimmed chain). One transaction: the deletion (sanctioned by
    ``oms.audit_purge``), the anchor the rest of the chain verifies from, and an
    ``audit.purged`` event. The prefix is re-verified first; a broken link refuses the
    whole purge (PurgeRefused) so no evidence of tampering is removed."""
    now = now or timezone.now()
    result = PurgeResult(dry_run=dry_run)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # No sealer appends while the start of the chain moves (they skip a round).
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK])
        policies = dict(RetentionPolicy.objects.values_list("record_type", "years"))
        holds = {(h.object_type, h.object_id): h for h in LegalHold.objects.filter(released_at__isnull=True)}
        anchor = AuditAnchor.objects.order_by("-seq").first()
        seq, prev_hash, after_id = (anchor.seq, anchor.hash, anchor.last_event_id) if anchor else (0, GENESIS, 0)
        walking = True
        while walking:
            events = list(AuditEvent.objects.filter(id__gt=after_id).select_related("seal").order_by("id")[:chunk])
            if not events:
                result.reason = "nothing left to purge (no later events)"
                break
            for event in events:
                seal = event.seal if _has_seal(event) else None
                if seal is None:
                    result.stopped_at, result.reason = event.pk, "because it is not sealed yet"
                    walking = False
                    break
                reason = _keep_reason(event, before=before, now=now, policies=policies, holds=holds)
                if reason is not None:
                    result.stopped_at, result.reason = event.pk, reason
                    walking = False
                    break
                if seal.seq != seq + 1 or seal.prev_hash != prev_hash:
                    raise PurgeRefused(
                        f"event {event.pk} (seal #{seal.seq}): the chain is broken here; run verify_audit"
                    )
                if link_hash(prev_hash, seal.seq, event_content(event)) != seal.hash:
                    raise PurgeRefused(f"event {event.pk} (seal #{seal.seq}): content was changed after it was sealed")
                if result.first_event_id is None:
                    result.first_event_id, result.first_seq = event.pk, seal.seq
                seq, prev_hash, after_id = seal.seq, seal.hash, event.pk
                result.purged += 1
            result.last_event_id, result.last_seq, result.last_hash = (
                (after_id, seq, prev_hash) if result.purged else (None, None, None)
            )
        if dry_run or not result.purged:
            return result
        first_id = anchor.last_event_id if anchor else 0
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL oms.audit_purge = 'on'")
            cursor.execute(
                "DELETE FROM audit_auditseal WHERE event_id > %s AND event_id <= %s", [first_id, result.last_event_id]
            )
            seals_deleted = cursor.rowcount
            cursor.execute("DELETE FROM audit_auditevent WHERE id > %s AND id <= %s", [first_id, result.last_event_id])
            events_deleted = cursor.rowcount
            cursor.execute("SET LOCAL oms.audit_purge = 'off'")
        if seals_deleted != result.purged or events_deleted != result.purged:
            # Something appeared in the range the walk did not see: leave everything.
            raise PurgeRefused(
                f"expected {result.purged} events and seals, found {events_deleted} and {seals_deleted}; nothing purged"
            )
        created = AuditAnchor.objects.create(
            seq=result.last_seq,
            hash=result.last_hash,
            last_event_id=result.last_event_id,
            purged_events=result.purged,
            created_at=now,
            actor=actor,
        )
        result.anchor_id = created.pk
        audit_event_record(
            actor=actor,
            action="audit.purged",
            object_type="audit",
            object_id=created.pk,
            details={
                "purged_events": result.purged,
                "first_event_id": result.first_event_id,
                "last_event_id": result.last_event_id,
                "first_seq": result.first_seq,
                "last_seq": result.last_seq,
                "anchor": {"id": created.pk, "seq": created.seq, "hash": created.hash},
                "before": before.isoformat(),
                "stopped_at": result.stopped_at,
                "stop_reason": result.reason,
                "policies": policies,
                "active_holds": [h.pk for h in holds.values()],
            },
        )
    return result


def _has_seal(event: AuditEvent) -> bool:
    try:
        event.seal  # noqa: B018 - the reverse one-to-one raises when there is none
    except AuditSeal.DoesNotExist:
        return False
    return True
