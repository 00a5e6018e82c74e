"""The desk's side of a portfolio manager's order: a trader of its account accepts
it from the incoming queue and becomes its owner, then works it by placing child
orders, each a slice that goes through compliance and routing like any order. The
first child placed makes the parent ``open``; from then on its filled quantity,
average price and status follow its children's executions (``report_batch``).

A parent's ``placed_quantity`` (its children's working plus filled quantity) is never
stored: it is computed from the children (``Order.placed_quantity``), so a child
that ends with leaves unfilled frees them at once, whichever path ended it (a single
report, a batch, a local close, end of day). A placement reads it under the parent's
lock, taken after the account's (account -> order, the fixed lock order), so racing
placements cannot overplace."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import actor_name
from oms_site.errors import InvalidStateTransition, NotPermitted

from ..models import PLACEABLE_STATUSES, Order, OrderStatus, Origin, TimeInForce
from ._common import order_audit, order_lock_for_trading, order_snapshot
from .submit import order_create, submission_validate

# The statuses in which a parent may have more of its quantity placed.

S = OrderStatus


def order_accept(*, user, order_id: int) -> Order:
    """A trader of the account takes a portfolio manager's order off the incoming
    queue: under the order's lock, only a desk order still new and unowned (else
    InvalidStateTransition, a 409); it stays new, now the trader's to work. NotFound if
    the user may not see the order; NotPermitted if they may not trade its account
    (middle office, a portfolio manager)."""
    with transaction.atomic():
        order = order_lock_for_trading(user=user, order_id=order_id)
        if not order.desk_order:
            raise InvalidStateTransition(
                "Only a portfolio manager's order can be accepted; this one was entered by a trader.",
                code="not_desk_order",
            )
        if order.owner_id is not None:
            raise InvalidStateTransition(
                f"Order already accepted by {order.owner.get_username()}.",
                code="already_accepted",
                details={"owner": order.owner.get_username()},
            )
        if order.status != S.NEW:
            raise InvalidStateTransition(
                f"Only a new order can be accepted; this one is {order.status}.", details={"status": order.status}
            )
        before = order_snapshot(order)
        order.owner = user
        order.updated_at = timezone.now()
        order.save(update_fields=["owner", "updated_at"])
        order_audit(order, actor=actor_name(user), action="order.accepted", before=before)
    return order


def order_child_place(
    *,
    user,
    order_id: int,
    quantity: Any,
    order_type: Any,
    limit_price: Any = None,
    stop_price: Any = None,
    time_in_force: Any = TimeInForce.DAY,
    expire_at: Any = None,
    venue: Any = None,
) -> Order:
    """Place a child order of the parent ``order_id`` (its owner only): the parent's
    account, security and side, validated, checked by compliance and routed exactly
    as a single order (``order_create``). Under the account's and then the parent's
    lock, the placed quantity may not exceed the parent's (InvalidStateTransition, a
    409). Returns the child; the placement is on the parent's audit trail."""
    actor = actor_name(user)
    with transaction.atomic():
        parent = order_lock_for_trading(user=user, order_id=order_id)
        if not parent.desk_order:
            raise InvalidStateTransition(
                "Only a portfolio manager's order is worked in child orders.", code="not_desk_order"
            )
        if parent.owner_id != user.pk:
            raise NotPermitted("Only the trader who accepted this order may place its child orders.")
        if parent.status not in PLACEABLE_STATUSES:
            raise InvalidStateTransition(
                f"No child order can be placed on an order in status {parent.status}.",
                details={"status": parent.status},
            )
        placed = parent.placed_quantity_read()
        number = parent.children.count() + 1
        suffix = f"-C{number}"
        clean = submission_validate(
            user=user,
            client_order_id=parent.client_order_id[: 64 - len(suffix)] + suffix,
            account_code=parent.account.code,
            symbol=parent.security.symbol,
            side=parent.side,
            quantity=quantity,
            order_type=order_type,
            limit_price=limit_price,
            stop_price=stop_price,
            time_in_force=time_in_force,
            expire_at=expire_at,
            venue_code=venue,
            short_exempt_reason=parent.short_exempt_reason,
        )
        if parent.block_order:  # a slice of a block is a block for the same funds
            clean["allocation_targets"] = parent.allocation_targets
        room = parent.quantity - placed
        if clean["quantity"] > room:
            raise InvalidStateTransition(
                f"Placing {clean['quantity']:,} would overplace the order: {placed:,} of {parent.quantity:,} "
                f"is placed already, {room:,} is left.",
                code="overplaced",
                details={"quantity": parent.quantity, "placed_quantity": placed, "available": room},
            )
        before = order_snapshot(parent)
        child, created = order_create(clean, user=user, origin=Origin.API, parent=parent)
        if not created:
            raise InvalidStateTransition(
                f"The client order id {clean['client_order_id']} is taken by order #{child.pk} of the account.",
                code="client_order_id_taken",
            )
        if parent.status == S.NEW and child.status != S.REJECTED:
            # Its first child placed (routed, or held for an override) starts the work;
            # from now its fills and status follow its children's (report_batch).
            parent.start_working()
            parent.updated_at = timezone.now()
            parent.save(update_fields=["status", "updated_at"])
        order_audit(
            parent,
            actor=actor,
            action="order.child_placed",
            before=before,
            details={"child": child.pk, "quantity": child.quantity, "status": child.status},
        )
    return child
