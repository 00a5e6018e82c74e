"""Amending an order: a new quantity and/or limit price, checked by compliance
(stage amend), sent as an OrderCancelReplaceRequest; the terms change only when the
venue confirms the replace."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from audit.services import actor_name
from compliance.models import Outcome
from oms_site.errors import InvalidInput, InvalidStateTransition
from routing import services as routing_services
from routing.fix import codec

from ..models import Order, OrderRequest, OrderStatus, OrderType
from ._common import (
    chain_predecessor,
    cl_ord_id_next,
    order_audit,
    order_lock_for_trading,
    order_snapshot,
    order_terms,
    price_parse,
    quantity_check,
    refusal_reason,
    refusals_audited,
)
from .blocks import order_evaluate
from .report_batch import parent_status

S = OrderStatus


@refusals_audited("order.amend")
def order_amend(*, user, order_id: int, quantity: Any = None, limit_price: Any = None) -> Order:
    """Send an OrderCancelReplaceRequest for a new quantity and/or limit price ->
    pending_amend. The order's terms change only when the venue confirms."""
    actor = actor_name(user)
    with transaction.atomic():
        order = order_lock_for_trading(user=user, order_id=order_id)
        errors: dict[str, list[str]] = {}
        new_quantity = None
        if quantity is not None:
            new_quantity = quantity_check(quantity, order.security.lot_size, "quantity", errors)
        new_price = price_parse(limit_price, "limit_price", errors)
        if limit_price is not None and order.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            errors.setdefault("limit_price", []).append(f"A {order.order_type} order has no limit price.")
        if quantity is None and limit_price is None:
            errors["non_field_errors"] = ["Give a new quantity, a new limit price, or both."]
        elif not errors and (new_quantity in (None, order.quantity)) and (new_price in (None, order.limit_price)):
            errors["non_field_errors"] = ["The amendment changes nothing."]
        if errors:
            raise InvalidInput("Invalid amendment.", details=errors)
        if order.desk_order:
            return desk_order_amend_locked(order, user=user, actor=actor, quantity=new_quantity, limit_price=new_price)
        if order.parent_id is not None and new_quantity is not None and new_quantity > order.quantity:
            raise InvalidStateTransition(
                "A child order's quantity can only be reduced: place another child order for more.",
                code="child_increase",
                details={"status": order.status},
            )
        if not can_proceed(order.request_amend):
            raise InvalidStateTransition(refusal_reason(order, "amended"), details={"status": order.status})
        if order.status == S.FILLED and (
            new_quantity is None or new_quantity <= order.quantity or new_price not in (None, order.limit_price)
        ):
            # FIX 4.4 C.1.c: a filled order may be increased; "requests to change price on
            # a filled order will be rejected", and a decrease would change nothing.
            raise InvalidStateTransition(
                "A filled order can only be amended to a larger quantity.", details={"status": order.status}
            )

        _amend_compliance_check(order, user=user, quantity=new_quantity, limit_price=new_price)

        before = order_snapshot(order)
        cl_ord_id = cl_ord_id_next(order)
        orig = chain_predecessor(order)
        OrderRequest.objects.create(
            order=order,
            kind=OrderRequest.Kind.REPLACE,
            cl_ord_id=cl_ord_id,
            orig_cl_ord_id=orig,
            quantity=new_quantity if new_quantity is not None else order.quantity,
            limit_price=new_price if new_price is not None else order.limit_price,
            requested_by=user,
        )
        routing_services.outbox_message_enqueue(
            venue=order.venue,
            order_id=order.pk,
            cl_ord_id=cl_ord_id,
            msg_type=codec.MSG_ORDER_CANCEL_REPLACE_REQUEST,
            fields=codec.order_cancel_replace_request(
                cl_ord_id=cl_ord_id,
                orig_cl_ord_id=orig,
                venue_order_id=order.venue_order_id,
                account=order.account.code,
                currency=order.security.currency,
                transact_time=timezone.now(),
                **order_terms(order, quantity=new_quantity, limit_price=new_price),
            ),
        )
        order.request_amend()
        order.save()
        order_audit(
            order,
            actor=actor,
            action="order.amend_requested",
            before=before,
            details={
                "cl_ord_id": cl_ord_id,
                "requested": {
                    "quantity": new_quantity if new_quantity is not None else order.quantity,
                    "limit_price": new_price if new_price is not None else order.limit_price,
                },
                "current": {"quantity": order.quantity, "limit_price": order.limit_price},
            },
        )
    return order


def desk_order_amend_locked(order: Order, *, user, actor: str, quantity: int | None, limit_price) -> Order:
    """A portfolio manager's order never goes to a venue: an amendment changes its
    terms here at once, checked by compliance, and never below what its child orders
    have placed (InvalidStateTransition, a 409)."""
    if order.status not in (S.NEW, S.OPEN, S.PARTIALLY_FILLED):
        raise InvalidStateTransition(refusal_reason(order, "amended"), details={"status": order.status})
    placed = order.placed_quantity_read()
    if quantity is not None and quantity < placed:
        raise InvalidStateTransition(
            f"The quantity cannot go below what is placed in child orders ({placed:,}).",
            code="below_placed",
            details={"status": order.status, "placed_quantity": placed},
        )
    _amend_compliance_check(order, user=user, quantity=quantity, limit_price=limit_price)
    before = order_snapshot(order)
    if quantity is not None:
        order.quantity = quantity
        if order.status in (S.OPEN, S.PARTIALLY_FILLED):  # cut to what its children filled: filled
            order.follow_children(parent_status(order, order.filled_quantity))
    if limit_price is not None:
        order.limit_price = limit_price
    order.save()
    order_audit(order, actor=actor, action="order.amended", before=before, details={"sent": False})
    return order


def _amend_compliance_check(order: Order, *, user, quantity, limit_price) -> None:
    """The amended terms through compliance: anything but a pass refuses the amendment
    (409 with the rule results), nothing changed."""
    changes = {"quantity": quantity, "limit_price": limit_price}
    evaluation = order_evaluate(order=order, stage="amend", user=user, changes=changes)
    if evaluation.outcome != Outcome.PASS:
        refusal = InvalidStateTransition(
            "Amendment refused by compliance: " + ("; ".join(evaluation.visible_reasons) or "see compliance."),
            code="compliance_refused",
            details={"status": order.status},
        )
        refusal.compliance_results = evaluation.results
        raise refusal
