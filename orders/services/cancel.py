"""Cancelling an order: at once when it never left (staged, held, or its
NewOrderSingle still in the outbox), otherwise an OrderCancelRequest and
``pending_cancel`` until the venue answers."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from audit.services import actor_name
from compliance import services as compliance_services
from oms_site.errors import InvalidStateTransition
from routing import services as routing_services
from routing.fix import codec

from ..locks import order_lock
from ..models import CANCELLABLE_STATUSES, Order, OrderRequest, OrderStatus
from ._common import (
    chain_predecessor,
    cl_ord_id_next,
    order_audit,
    order_lock_for_trading,
    order_snapshot,
    refusal_reason,
    refusals_audited,
)
from .allocations import allocations_propose

logger = logging.getLogger(__name__)
S = OrderStatus


def orders_cancel_each(order_ids: list[int], *, user, actor: str, reason: str) -> tuple[list[int], list[dict]]:
    """Cancel these orders, one transaction each, so one order's trouble does not hold
    back the others; an order that ended meanwhile is skipped. Returns the ids
    cancelled (or with a cancel request queued) and the refusals ({"id", "reason"})."""
    cancelled: list[int] = []
    refused: list[dict] = []
    for order_id in order_ids:
        try:
            with transaction.atomic():
                order = order_lock(order_id=order_id)
                if order.status not in CANCELLABLE_STATUSES:
                    continue
                order_cancel_locked(order, user=user, actor=actor, reason=reason)
                cancelled.append(order_id)
        except InvalidStateTransition as exc:
            logger.warning("%s: order %s not cancelled: %s", reason, order_id, exc.message)
            refused.append({"id": order_id, "reason": exc.message})
    return cancelled, refused


@refusals_audited("order.cancel")
def order_cancel(*, user, order_id: int) -> Order:
    """Cancel at once if the order never left (staged, held, or its NewOrderSingle is
    still in the outbox); otherwise send an OrderCancelRequest -> pending_cancel."""
    with transaction.atomic():
        order = order_lock_for_trading(user=user, order_id=order_id, reduces_risk=True)
        return order_cancel_locked(order, user=user, actor=actor_name(user))


def order_cancel_locked(order: Order, *, user, actor: str, reason: str = "") -> Order:
    if order.desk_order:
        children_cancel(order, user=user, actor=actor)
    before = order_snapshot(order)
    if order.status in (S.NEW, S.HELD) or (
        order.status == S.PENDING_NEW
        and not order.requests.exclude(kind=OrderRequest.Kind.NEW).exists()
        and routing_services.outbox_message_withdraw(order_id=order.pk, cl_ord_id=order.cl_ord_id)
    ):
        order.requests.filter(state=OrderRequest.State.PENDING).update(
            state=OrderRequest.State.WITHDRAWN, resolved_at=timezone.now()
        )
        if order.status == S.HELD:
            compliance_services.overrides_withdraw(order=order, actor=actor)
        order.cancel_unsent()
        order.save()
        order_audit(
            order, actor=actor, action="order.cancelled", before=before, details={"sent": False, "reason": reason}
        )
        return order
    if order.desk_order and can_proceed(order.cancel_worked):
        # A parent worked in child orders was never at a venue: it ends here, keeping
        # what its children filled (a late child fill still adds to it).
        order.cancel_worked()
        order.save()
        order_audit(
            order, actor=actor, action="order.cancelled", before=before, details={"sent": False, "reason": reason}
        )
        allocations_propose(orders=[order], actor=actor)  # a block ended with what its children filled
        return order
    if not can_proceed(order.request_cancel):
        raise InvalidStateTransition(refusal_reason(order, "cancelled"), details={"status": order.status})
    cl_ord_id = cl_ord_id_next(order)
    orig = chain_predecessor(order)
    OrderRequest.objects.create(
        order=order,
        kind=OrderRequest.Kind.CANCEL,
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=orig,
        requested_by=user if getattr(user, "is_authenticated", False) else None,
    )
    routing_services.outbox_message_enqueue(
        venue=order.venue,
        order_id=order.pk,
        cl_ord_id=cl_ord_id,
        msg_type=codec.MSG_ORDER_CANCEL_REQUEST,
        fields=codec.order_cancel_request(
            cl_ord_id=cl_ord_id,
            orig_cl_ord_id=orig,
            venue_order_id=order.venue_order_id,
            account=order.account.code,
            symbol=order.security.symbol,
            side=order.side,
            quantity=order.quantity,
            transact_time=timezone.now(),
        ),
    )
    order.request_cancel()
    order.save()
    order_audit(
        order,
        actor=actor,
        action="order.cancel_requested",
        before=before,
        details={"cl_ord_id": cl_ord_id, "reason": reason},
    )
    return order


def children_cancel(parent: Order, *, user, actor: str) -> None:
    """Cancelling a parent cancels its working child orders first, each as a cancel of
    its own (audited on the child), under the parent's lock and then the child's."""
    reason = f"parent order {parent.pk} cancelled"
    child_ids = parent.children.filter(status__in=CANCELLABLE_STATUSES).order_by("id").values_list("pk", flat=True)
    for child_id in list(child_ids):
        child = order_lock(order_id=child_id)
        if child.status in CANCELLABLE_STATUSES:
            order_cancel_locked(child, user=user, actor=actor, reason=reason)
