"""Compliance records: the restricted and watch lists, locates, rule settings, the
kill-switch latch, override requests and decisions, review items. Each writes its
audit event with who, before and after; the admin console, the API and the commands
call these.

Nothing here changes an order: a use case that does (releasing or rejecting a held
order, sweeping the orders a kill switch covers) lives in ``orders.services`` and
calls these for the compliance records it needs."""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.forms.models import model_to_dict
from django.utils import timezone

from audit.services import actor_name, audit_event_record
from oms_site.errors import InvalidInput, InvalidStateTransition, NotFound, NotPermitted
from orders.selectors import security_get

from .models import KillSwitch, ListEntry, Locate, Outcome, OverrideRequest, RestrictedEntry, ReviewItem, WatchEntry
from .selectors import is_compliance_user

logger = logging.getLogger(__name__)


def _require_compliance_user(user) -> None:
    if not is_compliance_user(user):
        raise NotPermitted("Only compliance (middle office) may do this.")


def record_snapshot(instance: Model) -> dict[str, Any]:
    """A console record as the audit trail stores it: every field, foreign keys as ids."""
    return model_to_dict(instance, fields=[f.name for f in instance._meta.concrete_fields])


def _audit(user, action: str, instance: Model, *, before=None, details=None, actor: str | None = None) -> None:
    audit_event_record(
        actor=actor or actor_name(user),
        action=action,
        object_type=instance._meta.model_name,
        object_id=instance.pk,
        before=before,
        after=record_snapshot(instance),
        details=details,
    )


def console_record_save(*, user, instance: Model, before: dict[str, Any] | None) -> Model:
    """Save a record edited in the admin console (rule settings, locates, list entries)
    and audit it with before/after. ``before`` is the stored version, None when new."""
    with transaction.atomic():
        if hasattr(instance, "updated_by_id"):
            instance.updated_by = user
        instance.save()
        _audit(
            user, f"{instance._meta.model_name}.{'created' if before is None else 'changed'}", instance, before=before
        )
    return instance


# -------------------------------------------------------- restricted and watch lists
def _list_entry_add(
    model: type[ListEntry],
    *,
    user,
    symbol: Any = None,
    issuer: Any = None,
    reason: Any,
    effective_from: dt.datetime | None = None,
    effective_to: dt.datetime | None = None,
) -> ListEntry:
    _require_compliance_user(user)
    errors: dict[str, list[str]] = {}
    security = None
    symbol = symbol.strip().upper() if isinstance(symbol, str) else symbol
    issuer = issuer.strip() if isinstance(issuer, str) else issuer
    if symbol and issuer:
        errors["non_field_errors"] = ["Give a symbol or an issuer, not both."]
    elif symbol:
        security = security_get(symbol=symbol) if isinstance(symbol, str) else None
        if security is None:
            errors["symbol"] = ["Unknown symbol."]
    elif issuer:
        if not isinstance(issuer, str) or len(issuer) > 200:
            errors["issuer"] = ["At most 200 characters."]
    else:
        errors["non_field_errors"] = ["Give a symbol or an issuer."]
    if not isinstance(reason, str) or not reason.strip():
        errors["reason"] = ["This field is required."]
    now = timezone.now()
    effective_from = effective_from or now
    for name, value in (("effective_from", effective_from), ("effective_to", effective_to)):
        if value is not None and (not isinstance(value, dt.datetime) or value.tzinfo is None):
            errors[name] = ["A date and time with a time zone."]
    if "effective_to" not in errors and "effective_from" not in errors and effective_to is not None:
        if effective_to <= effective_from:
            errors["effective_to"] = ["Must be after effective_from."]
        elif effective_to <= now:
            errors["effective_to"] = ["Must be in the future."]
    if errors:
        raise InvalidInput("Invalid list entry.", details=errors)
    with transaction.atomic():
        entry = model.objects.create(
            security=security,
            # An entry for a security covers its whole issuer (all its instruments).
            issuer=security.issuer if security is not None else issuer,
            reason=reason.strip(),
            effective_from=effective_from,
            effective_to=effective_to,
            added_by=user if getattr(user, "is_authenticated", False) else None,
        )
        _audit(user, f"{model._meta.model_name}.added", entry)
    return entry


def _list_entry_end(model: type[ListEntry], *, user, entry_id: int) -> ListEntry:
    """End an entry now; the row stays as history. Ending an ended entry changes
    nothing."""
    _require_compliance_user(user)
    with transaction.atomic():
        entry = model.objects.select_for_update().filter(pk=entry_id).first()
        if entry is None:
            raise NotFound("No such list entry.")
        now = timezone.now()
        if entry.effective_to is not None and entry.effective_to <= now:
            return entry
        before = record_snapshot(entry)
        # An entry that had not started yet ends at its start (the period stays valid).
        entry.effective_to = max(now, entry.effective_from + dt.timedelta(microseconds=1))
        entry.ended_at = now
        entry.ended_by = user if getattr(user, "is_authenticated", False) else None
        entry.save()
        _audit(user, f"{model._meta.model_name}.ended", entry, before=before)
    return entry


def restricted_entry_add(**kwargs) -> RestrictedEntry:
    """Add a restricted-list entry (symbol or issuer; a symbol covers its issuer)."""
    return _list_entry_add(RestrictedEntry, **kwargs)


def restricted_entry_end(*, user, entry_id: int) -> RestrictedEntry:
    return _list_entry_end(RestrictedEntry, user=user, entry_id=entry_id)


def watch_entry_add(**kwargs) -> WatchEntry:
    return _list_entry_add(WatchEntry, **kwargs)


def watch_entry_end(*, user, entry_id: int) -> WatchEntry:
    return _list_entry_end(WatchEntry, user=user, entry_id=entry_id)


@dataclass
class ListImportReport:
    created: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


LIST_COLUMNS = ("symbol", "issuer", "reason", "effective_from", "effective_to")


def _parse_time(text: str) -> dt.datetime | None:
    """ISO 8601; a bare date means midnight UTC."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def list_entries_import(*, list_name: str, handle, user) -> ListImportReport:
    """Add entries from CSV (columns symbol or issuer, reason, optional effective_from
    and effective_to). Bad lines are reported by line number and skipped; every good
    line is added and audited: a list that restricts more than intended is safe, one
    that silently restricts less is not."""
    _require_compliance_user(user)
    model = {"restricted": RestrictedEntry, "watch": WatchEntry}[list_name]
    reader = csv.DictReader(handle)
    header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    if "reason" not in header or not ({"symbol", "issuer"} & set(header)):
        raise InvalidInput(
            "The file needs a header with reason and symbol or issuer.",
            details={"file": [f"columns: {', '.join(LIST_COLUMNS)}"]},
        )
    reader.fieldnames = header
    report = ListImportReport()
    try:
        for row in reader:
            line = reader.line_num
            values = {k: (v or "").strip() for k, v in row.items() if k}
            times = {}
            problems = []
            for name in ("effective_from", "effective_to"):
                if values.get(name):
                    try:
                        times[name] = _parse_time(values[name])
                    except ValueError:
                        problems.append(f"{name}: not an ISO 8601 date or time")
            if problems:
                report.errors.append((line, "; ".join(problems)))
                continue
            try:
                _list_entry_add(
                    model,
                    user=user,
                    symbol=values.get("symbol") or None,
                    issuer=values.get("issuer") or None,
                    reason=values.get("reason", ""),
                    **times,
                )
            except InvalidInput as exc:
                report.errors.append(
                    (
                        line,
                        "; ".join(
                            f"{k}: {' '.join(v)}" if k != "non_field_errors" else " ".join(v)
                            for k, v in exc.details.items()
                        ),
                    )
                )
                continue
            report.created += 1
    except (csv.Error, UnicodeDecodeError) as exc:
        report.errors.append((reader.line_num, f"unreadable: {exc}"))
    return report


# -------------------------------------------------------------------------- locates
def locate_add(
    *, user, account, security, broker: str, reference: str, quantity: int, expires_at: dt.datetime
) -> Locate:
    """Record a locate (idempotent per broker and reference: the same locate again
    returns the stored one unchanged)."""
    if quantity <= 0 or expires_at.tzinfo is None:
        raise InvalidInput("Invalid locate.", details={"quantity": ["A positive quantity and an aware expiry."]})
    with transaction.atomic():
        locate, created = Locate.objects.get_or_create(
            broker=broker,
            reference=reference,
            defaults={
                "account": account,
                "security": security,
                "quantity": quantity,
                "expires_at": expires_at,
                "created_by": user if getattr(user, "is_authenticated", False) else None,
            },
        )
        if created:
            _audit(user, "locate.created", locate)
    return locate


def locate_end(*, user, locate_id: int) -> Locate:
    with transaction.atomic():
        locate = Locate.objects.select_for_update().filter(pk=locate_id).first()
        if locate is None:
            raise NotFound("No such locate.")
        if locate.ended_at is None:
            before = record_snapshot(locate)
            locate.ended_at = timezone.now()
            locate.save()
            _audit(user, "locate.ended", locate, before=before)
    return locate


# ---------------------------------------------------------------------- kill switch
KILL_SWITCH_TARGETS = {
    KillSwitch.Scope.ACCOUNT: "account code",
    KillSwitch.Scope.TRADER: "username",
    KillSwitch.Scope.VENUE: "venue code",
    KillSwitch.Scope.SYMBOL: "symbol",
}


@dataclass
class KillSwitchResult:
    switch: KillSwitch
    changed: bool
    cancelled_order_ids: list[int] = field(default_factory=list)


def kill_switch_latch(
    *, user, scope: Any, target: Any = "", active: Any, reason: Any, target_problem: Callable[[str, str], str | None]
) -> KillSwitchResult:
    """Switch the latch on (no new orders in scope pass compliance from the commit on)
    or off. Setting the state it is already in changes nothing. ``target_problem``
    says what is wrong with a target (an unknown account, venue, ...) or None: the
    caller knows the records a target names. Cancelling the working orders in scope
    is the caller's (``orders.services.kill_switch_set``)."""
    _require_compliance_user(user)
    errors: dict[str, list[str]] = {}
    if scope not in KillSwitch.Scope.values:
        errors["scope"] = [f"Must be one of {', '.join(KillSwitch.Scope.values)}."]
    target = target.strip() if isinstance(target, str) else ""
    if scope == KillSwitch.Scope.FIRM and target:
        errors["target"] = ["The firm switch has no target."]
    elif scope in KILL_SWITCH_TARGETS and not target:
        errors["target"] = [f"Required: the {KILL_SWITCH_TARGETS[scope]}."]
    elif scope in KILL_SWITCH_TARGETS and (problem := target_problem(scope, target)):
        errors["target"] = [problem]
    if not isinstance(active, bool):
        errors["active"] = ["true or false."]
    if not isinstance(reason, str) or not reason.strip():
        errors["reason"] = ["This field is required."]
    if errors:
        raise InvalidInput("Invalid kill switch request.", details=errors)
    if not active:
        with transaction.atomic():
            switch = (
                KillSwitch.objects.select_for_update()
                .filter(scope=scope, target=target, released_at__isnull=True)
                .first()
            )
            if switch is None:
                latest = KillSwitch.objects.filter(scope=scope, target=target).order_by("-id").first()
                if latest is None:
                    raise NotFound("That kill switch has never been on.")
                return KillSwitchResult(switch=latest, changed=False)
            before = record_snapshot(switch)
            switch.released_at = timezone.now()
            switch.released_by = user
            switch.release_reason = reason.strip()
            switch.save()
            _audit(user, "kill_switch.released", switch, before=before)
        return KillSwitchResult(switch=switch, changed=True)
    try:
        with transaction.atomic():
            switch = KillSwitch.objects.create(scope=scope, target=target, reason=reason.strip(), activated_by=user)
            _audit(user, "kill_switch.activated", switch)
    except IntegrityError:
        switch = KillSwitch.objects.get(scope=scope, target=target, released_at__isnull=True)
        return KillSwitchResult(switch=switch, changed=False)
    return KillSwitchResult(switch=switch, changed=True)


def kill_switch_cancels_record(*, switch: KillSwitch, actor: str, order_ids: list[int]) -> None:
    """After the sweep: how many cancels the switch sent, and for which orders."""
    with transaction.atomic():
        KillSwitch.objects.filter(pk=switch.pk).update(cancels_requested=len(order_ids))
        switch.cancels_requested = len(order_ids)
        audit_event_record(
            actor=actor,
            action="kill_switch.cancels_sent",
            object_type="killswitch",
            object_id=switch.pk,
            details={"orders": order_ids},
        )


# ------------------------------------------------------------------------ overrides
def override_request_create(*, order, user, justification: str) -> OverrideRequest:
    """Called by ``orders.services.order_override_request`` with the held order
    locked. One pending request per order."""
    # The warnings of the evaluation that holds the order: its latest verdict.
    verdict = order.compliance_verdicts.order_by("-id").only("results").first()
    results = verdict.results if verdict is not None else []
    warnings = sorted(r["rule"] for r in results if r["outcome"] == Outcome.WARN and not r["internal"])
    try:
        with transaction.atomic():
            override = OverrideRequest.objects.create(
                order=order,
                requested_by=user,
                justification=justification,
                expires_at=timezone.now() + dt.timedelta(seconds=settings.OMS_OVERRIDE_TTL_SECONDS),
                warnings=warnings,
            )
    except IntegrityError:
        raise InvalidStateTransition(
            "An override request for this order is already pending.", code="override_pending"
        ) from None
    audit_event_record(
        actor=actor_name(user),
        action="override.requested",
        object_type="order",
        object_id=order.pk,
        after=record_snapshot(override),
        details={"override": override.pk},
    )
    return override


def override_order_id(*, user, override_id: int) -> int:
    """The order an override request is for, to a compliance user (the order is locked
    before the request: account -> order -> override)."""
    _require_compliance_user(user)
    order_id = OverrideRequest.objects.filter(pk=override_id).values_list("order_id", flat=True).first()
    if order_id is None:
        raise NotFound("No such override request.")
    return order_id


def override_lock_for_decision(*, user, override_id: int) -> OverrideRequest:
    """Lock a pending override request for a decision (four eyes: not the requester's).
    Its order is already locked by the caller."""
    override = OverrideRequest.objects.select_for_update().get(pk=override_id)
    if override.requested_by_id == user.pk:
        raise NotPermitted("Four eyes: the requester cannot decide their own override.", code="four_eyes")
    if override.status != OverrideRequest.Status.PENDING:
        raise InvalidStateTransition(
            f"The override request is already {override.status}.", details={"status": override.status}
        )
    return override


def _override_status_set(
    override: OverrideRequest, *, status: str, actor: str, decided_by=None, note: str = ""
) -> None:
    """Move an override request to ``status`` and audit it on the order's trail;
    ``decided_by`` for a compliance decision (not for a withdrawal)."""
    before = record_snapshot(override)
    override.status = status
    if decided_by is not None:
        override.decided_by = decided_by
        override.decided_at = timezone.now()
        override.decision_note = note
    override.save()
    audit_event_record(
        actor=actor,
        action=f"override.{status}",
        object_type="order",
        object_id=override.order_id,
        before=before,
        after=record_snapshot(override),
        details={"override": override.pk},
    )


def override_approval_record(override: OverrideRequest, *, user, note: str) -> bool:
    """Record the approval of a locked pending request; False (and the request marked
    expired instead) when it expired before the approval."""
    if override.expires_at <= timezone.now():
        _override_status_set(
            override,
            status=OverrideRequest.Status.EXPIRED,
            actor=actor_name(user),
            decided_by=user,
            note="expired before approval",
        )
        return False
    _override_status_set(
        override, status=OverrideRequest.Status.APPROVED, actor=actor_name(user), decided_by=user, note=note
    )
    return True


def override_denial_record(override: OverrideRequest, *, user, note: str) -> None:
    _override_status_set(
        override, status=OverrideRequest.Status.DENIED, actor=actor_name(user), decided_by=user, note=note
    )


def overrides_withdraw(*, order, actor: str) -> None:
    """The held order ended (cancelled by the trader): its pending request lapses."""
    for override in OverrideRequest.objects.select_for_update().filter(
        order=order, status=OverrideRequest.Status.PENDING
    ):
        _override_status_set(override, status=OverrideRequest.Status.WITHDRAWN, actor=actor)


# ---------------------------------------------------------------------- review items
def review_item_resolve(*, user, item_id: int, note: Any) -> ReviewItem:
    _require_compliance_user(user)
    if not isinstance(note, str) or not note.strip():
        raise InvalidInput("Invalid resolution.", details={"note": ["Say how it was resolved."]})
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().filter(pk=item_id).first()
        if item is None:
            raise NotFound("No such review item.")
        if item.resolved_at is not None:
            raise InvalidStateTransition("The review item is already resolved.")
        before = record_snapshot(item)
        item.resolved_at = timezone.now()
        item.resolved_by = user
        item.resolution_note = note.strip()
        item.save()
        _audit(user, "review_item.resolved", item, before=before)
    return item
