"""Order use cases: submit, cancel, amend, and applying what the venue reports.

Each service is one transaction: lock (account -> order -> position), re-check the state
after the lock, transition, save, audit event, outbox row. Nothing reaches a venue
before the commit: the FIX session drains the outbox afterwards.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Sum
from django_fsm import TransitionNotAllowed, can_proceed

from audit.services import actor_name, audit_event_record, audit_event_record_independent
from compliance import engine as compliance_engine
from compliance import selectors as compliance_selectors
from compliance import services as compliance_services
from compliance.models import Outcome
from oms_site.errors import InvalidInput, InvalidStateTransition, NotFound, NotPermitted
from routing import selectors as routing_selectors
from routing import services as routing_services
from routing.fix import codec
from routing.models import Venue

from .locks import account_lock, order_lock, position_lock
from .models import (
    LIVE_STATUSES,
    STICKY_STATUSES,
    Account,
    AssetClass,
    Execution,
    Order,
    OrderFlag,
    OrderRequest,
    OrderStatus,
    OrderType,
    Origin,
    Security,
    Side,
    TimeInForce,
)
from .selectors import accounts_tradable_by, accounts_visible_to, security_get

logger = logging.getLogger(__name__)
S = OrderStatus

MAX_QUANTITY = 10**12
PRICE_QUANT = Decimal("0.00000001")
PRICE_MAX = Decimal("9999999999")


# --------------------------------------------------------------------------- helpers
def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def order_snapshot(order: Order) -> dict[str, Any]:
    """The order's terms and state as the audit trail records them."""

    def price(value):  # as stored, so every version renders a price the same way
        return Decimal(value).quantize(PRICE_QUANT) if value is not None else None

    return {
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


def _audit_order(order: Order, *, actor: str, action: str, before=None, details=None) -> None:
    audit_event_record(
        actor=actor,
        action=action,
        object_type="order",
        object_id=order.pk,
        before=before,
        after=order_snapshot(order),
        details=details,
    )


def _refusals_audited(action: str) -> Callable:
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
                    for result in results:
                        result.pk = None
                    compliance_engine.results_store(results)
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


def _parse_price(value: Any, field: str, errors: dict[str, list[str]]) -> Decimal | None:
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


def _check_quantity(quantity: Any, lot_size: int, field: str, errors: dict[str, list[str]]) -> int | None:
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


def _next_cl_ord_id(order: Order, *, first: bool = False) -> str:
    """A ClOrdID never used before: instance prefix, order id, request number. Called
    with the order locked (or just created), so the number cannot race."""
    number = 1 if first else order.requests.count() + 1
    return f"{settings.OMS_CLORDID_PREFIX}{order.pk}-{number}"


def _chain_predecessor(order: Order) -> str:
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


def _order_terms(order: Order, *, quantity: int | None = None, limit_price: Decimal | None = None) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------- submit
def _validate_submission(
    *,
    user,
    client_order_id: Any,
    account_code: Any,
    symbol: Any,
    side: Any,
    quantity: Any,
    order_type: Any,
    limit_price: Any,
    stop_price: Any,
    time_in_force: Any,
    expire_at: Any,
    venue_code: Any,
    short_exempt_reason: Any = "",
) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}

    if not isinstance(client_order_id, str) or not client_order_id.strip():
        errors["client_order_id"] = ["This field is required."]
    elif len(client_order_id) > 64 or not client_order_id.isprintable():
        errors["client_order_id"] = ["At most 64 printable characters."]
    else:
        clean["client_order_id"] = client_order_id.strip()

    account = (
        accounts_tradable_by(user=user).filter(code=account_code).first() if isinstance(account_code, str) else None
    )
    if account is None:
        errors["account"] = ["Unknown account, or you are not entitled to trade it."]
    clean["account"] = account

    security = security_get(symbol=symbol) if isinstance(symbol, str) and symbol else None
    if security is None:
        errors["symbol"] = ["Unknown symbol."]
    clean["security"] = security

    if side not in Side.values:
        errors["side"] = [f"Must be one of {', '.join(Side.values)}."]
    clean["side"] = side
    if order_type not in OrderType.values:
        errors["order_type"] = [f"Must be one of {', '.join(OrderType.values)}."]
    clean["order_type"] = order_type
    time_in_force = time_in_force or TimeInForce.DAY
    if time_in_force not in TimeInForce.values:
        errors["time_in_force"] = [f"Must be one of {', '.join(TimeInForce.values)}."]
    clean["time_in_force"] = time_in_force

    clean["quantity"] = _check_quantity(quantity, security.lot_size if security else 1, "quantity", errors)
    clean["limit_price"] = _parse_price(limit_price, "limit_price", errors)
    clean["stop_price"] = _parse_price(stop_price, "stop_price", errors)

    needs_limit = order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_limit and limit_price in (None, "") and "limit_price" not in errors:
        errors["limit_price"] = [f"Required for a {order_type} order."]
    if not needs_limit and limit_price not in (None, "") and order_type in OrderType.values:
        errors["limit_price"] = [f"Not allowed on a {order_type} order."]
    if needs_stop and stop_price in (None, "") and "stop_price" not in errors:
        errors["stop_price"] = [f"Required for a {order_type} order."]
    if not needs_stop and stop_price not in (None, "") and order_type in OrderType.values:
        errors["stop_price"] = [f"Not allowed on a {order_type} order."]

    if time_in_force == TimeInForce.GTD:
        if not isinstance(expire_at, dt.datetime):
            errors["expire_at"] = ["Required for a GTD order (ISO 8601 date and time)."]
        elif expire_at.tzinfo is None:
            errors["expire_at"] = ["Must include a time zone."]
        elif expire_at <= _now():
            errors["expire_at"] = ["Must be in the future."]
    elif expire_at is not None:
        errors["expire_at"] = ["Only allowed with time in force GTD."]
    clean["expire_at"] = expire_at if time_in_force == TimeInForce.GTD else None

    venue = None
    if venue_code not in (None, ""):
        venue = routing_selectors.venue_get_enabled(code=venue_code) if isinstance(venue_code, str) else None
        if venue is None:
            errors["venue"] = ["Unknown or disabled venue."]
        elif security is not None and not venue.takes(
            asset_class=security.asset_class, symbol=security.symbol, currency=security.currency
        ):
            errors["venue"] = [f"Venue {venue.code} does not take {security.symbol}."]
    clean["venue"] = venue

    short_exempt_reason = short_exempt_reason or ""
    if not isinstance(short_exempt_reason, str) or len(short_exempt_reason) > 500:
        errors["short_exempt_reason"] = ["At most 500 characters of text."]
    elif short_exempt_reason.strip() and side != Side.SELL_SHORT:
        errors["short_exempt_reason"] = ["Only a SELL_SHORT order can be marked short exempt."]
    else:
        clean["short_exempt_reason"] = short_exempt_reason.strip()

    if errors:
        raise InvalidInput("Invalid order.", details=errors)
    return clean


def _order_new(clean: dict[str, Any], *, user, origin: str) -> Order:
    """An unsaved order from validated submission fields."""
    return Order(
        client_order_id=clean["client_order_id"],
        account=clean["account"],
        security=clean["security"],
        side=clean["side"],
        quantity=clean["quantity"],
        order_type=clean["order_type"],
        limit_price=clean["limit_price"],
        stop_price=clean["stop_price"],
        time_in_force=clean["time_in_force"],
        expire_at=clean["expire_at"],
        short_exempt_reason=clean["short_exempt_reason"],
        # A venue the trader chose is kept (a held order is released to it).
        venue=clean["venue"],
        origin=origin,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )


def order_submit(
    *,
    user,
    client_order_id: str,
    account: str,
    symbol: str,
    side: str,
    quantity: int,
    order_type: str,
    limit_price: Any = None,
    stop_price: Any = None,
    time_in_force: str = TimeInForce.DAY,
    expire_at: dt.datetime | None = None,
    venue: str | None = None,
    origin: str = Origin.API,
    short_exempt_reason: str = "",
) -> tuple[Order, bool]:
    """Validate, persist, run compliance, route, and queue the NewOrderSingle.

    Returns ``(order, created)``; a repeated ``client_order_id`` for the same account
    returns the existing order with ``created=False`` and changes nothing. The account
    is locked first: its limits and locates are consumed one order at a time."""
    clean = _validate_submission(
        user=user,
        client_order_id=client_order_id,
        account_code=account,
        symbol=symbol,
        side=side,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        stop_price=stop_price,
        time_in_force=time_in_force,
        expire_at=expire_at,
        venue_code=venue,
        short_exempt_reason=short_exempt_reason,
    )
    actor = actor_name(user)
    with transaction.atomic():
        account_lock(account_id=clean["account"].pk)
        try:
            with transaction.atomic():
                order = _order_new(clean, user=user, origin=origin)
                order.save()
        except IntegrityError:
            existing = Order.objects.filter(account=clean["account"], client_order_id=clean["client_order_id"]).first()
            if existing is None:  # the constraint that fired was not idempotency
                raise
            return existing, False
        _audit_order(order, actor=actor, action="order.created", details={"origin": origin})

        evaluation = compliance_engine.evaluate(order=order, stage="submit", user=user)
        _order_compliance_outcome(order, evaluation, actor=actor)
    return order, True


def _order_compliance_outcome(order: Order, evaluation, *, actor: str) -> None:
    """Block: reject. Warn: hold for an override. Pass: route."""
    if evaluation.outcome == Outcome.BLOCK:
        order.reject_reason = "; ".join(evaluation.visible_reasons) or "Blocked by compliance."
        order.mark_rejected()
        order.save()
        _audit_order(
            order, actor=actor, action="order.compliance_rejected", details={"reasons": evaluation.visible_reasons}
        )
    elif evaluation.outcome == Outcome.WARN:
        if order.status != S.HELD:
            order.hold()
            order.save()
        _audit_order(order, actor=actor, action="order.held", details={"reasons": evaluation.visible_reasons})
    else:
        _order_route(order, actor=actor)


def _order_route(order: Order, *, actor: str) -> None:
    """Choose the venue (unless the trader did) and queue the NewOrderSingle, or
    reject: "no route", or a kill switch on the venue the router chose."""
    security = order.security
    venue = order.venue or routing_selectors.venue_choose(
        asset_class=security.asset_class, symbol=security.symbol, currency=security.currency
    )
    refusal = None
    if venue is None:
        refusal = "no route"
    elif (switch := compliance_selectors.kill_switch_active_for(scope="venue", target=venue.code)) is not None:
        refusal = f"Kill switch on (venue {venue.code}): {switch.reason}"
    if refusal is not None:
        order.reject_reason = refusal
        order.mark_rejected()
        order.save()
        _audit_order(order, actor=actor, action="order.rejected", details={"reason": refusal})
        return
    order.venue = venue
    order.cl_ord_id = _next_cl_ord_id(order, first=True)
    OrderRequest.objects.create(
        order=order,
        kind=OrderRequest.Kind.NEW,
        cl_ord_id=order.cl_ord_id,
        quantity=order.quantity,
        limit_price=order.limit_price,
        requested_by=order.created_by,
    )
    routing_services.outbox_message_enqueue(
        venue=venue,
        order_id=order.pk,
        cl_ord_id=order.cl_ord_id,
        msg_type=codec.MSG_NEW_ORDER_SINGLE,
        fields=codec.new_order_single(
            cl_ord_id=order.cl_ord_id,
            account=order.account.code,
            currency=security.currency,
            transact_time=_now(),
            **_order_terms(order),
        ),
    )
    order.send()
    order.save()
    _audit_order(order, actor=actor, action="order.routed", details={"venue": venue.code, "cl_ord_id": order.cl_ord_id})


# ----------------------------------------------------------------- cancel and amend
def _order_lock_for_trading(*, user, order_id: int, reduces_risk: bool = False) -> Order:
    """Lock the order if the user may act on it. NotFound if the user may not even see
    it (its existence is not revealed); NotPermitted if they see it but do not trade
    the account (middle office). A cancel reduces risk, so it is allowed on an account
    that has since been deactivated and does not wait for the account lock; anything
    that adds risk takes the account lock first (compliance consumes its limits)."""
    tradable = accounts_tradable_by(user=user, include_inactive=reduces_risk)
    if not tradable.filter(orders__pk=order_id).exists():
        if accounts_visible_to(user=user).filter(orders__pk=order_id).exists():
            raise NotPermitted("You may view this order but not trade its account.")
        raise NotFound("Order not found.")
    if reduces_risk:
        return order_lock(order_id=order_id)
    return order_lock_with_account(order_id=order_id)


def order_lock_with_account(*, order_id: int) -> Order:
    """Lock the order's account, then the order (the fixed lock order). For services
    of other apps (compliance releasing or rejecting a held order) inside their own
    transaction. NotFound if there is no such order."""
    account_id = Order.objects.filter(pk=order_id).values_list("account_id", flat=True).first()
    if account_id is None:
        raise NotFound("Order not found.")
    account_lock(account_id=account_id)
    return order_lock(order_id=order_id)


@_refusals_audited("order.cancel")
def order_cancel(*, user, order_id: int) -> Order:
    """Cancel at once if the order never left (staged, held, or its NewOrderSingle is
    still in the outbox); otherwise send an OrderCancelRequest -> pending_cancel."""
    with transaction.atomic():
        order = _order_lock_for_trading(user=user, order_id=order_id, reduces_risk=True)
        return _order_cancel_locked(order, user=user, actor=actor_name(user))


def _order_cancel_locked(order: Order, *, user, actor: str, reason: str = "") -> Order:
    before = order_snapshot(order)
    if order.status in (S.NEW, S.HELD) or (
        order.status == S.PENDING_NEW
        and not order.requests.exclude(kind=OrderRequest.Kind.NEW).exists()
        and routing_services.outbox_message_withdraw(order_id=order.pk, cl_ord_id=order.cl_ord_id)
    ):
        order.requests.filter(state=OrderRequest.State.PENDING).update(
            state=OrderRequest.State.WITHDRAWN, resolved_at=_now()
        )
        if order.status == S.HELD:
            compliance_services.overrides_withdraw(order=order, actor=actor)
        order.cancel_unsent()
        order.save()
        _audit_order(
            order, actor=actor, action="order.cancelled", before=before, details={"sent": False, "reason": reason}
        )
        return order
    if not can_proceed(order.request_cancel):
        raise InvalidStateTransition(_refusal_reason(order, "cancelled"), details={"status": order.status})
    cl_ord_id = _next_cl_ord_id(order)
    orig = _chain_predecessor(order)
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
            transact_time=_now(),
        ),
    )
    order.request_cancel()
    order.save()
    _audit_order(
        order,
        actor=actor,
        action="order.cancel_requested",
        before=before,
        details={"cl_ord_id": cl_ord_id, "reason": reason},
    )
    return order


def _refusal_reason(order: Order, verb: str) -> str:
    if order.status == S.PENDING_CANCEL:
        return f"Order cannot be {verb}: a cancel request is already pending."
    if order.status == S.PENDING_AMEND and verb == "amended":
        return "Order cannot be amended: an amendment is already pending."
    return f"Order cannot be {verb} in status {order.status}."


@_refusals_audited("order.amend")
def order_amend(*, user, order_id: int, quantity: Any = None, limit_price: Any = None) -> Order:
    """Send an OrderCancelReplaceRequest for a new quantity and/or limit price ->
    pending_amend. The order's terms change only when the venue confirms."""
    actor = actor_name(user)
    with transaction.atomic():
        order = _order_lock_for_trading(user=user, order_id=order_id)
        errors: dict[str, list[str]] = {}
        new_quantity = None
        if quantity is not None:
            new_quantity = _check_quantity(quantity, order.security.lot_size, "quantity", errors)
        new_price = _parse_price(limit_price, "limit_price", errors)
        if limit_price is not None and order.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            errors.setdefault("limit_price", []).append(f"A {order.order_type} order has no limit price.")
        if quantity is None and limit_price is None:
            errors["non_field_errors"] = ["Give a new quantity, a new limit price, or both."]
        elif not errors and (new_quantity in (None, order.quantity)) and (new_price in (None, order.limit_price)):
            errors["non_field_errors"] = ["The amendment changes nothing."]
        if errors:
            raise InvalidInput("Invalid amendment.", details=errors)
        if not can_proceed(order.request_amend):
            raise InvalidStateTransition(_refusal_reason(order, "amended"), details={"status": order.status})
        if order.status == S.FILLED and (
            new_quantity is None or new_quantity <= order.quantity or new_price not in (None, order.limit_price)
        ):
            # FIX 4.4 C.1.c: a filled order may be increased; "requests to change price on
            # a filled order will be rejected", and a decrease would change nothing.
            raise InvalidStateTransition(
                "A filled order can only be amended to a larger quantity.", details={"status": order.status}
            )

        changes = {"quantity": new_quantity, "limit_price": new_price}
        evaluation = compliance_engine.evaluate(order=order, stage="amend", user=user, changes=changes)
        if evaluation.outcome != Outcome.PASS:
            refusal = InvalidStateTransition(
                "Amendment refused by compliance: " + ("; ".join(evaluation.visible_reasons) or "see compliance."),
                code="compliance_refused",
                details={"status": order.status},
            )
            refusal.compliance_results = evaluation.results
            raise refusal

        before = order_snapshot(order)
        cl_ord_id = _next_cl_ord_id(order)
        orig = _chain_predecessor(order)
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
                transact_time=_now(),
                **_order_terms(order, quantity=new_quantity, limit_price=new_price),
            ),
        )
        order.request_amend()
        order.save()
        _audit_order(
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


# ------------------------------------------------------------ compliance workflow
def order_check(
    *,
    user,
    account: str,
    symbol: str,
    side: str,
    quantity: int,
    order_type: str,
    limit_price: Any = None,
    stop_price: Any = None,
    time_in_force: str = TimeInForce.DAY,
    expire_at: dt.datetime | None = None,
    venue: str | None = None,
    short_exempt_reason: str = "",
    client_order_id: str | None = None,
):
    """What-if: validate a prospective order and run every compliance rule on it,
    writing nothing (no order, no result, no locate, no review item, no audit)."""
    clean = _validate_submission(
        user=user,
        client_order_id=client_order_id or "what-if",
        account_code=account,
        symbol=symbol,
        side=side,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        stop_price=stop_price,
        time_in_force=time_in_force,
        expire_at=expire_at,
        venue_code=venue,
        short_exempt_reason=short_exempt_reason,
    )
    prospective = _order_new(clean, user=user, origin=Origin.API)
    return compliance_engine.evaluate(order=prospective, stage="check", user=user, dry_run=True)


def order_override_request(*, user, order_id: int, justification: Any):
    """A trader asks compliance to release a held order (RTS 6 art. 15(6))."""
    if not isinstance(justification, str) or not justification.strip():
        raise InvalidInput("Invalid override request.", details={"justification": ["This field is required."]})
    if len(justification) > 2000:
        raise InvalidInput("Invalid override request.", details={"justification": ["At most 2000 characters."]})
    with transaction.atomic():
        order = _order_lock_for_trading(user=user, order_id=order_id)
        if order.status != S.HELD:
            raise InvalidStateTransition(
                f"Only a held order can be overridden; this one is {order.status}.", details={"status": order.status}
            )
        return compliance_services.override_request_create(order=order, user=user, justification=justification.strip())


def order_release(*, order_id: int, user, covered: list[str]) -> Order:
    """Compliance approved an override: evaluate the held order again with the
    approved warnings covered. Pass: route it; block: reject it; a warning the
    approval does not cover keeps it held. Called by compliance inside its
    transaction, with the order locked through ``order_lock_with_account``."""
    actor = actor_name(user)
    order = order_lock_with_account(order_id=order_id)
    if order.status != S.HELD:
        raise InvalidStateTransition(
            f"Only a held order can be released; this one is {order.status}.", details={"status": order.status}
        )
    evaluation = compliance_engine.evaluate(order=order, stage="release", user=user, covered=covered)
    _order_compliance_outcome(order, evaluation, actor=actor)
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
    _audit_order(
        order, actor=actor_name(user), action="order.compliance_rejected", before=before, details={"reasons": [reason]}
    )
    return order


KILL_SWITCH_FILTERS = {
    "firm": lambda target: {},
    "account": lambda target: {"account__code": target},
    "trader": lambda target: {"created_by__username": target},
    "venue": lambda target: {"venue__code": target},
    "symbol": lambda target: {"security__symbol": target},
}
CANCELLABLE_STATUSES = (S.NEW, S.HELD, S.PENDING_NEW, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_AMEND)


def orders_cancel_in_scope(*, scope: str, target: str, actor: str, reason: str) -> list[int]:
    """Kill switch: send a cancel for every working order in scope (unsent ones are
    cancelled at once). One transaction per order, so one order's trouble does not
    hold back the others; an order that ended meanwhile is skipped. Returns the ids
    of the orders cancelled or with a cancel request queued."""
    order_ids = list(
        Order.objects.filter(status__in=CANCELLABLE_STATUSES, **KILL_SWITCH_FILTERS[scope](target))
        .order_by("id")
        .values_list("pk", flat=True)
    )
    done = []
    for order_id in order_ids:
        try:
            with transaction.atomic():
                order = order_lock(order_id=order_id)
                if order.status not in CANCELLABLE_STATUSES:
                    continue
                _order_cancel_locked(order, user=None, actor=actor, reason=reason)
                done.append(order_id)
        except InvalidStateTransition as exc:
            logger.warning("kill switch: order %s not cancelled: %s", order_id, exc.message)
    return done


# ------------------------------------------------------ execution reports from venues
TRADE_EXEC_TYPES = frozenset({"F", "1", "2", "G", "H"})  # 1/2: FIX 4.2 partial fill / fill
EXEC_TYPE_ACTIONS = {
    "0": "order.acknowledged",
    "1": "order.fill",
    "2": "order.fill",
    "3": "order.done_for_day",
    "4": "order.cancelled",
    "5": "order.replaced",
    "6": "order.pending_cancel",
    "7": "order.stopped",
    "8": "order.rejected",
    "9": "order.suspended",
    "A": "order.pending_new",
    "B": "order.calculated",
    "C": "order.expired",
    "D": "order.restated",
    "E": "order.pending_amend",
    "F": "order.fill",
    "G": "order.trade_corrected",
    "H": "order.trade_busted",
    "I": "order.status_report",
}
ORD_STATUS_TERMINAL = {"4": S.CANCELLED, "8": S.REJECTED, "C": S.EXPIRED, "3": S.DONE_FOR_DAY}
CXL_REJ_REASONS = {
    "0": "Too late to cancel",
    "1": "Unknown order",
    "2": "Broker / exchange option",
    "3": "Order already in pending cancel or pending replace status",
    "6": "Duplicate ClOrdID",
    "99": "Other",
}
ORD_REJ_REASONS = {
    "0": "Broker / exchange option",
    "1": "Unknown symbol",
    "2": "Exchange closed",
    "3": "Order exceeds limit",
    "4": "Too late to enter",
    "5": "Unknown order",
    "6": "Duplicate order",
    "11": "Unsupported order characteristic",
    "13": "Incorrect quantity",
    "15": "Unknown account",
    "99": "Other",
}


@dataclass(frozen=True)
class ApplyResult:
    outcome: str  # applied | duplicate | recorded | overfill | unknown_order
    order_id: int | None = None
    status: str | None = None


class _Refusal(Exception):
    """Inside apply: the message is recorded and flagged but changes nothing."""

    def __init__(self, kind: str, message: str, outcome: str = Execution.Outcome.RECORDED):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.outcome = outcome


def _normalise_tags(message: Mapping[Any, Any]) -> dict[int, str]:
    tags: dict[int, str] = {}
    for key, value in message.items():
        try:
            tag = int(key)
        except (TypeError, ValueError):
            raise InvalidInput("Message tags must be FIX tag numbers.", details={"tag": [str(key)]}) from None
        tags[tag] = value.decode() if isinstance(value, bytes) else str(value)
    return tags


def _tag_int(tags: dict[int, str], tag: int) -> int | None:
    value = tags.get(tag)
    if value in (None, ""):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"Tag {tag} is not a number.", details={str(tag): [value]}) from None
    if number != number.to_integral_value():
        raise InvalidInput(f"Tag {tag} must be a whole quantity.", details={str(tag): [value]})
    return int(number)


def _tag_decimal(tags: dict[int, str], tag: int) -> Decimal | None:
    value = tags.get(tag)
    if value in (None, ""):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"Tag {tag} is not a number.", details={str(tag): [value]}) from None
    if not number.is_finite():
        raise InvalidInput(f"Tag {tag} is not a number.", details={str(tag): [value]})
    return number


def _tag_time(tags: dict[int, str], tag: int) -> dt.datetime | None:
    value = tags.get(tag)
    if not value:
        return None
    for fmt in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def _flag(order: Order | None, *, venue: Venue, kind: str, message: str, details: dict[str, Any]) -> OrderFlag:
    logger.warning("order flag %s on order %s (venue %s): %s", kind, order.pk if order else None, venue.code, message)
    flag = OrderFlag.objects.create(order=order, venue_code=venue.code, kind=kind, message=message, details=details)
    if order is not None and not order.needs_review:
        Order.objects.filter(pk=order.pk).update(needs_review=True, updated_at=_now())
        order.needs_review = True
    audit_event_record(
        actor=f"venue:{venue.code}",
        action="order.flagged",
        object_type="order" if order else "venue",
        object_id=order.pk if order else venue.code,
        details={"kind": kind, "message": message, "flag_id": flag.pk, **details},
    )
    return flag


def _order_id_for_report(venue: Venue, tags: dict[int, str]) -> int | None:
    for tag in (11, 41):
        if tags.get(tag):
            order_id = (
                OrderRequest.objects.filter(cl_ord_id=tags[tag], order__venue=venue)
                .values_list("order_id", flat=True)
                .first()
            )
            if order_id:
                return order_id
    if tags.get(37):
        return Order.objects.filter(venue=venue, venue_order_id=tags[37]).values_list("pk", flat=True).first()
    return None


def _venue_originated_order(venue: Venue, tags: dict[int, str]) -> Order | None:
    """An acknowledgement for an order we never sent (a telephoned order, FIX E.1.a):
    book it against the account and security it names, for review."""
    account = Account.objects.filter(code=tags.get(1, "")).first()
    security = security_get(symbol=tags.get(55, ""))
    side = {v: k for k, v in codec.SIDE.items()}.get(tags.get(54, ""))
    quantity = _tag_int(tags, 38)
    if not (account and security and side and tags.get(37) and quantity and quantity > 0):
        return None
    price = _tag_decimal(tags, 44)
    client_order_id = f"{venue.code}:{tags[37]}"[:64]
    try:
        with transaction.atomic():
            order = Order.objects.create(
                client_order_id=client_order_id,
                account=account,
                security=security,
                side=side,
                quantity=quantity,
                order_type=OrderType.LIMIT if price else OrderType.MARKET,
                limit_price=price,
                venue=venue,
                venue_order_id=tags[37],
                origin=Origin.VENUE,
            )
    except IntegrityError:
        # The same report raced in from another worker and booked it first.
        return Order.objects.get(account=account, client_order_id=client_order_id)
    order.send()
    order.save()
    _audit_order(order, actor=f"venue:{venue.code}", action="order.created", details={"origin": Origin.VENUE})
    _flag(
        order,
        venue=venue,
        kind=OrderFlag.Kind.UNKNOWN_ORDER,
        message="Order booked from an unsolicited venue report.",
        details={"message": tags},
    )
    return order


def execution_report_apply(
    *, venue_code: str, message: Mapping[Any, Any], received_at: dt.datetime | None = None
) -> ApplyResult:
    """Apply one ExecutionReport (35=8) or OrderCancelReject (35=9), given as a dict of
    FIX tags, exactly once.

    Under the order's row lock: de-duplicate by ExecID (unique per venue), work out
    the FIX status with OrdStatus precedence, apply quantities, average price and
    position, and audit. Overfills, reports for ended orders and anything the state
    machine does not allow are recorded and flagged, never dropped and never applied
    silently."""
    tags = _normalise_tags(message)
    received_at = received_at or _now()
    venue = Venue.objects.filter(code=venue_code).first()
    if venue is None:
        raise InvalidInput("Unknown venue.", details={"venue": [venue_code]})
    msg_type = tags.get(35, "8")
    if msg_type not in ("8", "9"):
        raise InvalidInput(
            "Only ExecutionReport (8) and OrderCancelReject (9) apply to orders.", details={"35": [msg_type]}
        )
    if msg_type == "8" and not tags.get(150):
        raise InvalidInput("ExecutionReport without ExecType (150).", details={"150": ["required"]})

    with transaction.atomic():
        order_id = _order_id_for_report(venue, tags)
        if order_id is None and msg_type == "8" and tags.get(150) == "0":
            created = _venue_originated_order(venue, tags)
            order_id = created.pk if created else None
        if order_id is None:
            return _unknown_order_record(venue, tags, msg_type, received_at)
        order = order_lock(order_id=order_id)
        if msg_type == "9":
            return _cancel_reject_apply(order, venue, tags)
        return _execution_apply(order, venue, tags, received_at)


def _unknown_order_record(venue: Venue, tags: dict[int, str], msg_type: str, received_at: dt.datetime) -> ApplyResult:
    if msg_type == "8" and tags.get(17) and tags.get(150) != "I":
        try:
            with transaction.atomic():
                Execution.objects.create(
                    venue=venue,
                    exec_id=tags[17],
                    exec_type=tags.get(150, ""),
                    ord_status=tags.get(39, ""),
                    cl_ord_id=tags.get(11, ""),
                    last_qty=_tag_int(tags, 32) or 0,
                    last_px=_tag_decimal(tags, 31),
                    outcome=Execution.Outcome.RECORDED,
                    transact_time=_tag_time(tags, 60),
                    received_at=received_at,
                    message={str(k): v for k, v in tags.items()},
                )
        except IntegrityError:
            return ApplyResult("duplicate")
    _flag(
        None,
        venue=venue,
        kind=OrderFlag.Kind.UNKNOWN_ORDER,
        message="Report for an order this OMS does not know.",
        details={"message": tags},
    )
    return ApplyResult("unknown_order")


def _resolve_pending(order: Order, *, state: str, exclude_pk: int | None = None) -> None:
    qs = order.requests.filter(state=OrderRequest.State.PENDING)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    qs.update(state=state, resolved_at=_now())


def _precedence_status(order: Order) -> str:
    """OrdStatus precedence (FIX 4.4): pending cancel > pending replace > the status by
    quantities (filled > partially filled > new)."""
    pending = set(order.requests.filter(state=OrderRequest.State.PENDING).values_list("kind", flat=True))
    if OrderRequest.Kind.CANCEL in pending:
        return S.PENDING_CANCEL
    if OrderRequest.Kind.REPLACE in pending:
        return S.PENDING_AMEND
    return order.working_status()


def _request_for(order: Order, cl_ord_id: str | None, kind: str) -> OrderRequest | None:
    if not cl_ord_id:
        return None
    return order.requests.filter(cl_ord_id=cl_ord_id, kind=kind).first()


def _execution_apply(order: Order, venue: Venue, tags: dict[int, str], received_at: dt.datetime) -> ApplyResult:
    exec_type = tags[150]
    exec_id = tags.get(17) if exec_type != "I" else None
    actor = f"venue:{venue.code}"
    try:
        with transaction.atomic():
            execution = Execution.objects.create(
                venue=venue,
                exec_id=exec_id or None,
                order=order,
                exec_type=exec_type,
                ord_status=tags.get(39, ""),
                cl_ord_id=tags.get(11, ""),
                last_qty=_tag_int(tags, 32) or 0,
                last_px=_tag_decimal(tags, 31),
                transact_time=_tag_time(tags, 60),
                received_at=received_at,
                message={str(k): v for k, v in tags.items()},
            )
    except IntegrityError:
        # The same ExecID again (a resend, a replayed task): already applied once.
        return ApplyResult("duplicate", order.pk, order.status)

    before = order_snapshot(order)
    try:
        with transaction.atomic():
            late = _execution_effects(order, venue, tags, execution)
    except _Refusal as refusal:
        order.refresh_from_db()
        Execution.objects.filter(pk=execution.pk).update(outcome=refusal.outcome, in_effect=False)
        _flag(
            order,
            venue=venue,
            kind=refusal.kind,
            message=refusal.message,
            details={"exec_id": exec_id, "message": tags},
        )
        audit_event_record(
            actor=actor,
            action="order.report_not_applied",
            object_type="order",
            object_id=order.pk,
            before=before,
            after=order_snapshot(order),
            details={"exec_id": exec_id, "exec_type": exec_type, "reason": refusal.message},
        )
        return ApplyResult(refusal.outcome, order.pk, order.status)

    details = {
        "exec_id": exec_id,
        "exec_type": exec_type,
        "cl_ord_id": tags.get(11, ""),
        "last_qty": execution.last_qty,
        "last_px": execution.last_px,
        "transact_time": execution.transact_time,
    }
    for tag, name in ((58, "text"), (378, "restatement_reason"), (19, "exec_ref_id"), (103, "ord_rej_reason")):
        if tags.get(tag):
            details[name] = tags[tag]
    _audit_order(
        order,
        actor=actor,
        action=EXEC_TYPE_ACTIONS.get(exec_type, "order.execution_report"),
        before=before,
        details=details,
    )
    if late:
        _flag(
            order,
            venue=venue,
            kind=OrderFlag.Kind.LATE_EXECUTION,
            message=f"Execution {exec_id} reported on a {order.status} order.",
            details={"exec_id": exec_id},
        )
    reported_cum = _tag_int(tags, 14)
    if reported_cum is not None and reported_cum != order.filled_quantity:
        _flag(
            order,
            venue=venue,
            kind=OrderFlag.Kind.CUM_QTY_MISMATCH,
            message=f"Venue reports CumQty {reported_cum}, the OMS has {order.filled_quantity}.",
            details={"exec_id": exec_id},
        )
    return ApplyResult("applied", order.pk, order.status)


def _execution_effects(order: Order, venue: Venue, tags: dict[int, str], execution: Execution) -> bool:
    """Apply one report to the locked order; raise _Refusal to record it unapplied.
    Returns True when it was an execution applied to an ended order (J.1.b, J.1.d)."""
    exec_type = tags[150]
    status = order.status
    is_trade = exec_type in TRADE_EXEC_TYPES
    if status == S.REJECTED or (status in (S.CANCELLED, S.EXPIRED) and not is_trade):
        raise _Refusal(OrderFlag.Kind.TERMINAL_ORDER_MESSAGE, f"ExecType {exec_type} reported for a {status} order.")
    late = is_trade and status in STICKY_STATUSES
    if tags.get(37) and not order.venue_order_id:
        order.venue_order_id = tags[37]
    target: str | None = None  # None: the precedence status
    keep_sticky = status in STICKY_STATUSES

    if exec_type == "0":  # New: acknowledged (again, for a GT order the next day)
        order.acknowledged = True
        keep_sticky = False
    elif exec_type == "A":  # Pending New
        pass
    elif exec_type in ("F", "1", "2"):  # Trade
        if execution.last_qty <= 0 or execution.last_px is None or execution.last_px <= 0:
            raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, "Trade without a positive LastQty (32) and LastPx (31).")
        order.acknowledged = True
        Execution.objects.filter(pk=execution.pk).update(in_effect=True)
        _position_apply(order, qty=execution.last_qty, price=execution.last_px)
    elif exec_type in ("G", "H"):  # Trade Correct / Trade Cancel
        ref = Execution.objects.filter(venue=venue, order=order, exec_id=tags.get(19) or None, in_effect=True).first()
        if ref is None:
            raise _Refusal(
                OrderFlag.Kind.UNKNOWN_EXECUTION,
                f"ExecRefID {tags.get(19)!r} names no execution in effect on this order.",
            )
        Execution.objects.filter(pk=ref.pk).update(in_effect=False)
        Execution.objects.filter(pk=execution.pk).update(ref_execution=ref)
        _position_apply(order, qty=-ref.last_qty, price=ref.last_px)
        if exec_type == "G":
            if execution.last_qty <= 0 or execution.last_px is None or execution.last_px <= 0:
                raise _Refusal(
                    OrderFlag.Kind.UNEXPECTED_MESSAGE, "Trade correction without a positive LastQty and LastPx."
                )
            Execution.objects.filter(pk=execution.pk).update(in_effect=True)
            _position_apply(order, qty=execution.last_qty, price=execution.last_px)
    elif exec_type == "6":  # Pending Cancel
        request = _request_for(order, tags.get(11), OrderRequest.Kind.CANCEL)
        if request is None or request.state != OrderRequest.State.PENDING:
            raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, "Pending Cancel for no pending cancel request of ours.")
        OrderRequest.objects.filter(pk=request.pk).update(venue_acknowledged=True)
    elif exec_type == "E":  # Pending Replace
        request = _request_for(order, tags.get(11), OrderRequest.Kind.REPLACE)
        if request is None or request.state != OrderRequest.State.PENDING:
            raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, "Pending Replace for no pending replace request of ours.")
        OrderRequest.objects.filter(pk=request.pk).update(venue_acknowledged=True)
    elif exec_type == "4":  # Canceled: our request accepted, or unsolicited
        request = _request_for(order, tags.get(11), OrderRequest.Kind.CANCEL)
        if request is not None:
            OrderRequest.objects.filter(pk=request.pk).update(state=OrderRequest.State.ACCEPTED, resolved_at=_now())
            order.cl_ord_id = request.cl_ord_id
        _resolve_pending(order, state=OrderRequest.State.SUPERSEDED)
        target = S.CANCELLED
    elif exec_type == "5":  # Replace accepted: the venue's OrderQty is the quantity
        request = _request_for(order, tags.get(11), OrderRequest.Kind.REPLACE)
        if request is None or request.state != OrderRequest.State.PENDING:
            raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, "Replace for no pending replace request of ours.")
        OrderRequest.objects.filter(pk=request.pk).update(state=OrderRequest.State.ACCEPTED, resolved_at=_now())
        # Requests chained before this one can no longer take effect.
        order.requests.filter(
            kind=OrderRequest.Kind.REPLACE, state=OrderRequest.State.PENDING, pk__lt=request.pk
        ).update(state=OrderRequest.State.SUPERSEDED, resolved_at=_now())
        order.cl_ord_id = request.cl_ord_id
        confirmed = _tag_int(tags, 38)
        _restate_terms(
            order,
            quantity=confirmed if confirmed is not None else request.quantity,
            limit_price=_tag_decimal(tags, 44) or request.limit_price,
        )
        order.acknowledged = True
    elif exec_type == "D":  # Restated by the venue (quantity, price, GT renewal)
        _restate_terms(order, quantity=_tag_int(tags, 38), limit_price=_tag_decimal(tags, 44))
        keep_sticky = False
    elif exec_type == "8":
        if order.filled_quantity:
            # A venue rejects orders, not executions: an order with fills cannot be
            # rejected (the fills stand); a person must look at it.
            raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, "Venue rejected an order that has executions.")
        if tags.get(39) not in (None, "", "8"):
            # F.1.a/F.1.b: a reject carrying the OrdStatus of a live order rejects a
            # duplicate submission, not the order itself.
            raise _Refusal(
                OrderFlag.Kind.UNEXPECTED_MESSAGE,
                f"Venue rejected a duplicate of this order (OrdStatus {tags.get(39)}); the order stands.",
            )
        order.reject_reason = tags.get(58) or ORD_REJ_REASONS.get(tags.get(103, ""), "Rejected by venue")
        _resolve_pending(order, state=OrderRequest.State.SUPERSEDED)
        target = S.REJECTED
    elif exec_type == "C":
        _resolve_pending(order, state=OrderRequest.State.SUPERSEDED)
        target = S.EXPIRED
    elif exec_type == "3":
        target = S.DONE_FOR_DAY
    elif exec_type == "I":  # Order Status: reconcile what we may have missed
        ord_status = tags.get(39, "")
        if ord_status not in ("A", "8", ""):
            order.acknowledged = True
        if ord_status in ORD_STATUS_TERMINAL and ORD_STATUS_TERMINAL[ord_status] != status:
            if ORD_STATUS_TERMINAL[ord_status] != S.DONE_FOR_DAY:
                _resolve_pending(order, state=OrderRequest.State.SUPERSEDED)
            target = ORD_STATUS_TERMINAL[ord_status]
    elif exec_type in ("7", "9", "B"):  # Stopped, Suspended, Calculated: informational
        pass
    else:
        raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, f"Unknown ExecType {exec_type!r}.")

    _fills_recompute(order)
    if target is None:
        target = status if keep_sticky else _precedence_status(order)
    try:
        order.mark(target)
    except TransitionNotAllowed:
        raise _Refusal(
            OrderFlag.Kind.UNEXPECTED_MESSAGE, f"ExecType {exec_type} cannot move a {status} order to {target}."
        ) from None
    order.save()
    return late


def _restate_terms(order: Order, *, quantity: int | None, limit_price: Decimal | None) -> None:
    if quantity is not None:
        if quantity <= 0:
            raise _Refusal(OrderFlag.Kind.UNEXPECTED_MESSAGE, f"Venue restated OrderQty to {quantity}.")
        # A replace to below the filled quantity leaves the order filled at what it has.
        order.quantity = max(quantity, order.filled_quantity)
    if limit_price is not None and order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        order.limit_price = limit_price


def _fills_recompute(order: Order) -> None:
    """filled_quantity and the average price are the sum over executions in effect."""
    totals = Execution.objects.filter(order=order, in_effect=True).aggregate(
        qty=Sum("last_qty"), notional=Sum(F("last_qty") * F("last_px"))
    )
    filled = totals["qty"] or 0
    if filled > order.quantity:
        raise _Refusal(
            OrderFlag.Kind.OVERFILL,
            f"Execution would fill {filled} of an order for {order.quantity}: not applied.",
            outcome=Execution.Outcome.OVERFILL,
        )
    order.filled_quantity = filled
    order.avg_fill_price = (Decimal(totals["notional"]) / filled).quantize(PRICE_QUANT) if filled else None


def _position_apply(order: Order, *, qty: int, price: Decimal) -> None:
    """Apply a fill (qty > 0) or its reversal (qty < 0) to the account's position."""
    position = position_lock(account_id=order.account_id, security_id=order.security_id)
    notional = price * qty
    if order.side == Side.BUY:
        position.bought_quantity += qty
        position.bought_notional += notional
        position.quantity += qty
    else:
        position.sold_quantity += qty
        position.sold_notional += notional
        position.quantity -= qty
    position.save()


def _cancel_reject_apply(order: Order, venue: Venue, tags: dict[int, str]) -> ApplyResult:
    """OrderCancelReject: the request failed; the order returns to the status its
    quantities and remaining requests give (B.1.c, C.2.a: possibly filled)."""
    actor = f"venue:{venue.code}"
    before = order_snapshot(order)
    request = order.requests.filter(cl_ord_id=tags.get(11, "")).exclude(kind=OrderRequest.Kind.NEW).first()
    reason_code = tags.get(102, "")
    reason = tags.get(58) or CXL_REJ_REASONS.get(reason_code, "Rejected by venue")
    if request is None or request.state != OrderRequest.State.PENDING:
        _flag(
            order,
            venue=venue,
            kind=OrderFlag.Kind.UNKNOWN_REQUEST,
            message=f"Cancel reject for request {tags.get(11)!r}, which is not pending.",
            details={"message": tags},
        )
        return ApplyResult("recorded", order.pk, order.status)
    OrderRequest.objects.filter(pk=request.pk).update(
        state=OrderRequest.State.REJECTED, reject_reason=reason, resolved_at=_now()
    )
    if tags.get(39) in ("0", "1", "2", "3", "6", "E"):
        order.acknowledged = True
    if order.status not in STICKY_STATUSES:
        try:
            order.mark(_precedence_status(order))
        except TransitionNotAllowed:
            _flag(
                order,
                venue=venue,
                kind=OrderFlag.Kind.UNEXPECTED_MESSAGE,
                message=f"Cancel reject cannot move a {order.status} order.",
                details={"message": tags},
            )
    order.save()
    kind = "cancel" if request.kind == OrderRequest.Kind.CANCEL else "amend"
    _audit_order(
        order,
        actor=actor,
        action=f"order.{kind}_rejected",
        before=before,
        details={
            "cl_ord_id": request.cl_ord_id,
            "reason": reason,
            "cxl_rej_reason": reason_code,
            "ord_status": tags.get(39, ""),
        },
    )
    if reason_code == "1" and order.status in LIVE_STATUSES:
        _flag(
            order,
            venue=venue,
            kind=OrderFlag.Kind.UNKNOWN_REQUEST,
            message="Venue does not know the order (CxlRejReason 1).",
            details={"message": tags},
        )
    return ApplyResult("applied", order.pk, order.status)


# -------------------------------------------------------------------- reference data
@dataclass
class SecurityLoadReport:
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] | None = None


SECURITY_REQUIRED_COLUMNS = ("symbol", "name", "currency", "reference_price")


def security_rows_load(*, handle, actor: str) -> SecurityLoadReport:
    """Upsert securities from CSV rows. Bad rows are reported by line number and
    skipped; each good row is saved (and audited) on its own, so one bad line loses
    nothing else."""
    reader = csv.DictReader(handle)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in SECURITY_REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    reader.fieldnames = header
    report = SecurityLoadReport(errors=[])
    for row in reader:
        line = reader.line_num
        values = {k: (v or "").strip() for k, v in row.items() if k}
        problems = []
        symbol = values.get("symbol", "").upper()
        if not symbol or len(symbol) > 32 or not symbol.isprintable() or " " in symbol:
            problems.append("symbol: required, at most 32 characters, no spaces")
        if not values.get("name"):
            problems.append("name: required")
        currency = values.get("currency", "").upper()
        if len(currency) != 3 or not currency.isalpha():
            problems.append("currency: a three-letter ISO code")
        price_errors: dict[str, list[str]] = {}
        price = _parse_price(values.get("reference_price"), "reference_price", price_errors)
        if price is None:
            problems.append("reference_price: " + " ".join(price_errors.get("reference_price", ["required"])))
        asset_class = (values.get("asset_class") or AssetClass.EQUITY).upper()
        if asset_class not in AssetClass.values:
            problems.append(f"asset_class: one of {', '.join(AssetClass.values)}")
        lot_size = values.get("lot_size") or "1"
        if not lot_size.isdigit() or int(lot_size) < 1:
            problems.append("lot_size: a whole number of at least 1")
        active = (values.get("active") or "true").lower()
        if active not in ("true", "false", "1", "0", "yes", "no"):
            problems.append("active: true or false")
        if problems:
            report.errors.append((line, "; ".join(problems)))
            continue
        fields = {
            "name": values["name"][:200],
            "currency": currency,
            "reference_price": price,
            "reference_price_at": _now(),
        }
        # Optional columns change a security only when the file gives them: a price-only
        # refresh must not reactivate a delisted security or reset its lot size.
        optional = {
            "issuer": values.get("issuer", "")[:200],
            "asset_class": asset_class if values.get("asset_class") else "",
            "lot_size": int(lot_size) if values.get("lot_size") else None,
            "active": active in ("true", "1", "yes") if values.get("active") else None,
        }
        fields.update({key: value for key, value in optional.items() if value not in ("", None)})
        with transaction.atomic():
            existing = Security.objects.select_for_update().filter(symbol=symbol).first()
            before = None
            if existing is None:
                fields.setdefault("issuer", fields["name"])
            if existing:
                before = {k: getattr(existing, k) for k in fields}
                for key, value in fields.items():
                    setattr(existing, key, value)
                existing.save()
                created = False
            else:
                Security.objects.create(symbol=symbol, **fields)
                created = True
            audit_event_record(
                actor=actor,
                action="security.created" if created else "security.updated",
                object_type="security",
                object_id=symbol,
                before=before,
                after=fields,
            )
        if created:
            report.created += 1
        else:
            report.updated += 1
    return report


# ------------------------------------------------------------- the inbox, reconcile
INBOX_BATCH = 100


def inbox_apply(*, venue_code: str, batch_size: int = INBOX_BATCH) -> int:
    """Apply the venue's inbox: every stored, not yet applied inbound message, in the
    order the venue sent it (MsgSeqNum within its sequence generation).

    Workers are serialised per venue (an advisory lock held for the batch), so
    whichever task gets the lock applies everything and the others find nothing left.
    Each message is marked applied in the same transaction as its effect; one that
    fails is marked with its error and flagged (never lost) and the rest go on.
    Batches of ``batch_size`` messages commit one by one. Returns how many messages
    were taken (applied or failed)."""
    venue = Venue.objects.filter(code=venue_code).first()
    if venue is None:
        raise InvalidInput("Unknown venue.", details={"venue": [venue_code]})
    taken = 0
    while True:
        with transaction.atomic():
            routing_services.venue_lock_for_inbox(venue_id=venue.pk)
            messages = routing_selectors.inbox_unapplied(venue_id=venue.pk, limit=batch_size)
            for message in messages:
                _inbox_message_apply(venue, message)
        taken += len(messages)
        if len(messages) < batch_size:
            return taken


def _inbox_message_apply(venue: Venue, message) -> None:
    tags: dict[int, str] = {}
    for tag, value in message.fields:
        tags.setdefault(int(tag), str(value))  # first occurrence: no repeating groups used here
    order_id = None
    try:
        with transaction.atomic():  # a savepoint: a failure undoes this message only
            if message.msg_type in ("8", "9"):
                result = execution_report_apply(venue_code=venue.code, message=tags, received_at=message.received_at)
                outcome, order_id = result.outcome, result.order_id
            elif message.msg_type == "j":
                outcome = _business_reject_apply(venue, message)
            else:
                outcome = "ignored"
            routing_services.inbox_mark_applied(message=message, outcome=outcome)
    except (OperationalError, InterfaceError):
        raise  # transient: the task retries the whole batch
    except Exception as exc:
        logger.exception("inbox %s #%s/%s could not be applied", venue.code, message.epoch, message.msg_seq_num)
        error = getattr(exc, "message", None) or repr(exc)
        routing_services.inbox_mark_failed(message=message, error=str(error))
        order_id = _order_id_for_report(venue, tags) if message.msg_type in ("8", "9") else None
        _flag(
            Order.objects.filter(pk=order_id).first() if order_id else None,
            venue=venue,
            kind=OrderFlag.Kind.UNEXPECTED_MESSAGE,
            message=f"Inbound message {message.msg_seq_num} ({message.msg_type}) could not be applied: {error}",
            details={"inbound_message_id": message.pk, "epoch": message.epoch, "msg_seq_num": message.msg_seq_num},
        )
        outcome = "failed"
    # The raw message, against its order, in the batch's transaction (kept when the
    # apply failed and its savepoint rolled back).
    audit_event_record(
        actor=f"venue:{venue.code}",
        action="fix.received",
        object_type="order" if order_id else "fix_session",
        object_id=order_id or venue.code,
        details={
            "venue": venue.code,
            "epoch": message.epoch,
            "seq": message.msg_seq_num,
            "msg_type": message.msg_type,
            "message": message.raw.replace("\x01", "|"),
            "inbound_message_id": message.pk,
            "outcome": outcome,
        },
    )


def _business_reject_apply(venue: Venue, message) -> str:
    """BusinessMessageReject (j): audited against the message (and order) it names;
    the order is flagged for a person to look at, not changed."""
    order_id = routing_services.session_reject_record(venue_id=venue.pk, msg_type="j", fields=message.fields)
    order = Order.objects.filter(pk=order_id).first() if order_id else None
    if order is not None:
        tags = {int(tag): str(value) for tag, value in message.fields}
        _flag(
            order,
            venue=venue,
            kind=OrderFlag.Kind.UNEXPECTED_MESSAGE,
            message=f"Venue rejected our {tags.get(372, '?')} message: {tags.get(58, '') or tags.get(380, '')}",
            details={"ref_seq_num": tags.get(45, ""), "business_reject_reason": tags.get(380, "")},
        )
    return "recorded"


def venue_reconcile(*, venue_code: str) -> list[int]:
    """After a logon: queue an OrderStatusRequest (35=H) for every order still working
    (or awaiting an answer) at the venue, so whatever happened while we were away comes
    back as ExecutionReports (ExecType I) through the inbox. Orders whose message is
    still in the outbox are skipped: that message goes out first anyway. Returns the
    ids of the orders asked about."""
    venue = Venue.objects.filter(code=venue_code).first()
    if venue is None:
        raise InvalidInput("Unknown venue.", details={"venue": [venue_code]})
    stamp = _now().strftime("%Y%m%d%H%M%S%f")
    with transaction.atomic():
        queued = routing_selectors.outbox_pending_order_ids(venue_id=venue.pk)
        orders = (
            Order.objects.filter(venue=venue, status__in=LIVE_STATUSES)
            .exclude(pk__in=queued)
            .select_related("security")
            .order_by("id")
        )
        asked: list[int] = []
        for order in orders:
            cl_ord_id = order.cl_ord_id or order.client_order_id
            status_req_id = f"S{order.pk}-{stamp}"
            routing_services.outbox_message_enqueue(
                venue=venue,
                order_id=order.pk,
                # The status request's own id: the order's ClOrdID stays free for
                # outbox_message_withdraw, which looks for an unsent NewOrderSingle.
                cl_ord_id=status_req_id,
                msg_type=codec.MSG_ORDER_STATUS_REQUEST,
                fields=codec.order_status_request(
                    cl_ord_id=cl_ord_id,
                    venue_order_id=order.venue_order_id,
                    status_req_id=status_req_id,
                    symbol=order.security.symbol,
                    side=order.side,
                ),
            )
            asked.append(order.pk)
        audit_event_record(
            actor=f"system:reconcile:{venue.code}",
            action="venue.reconcile_requested",
            object_type="venue",
            object_id=venue.code,
            details={"order_ids": asked},
        )
    return asked
