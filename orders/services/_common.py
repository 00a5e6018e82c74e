"""Helpers the order use cases share: the audit snapshot of an order, audited
refusals, price and quantity checks, ClOrdID chaining, and locking an order for a
user. Nothing here is a use case of its own."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import transaction

from audit.models import AuditEvent
from audit.services import actor_name, audit_event_build, audit_event_record, audit_event_record_independent
from compliance import engine as compliance_engine
from oms_site.errors import InvalidStateTransition, NotFound, NotPermitted

from ..locks import account_lock, accounts_lock, order_lock
from ..models import Order, OrderRequest, OrderStatus
from ..selectors import accounts_tradable_by, accounts_visible_to, orders_visible_to, user_is_portfolio_manager

S = OrderStatus

MAX_QUANTITY = 10**12
PRICE_QUANT = Decimal("0.00000001")
PRICE_MAX = Decimal("9999999999")


def order_snapshot(order: Order) -> dict[str, Any]:
    """The order's terms and state as the audit trail records them."""

    def price(value):  # as stored, so every version renders a price the same way
        return Decimal(value).quantize(PRICE_QUANT) if value is not None else None

    snapshot = {
        "status": order.status,
        "quantity": order.quantity,
        "filled_quantity": order.filled_quantity,
        "leaves_quantity": order.leaves_quantity,
        "avg_fill_price": price(order.avg_fill_price),
        "limit_price": price(order.limit_price),
        "stop_price": price(order.stop_price),
        "time_in_force": order.time_in_force,
        "cl_ord_id": order.cl_ord_id,
        "venue": order.venue.code if order.venue_id else None,
        "venue_order_id": order.venue_order_id,
        "needs_review": order.needs_review,
        "reject_reason": order.reject_reason,
    }
    if order.block_order:  # for several funds: their lines as entered
        snapshot["allocations"] = order.allocation_targets
    if order.desk_order:  # a portfolio manager's order: who works it, how much is placed
        snapshot["owner"] = order.owner.get_username() if order.owner_id else None
        snapshot["placed_quantity"] = 0 if order._state.adding else order.placed_quantity_read()
    return snapshot


def order_audit(order: Order, *, actor: str, action: str, before=None, details=None) -> None:
    audit_event_record(**order_event(order, actor=actor, action=action, before=before, details=details))


def order_audit_build(order: Order, *, actor: str, action: str, before=None, details=None) -> AuditEvent:
    """The event ``order_audit`` records, built now and stored later in bulk."""
    return audit_event_build(**order_event(order, actor=actor, action=action, before=before, details=details))


def order_event(order: Order, *, actor: str, action: str, before=None, details=None) -> dict[str, Any]:
    """An order's audit event as the arguments of ``audit_event_record``: the order as
    it is now (``after``), and as it was (``before``) when given."""
    return {
        "actor": actor,
        "action": action,
        "object_type": "order",
        "object_id": order.pk,
        "before": before,
        "after": order_snapshot(order),
        "details": details,
    }


def refusals_audited(action: str) -> Callable:
    """A refused state change is audited in its own transaction, after the refused
    one rolled back, so the attempt is on record even though nothing changed."""

    def decorate(service: Callable) -> Callable:
        @wraps(service)
        def wrapper(*, user, order_id: int, **kwargs):
            try:
                return service(user=user, order_id=order_id, **kwargs)
            except InvalidStateTransition as exc:
                results = getattr(exc, "compliance_results", [])
                with transaction.atomic():
                    # The verdicts of a refused amendment are kept too (every result
                    # for every order is on record); they rolled back with the attempt.
                    if results:
                        compliance_engine.verdicts_store([compliance_engine.verdict_build(results)])
                    audit_event_record_independent(
                        actor=actor_name(user),
                        action=f"{action}_refused",
                        object_type="order",
                        object_id=order_id,
                        details={"reason": exc.message, "code": exc.code, **exc.details, "request": kwargs},
                    )
                raise

        return wrapper

    return decorate


def price_parse(value: Any, field: str, errors: dict[str, list[str]]) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        errors.setdefault(field, []).append("Enter a valid decimal number.")
        return None
    if not price.is_finite() or price <= 0:
        errors.setdefault(field, []).append("Must be greater than zero.")
        return None
    if price > PRICE_MAX or price != price.quantize(PRICE_QUANT):
        errors.setdefault(field, []).append("At most 10 digits before and 8 after the decimal point.")
        return None
    return price


def quantity_check(quantity: Any, lot_size: int, field: str, errors: dict[str, list[str]]) -> int | None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        errors.setdefault(field, []).append("Must be a whole number.")
        return None
    if quantity <= 0:
        errors.setdefault(field, []).append("Must be greater than zero.")
        return None
    if quantity > MAX_QUANTITY:
        errors.setdefault(field, []).append(f"Must be at most {MAX_QUANTITY}.")
        return None
    if quantity % lot_size:
        errors.setdefault(field, []).append(f"Must be a multiple of the lot size ({lot_size}).")
        return None
    return quantity


def cl_ord_id_next(order: Order, *, first: bool = False) -> str:
    """A ClOrdID never used before: instance prefix, order id, request number. Called
    with the order locked (or just created), so the number cannot race."""
    number = 1 if first else order.requests.count() + 1
    return f"{settings.OMS_CLORDID_PREFIX}{order.pk}-{number}"


def chain_predecessor(order: Order) -> str:
    """OrigClOrdID for a new cancel or replace: the most recent request that has not
    been rejected ("optimistic" chaining, FIX 4.4 Vol. 4 D.2)."""
    latest = (
        order.requests.filter(
            kind__in=(OrderRequest.Kind.NEW, OrderRequest.Kind.REPLACE),
            state__in=(OrderRequest.State.PENDING, OrderRequest.State.ACCEPTED),
        )
        .order_by("-id")
        .first()
    )
    return latest.cl_ord_id if latest else order.cl_ord_id


def order_terms(order: Order, *, quantity: int | None = None, limit_price: Decimal | None = None) -> dict[str, Any]:
    return {
        "side": order.side,
        "symbol": order.security.symbol,
        "quantity": quantity if quantity is not None else order.quantity,
        "order_type": order.order_type,
        "limit_price": limit_price if limit_price is not None else order.limit_price,
        "stop_price": order.stop_price,
        "time_in_force": order.time_in_force,
        "expire_at": order.expire_at,
        "short_exempt": bool(order.short_exempt_reason),
    }


def order_lock_for_trading(*, user, order_id: int, reduces_risk: bool = False) -> Order:
    """Lock the order if the user may act on it. NotFound if the user may not even see
    it (its existence is not revealed); NotPermitted if they see it but do not trade
    the account (middle office). A cancel reduces risk, so it is allowed on an account
    that has since been deactivated and does not wait for the account lock; anything
    that adds risk takes the account lock first (compliance consumes its limits).
    A portfolio manager never acts on an order (NotPermitted): the desk works it."""
    if user_is_portfolio_manager(user):
        if orders_visible_to(user=user).filter(pk=order_id).exists():
            raise NotPermitted("A portfolio manager's orders are worked by the desk: only a trader may act on them.")
        raise NotFound("Order not found.")
    tradable = accounts_tradable_by(user=user, include_inactive=reduces_risk)
    if not tradable.filter(orders__pk=order_id).exists():
        if accounts_visible_to(user=user).filter(orders__pk=order_id).exists():
            raise NotPermitted("You may view this order but not trade its account.")
        raise NotFound("Order not found.")
    if reduces_risk:
        return order_lock(order_id=order_id)
    return order_lock_with_account(order_id=order_id)


def order_lock_with_account(*, order_id: int) -> Order:
    """Lock the order's account, then the order (the fixed lock order), by order id
    alone: for the override decisions, which act for compliance rather than for a
    trader of the account. NotFound if there is no such order."""
    row = Order.objects.filter(pk=order_id).values_list("account_id", "allocation_targets").first()
    if row is None:
        raise NotFound("Order not found.")
    account_id, targets = row
    if targets:  # a block consumes each of its funds' limits: all of them, in id order
        accounts_lock(account_ids=[account_id], codes=[line["account"] for line in targets])
    else:
        account_lock(account_id=account_id)
    return order_lock(order_id=order_id)


def refusal_reason(order: Order, verb: str) -> str:
    if order.status == S.PENDING_CANCEL:
        return f"Order cannot be {verb}: a cancel request is already pending."
    if order.status == S.PENDING_AMEND and verb == "amended":
        return "Order cannot be amended: an amendment is already pending."
    return f"Order cannot be {verb} in status {order.status}."
