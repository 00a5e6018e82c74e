"""The compliance workflow on an order: a trader asks for an override of a held
order; compliance approves it (the order is evaluated again with the approved
warnings covered, then routed, rejected or kept held) or denies it (the order is
rejected). Compliance keeps the override records; the order changes here."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import actor_name
from compliance import services as compliance_services
from compliance.models import OverrideRequest
from oms_site.errors import InvalidInput, InvalidStateTransition

from ..models import Order, OrderStatus
from ._common import order_audit, order_lock_for_trading, order_lock_with_account, order_snapshot
from .blocks import order_evaluate
from .submit import order_compliance_outcome

S = OrderStatus


def order_override_request(*, user, order_id: int, justification: Any):
    """A trader asks compliance to release a held order (RTS 6 art. 15(6))."""
    if not isinstance(justification, str) or not justification.strip():
        raise InvalidInput("Invalid override request.", details={"justification": ["This field is required."]})
    if len(justification) > 2000:
        raise InvalidInput("Invalid override request.", details={"justification": ["At most 2000 characters."]})
    with transaction.atomic():
        order = order_lock_for_trading(user=user, order_id=order_id)
        if order.status != S.HELD:
            raise InvalidStateTransition(
                f"Only a held order can be overridden; this one is {order.status}.", details={"status": order.status}
            )
        return compliance_services.override_request_create(order=order, user=user, justification=justification.strip())


def order_release(*, order_id: int, user, covered: list[str]) -> Order:
    """Compliance approved an override: evaluate the held order again with the
    approved warnings covered. Pass: route it; block: reject it; a warning the
    approval does not cover keeps it held. Inside the approval's transaction."""
    actor = actor_name(user)
    order = order_lock_with_account(order_id=order_id)
    if order.status != S.HELD:
        raise InvalidStateTransition(
            f"Only a held order can be released; this one is {order.status}.", details={"status": order.status}
        )
    evaluation = order_evaluate(order=order, stage="release", user=user, covered=covered)
    order_compliance_outcome(order, evaluation, actor=actor)
    return order


def order_compliance_reject(*, order_id: int, user, reason: str) -> Order:
    """Compliance denied the override of a held order: it is rejected, never sent."""
    order = order_lock_with_account(order_id=order_id)
    if order.status != S.HELD:
        raise InvalidStateTransition(
            f"Only a held order can be rejected by compliance; this one is {order.status}.",
            details={"status": order.status},
        )
    before = order_snapshot(order)
    order.reject_reason = reason
    order.mark_rejected()
    order.save()
    order_audit(
        order, actor=actor_name(user), action="order.compliance_rejected", before=before, details={"reasons": [reason]}
    )
    return order


def _override_for_decision(*, user, override_id: int) -> OverrideRequest:
    """Four-eyes checks, then lock account -> order -> override (the fixed lock order)."""
    order_id = compliance_services.override_order_id(user=user, override_id=override_id)
    order_lock_with_account(order_id=order_id)
    return compliance_services.override_lock_for_decision(user=user, override_id=override_id)


def override_approve(*, user, override_id: int, note: Any = "") -> OverrideRequest:
    """Approve a pending override (not one's own, not expired) and release the order:
    evaluated again with the warnings the request was for covered."""
    note = note.strip() if isinstance(note, str) else ""
    with transaction.atomic():
        override = _override_for_decision(user=user, override_id=override_id)
        approved = compliance_services.override_approval_record(override, user=user, note=note)
        if approved:
            order_release(order_id=override.order_id, user=user, covered=override.warnings)
    if not approved:  # committed as expired; the approval itself is refused
        raise InvalidStateTransition(
            "The override request expired before it was approved; the trader must ask again.",
            code="override_expired",
            details={"expired_at": override.expires_at.isoformat()},
        )
    return override


def override_deny(*, user, override_id: int, note: Any) -> OverrideRequest:
    """Deny a pending override: the held order is rejected, never sent."""
    if not isinstance(note, str) or not note.strip():
        raise InvalidInput("Invalid denial.", details={"note": ["Say why the override is denied."]})
    with transaction.atomic():
        override = _override_for_decision(user=user, override_id=override_id)
        compliance_services.override_denial_record(override, user=user, note=note.strip())
        order_compliance_reject(order_id=override.order_id, user=user, reason=f"Override denied: {note.strip()}")
    return override
