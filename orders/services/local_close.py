"""Closing an order the venue no longer knows: after a venue lost its state (a
restart) an order may stay working here with nothing left at the venue to end it (a
cancel gets "unknown order" back). Middle office ends it here, with a reason; the
end-of-day job uses the same service for the venue's day orders."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from audit.services import audit_event_record_independent
from compliance.models import LocateUse
from oms_site.errors import InvalidInput, InvalidStateTransition
from routing import services as routing_services

from ..models import LIVE_STATUSES, Order, OrderFlag, OrderRequest, OrderStatus
from ._common import order_audit, order_lock_with_account, order_snapshot
from .allocations import allocations_propose

logger = logging.getLogger(__name__)
S = OrderStatus

# The statuses a local close may end an order in: ones a venue could have reported, so
# a late fill is still applied and the status stays (STICKY_STATUSES).
LOCAL_CLOSE_STATUSES = (S.CANCELLED, S.DONE_FOR_DAY)
# And the one the end of day gives a GTD order past its expiry (the OMS, not a person).
SYSTEM_CLOSE_STATUSES = (*LOCAL_CLOSE_STATUSES, S.EXPIRED)
LOCAL_CLOSE_ACTION = "order.closed_locally"


def order_close_locally(
    *,
    order_id: int,
    actor: str,
    reason: str,
    final_status: str = S.CANCELLED,
    action: str = LOCAL_CLOSE_ACTION,
    allowed: tuple[str, ...] = LOCAL_CLOSE_STATUSES,
) -> Order:
    """End a working order here without asking the venue (it no longer knows it), in
    ``final_status`` (``cancelled`` or ``done_for_day``; the end of day passes
    ``allowed=SYSTEM_CLOSE_STATUSES`` to expire a GTD order), keeping its fills.

    One transaction, under the account's and the order's locks (account -> order):
    only from a live status (pending_new, open, partially_filled, pending_cancel,
    pending_amend), else InvalidStateTransition (409); any message for the order not
    sent yet is withdrawn and its open requests end (withdrawn, or superseded when
    already sent); its "venue no longer knows the order" flags are resolved; the
    status moves through ``Order.close_locally``, which releases the order's working
    exposure (the orders table's trigger keeps AccountExposure) and what it held of a
    locate beyond its fills (a locate counts an ended order's fills only); the audit
    event ``action`` (default "order.closed_locally"; the end-of-day job passes its
    own) records the reason, the previous status and the leaves closed. A refusal is
    audited as ``<action>_refused``. A fill the venue still reports afterwards is
    applied and the status stays (FIX J.1.b / J.1.d)."""
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if not reason:
        errors["reason"] = ["This field is required."]
    if final_status not in allowed or final_status not in SYSTEM_CLOSE_STATUSES:
        errors["status"] = [f"Must be one of: {', '.join(allowed)}."]
    if errors:
        raise InvalidInput("Invalid close request.", details=errors)
    try:
        with transaction.atomic():
            order = order_lock_with_account(order_id=order_id)
            if order.status not in LIVE_STATUSES:
                raise InvalidStateTransition(
                    f"Order cannot be closed locally in status {order.status}: only a working order can.",
                    details={"status": order.status},
                )
            if order.desk_order:
                raise InvalidStateTransition(
                    "A desk order is not at a venue: it is worked through its child orders. Close those, "
                    "or cancel the desk order (which cancels its children).",
                    code="desk_order",
                    details={"status": order.status},
                )
            return _close(order, actor=actor, reason=reason, final_status=final_status, action=action)
    except InvalidStateTransition as exc:
        audit_event_record_independent(
            actor=actor,
            action=f"{action}_refused",
            object_type="order",
            object_id=order_id,
            details={"reason": exc.message, "code": exc.code, **exc.details, "request": {"reason": reason}},
        )
        raise


def _close(order: Order, *, actor: str, reason: str, final_status: str, action: str) -> Order:
    before = order_snapshot(order)
    previous_status, leaves = order.status, order.leaves_quantity
    now = timezone.now()
    withdrawn = routing_services.outbox_messages_withdraw_for_order(order_id=order.pk)
    ended = []
    for request in order.requests.filter(state=OrderRequest.State.PENDING):
        request.state = (
            OrderRequest.State.WITHDRAWN if request.cl_ord_id in withdrawn else OrderRequest.State.SUPERSEDED
        )
        request.resolved_at = now
        request.save(update_fields=["state", "resolved_at"])
        ended.append({"cl_ord_id": request.cl_ord_id, "kind": request.kind, "state": request.state})
    flags = list(
        OrderFlag.objects.filter(
            order=order, kind=OrderFlag.Kind.VENUE_UNKNOWN_ORDER, resolved_at__isnull=True
        ).values_list("pk", flat=True)
    )
    OrderFlag.objects.filter(pk__in=flags).update(resolved_at=now)
    locate_use = LocateUse.objects.filter(order_id=order.pk).first()
    order.close_locally(final_status)
    order.save()
    details = {
        "reason": reason,
        "previous_status": previous_status,
        "final_status": final_status,
        "leaves_qty": leaves,
        "filled_qty": order.filled_quantity,
        "withdrawn_messages": withdrawn,
        "requests_ended": ended,
        "flags_resolved": flags,
    }
    if locate_use is not None:
        details["locate_released"] = {
            "locate_id": locate_use.locate_id,
            "quantity": max(locate_use.quantity - order.filled_quantity, 0),
        }
    order_audit(order, actor=actor, action=action, before=before, details=details)
    allocations_propose(orders=[order], actor=actor)  # a block closed with fills is allocated
    logger.info("order %s closed locally by %s (%s -> %s): %s", order.pk, actor, previous_status, final_status, reason)
    return order
