"""Baskets: many orders in one request. Submitting one is one transaction: every line
is validated first (any invalid line: nothing is created), then the lines go through
the single-order steps in line order under the locks of all their accounts, so each
line's compliance sees the lines before it exactly as if they had been submitted one
by one; what follows compliance (routing rows, status changes, audit events) is
written in bulk at the end. Cancelling a basket cancels its working orders, one
transaction per order."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from audit.services import actor_name, audit_event_build, audit_event_record
from compliance import engine as compliance_engine
from compliance.engine import Evaluation
from oms_site.db import rows_insert
from oms_site.errors import InvalidInput, NotPermitted
from routing import selectors as routing_selectors

from ..locks import accounts_lock
from ..models import CANCELLABLE_STATUSES, Basket, Order, OrderStatus, Origin
from ..selectors import accounts_tradable_by, basket_get_for_user, user_is_portfolio_manager
from .blocks import order_evaluate
from .cancel import orders_cancel_each
from .submit import (
    SubmitWrites,
    order_build,
    order_compliance_outcome,
    order_ids_reserve,
    order_known_related,
    submission_check,
    submission_references,
)

logger = logging.getLogger(__name__)

S = OrderStatus

BASKET_MAX_LINES = 5000
# A line's keys and the submission_check argument each one is.
LINE_FIELDS = {
    "client_order_id": "client_order_id",
    "account": "account_code",
    "symbol": "symbol",
    "side": "side",
    "quantity": "quantity",
    "order_type": "order_type",
    "limit_price": "limit_price",
    "stop_price": "stop_price",
    "time_in_force": "time_in_force",
    "expire_at": "expire_at",
    "venue": "venue_code",
    "short_exempt_reason": "short_exempt_reason",
}
# Without a value a line is checked as if these were None (and reported as missing).
REQUIRED_ARGUMENTS = ("client_order_id", "account_code", "symbol", "side", "quantity", "order_type")


def basket_submit(
    *, user, client_basket_id: Any, orders: Any, name: Any = "", origin: str = Origin.API
) -> tuple[Basket, bool]:
    """Validate every line, then create the basket and its orders in one transaction.

    ``orders`` is a list of order lines, each with the arguments of ``order_submit``
    (``client_order_id`` required, unique within the basket and not used before by an
    order of its account). Any invalid line: InvalidInput with
    ``details["orders"][str(index)]`` holding that line's field errors, and nothing
    is created. Returns ``(basket, created)``: the same ``client_basket_id`` again by
    the same user returns that basket with ``created=False`` and changes nothing,
    whatever the lines say this time."""
    if not getattr(user, "is_authenticated", False):
        raise NotPermitted("Sign in to submit a basket.")
    errors: dict[str, Any] = {}
    if not isinstance(client_basket_id, str) or not client_basket_id.strip():
        errors["client_basket_id"] = ["This field is required."]
    elif len(client_basket_id) > 64 or not client_basket_id.isprintable():
        errors["client_basket_id"] = ["At most 64 printable characters."]
    name = "" if name is None else name
    if not isinstance(name, str) or len(name) > 200:
        errors["name"] = ["At most 200 characters of text."]
    if not isinstance(orders, list) or not orders:
        errors["orders"] = ["At least one order line."]
    elif len(orders) > BASKET_MAX_LINES:
        errors["orders"] = [f"At most {BASKET_MAX_LINES} order lines."]
    if "client_basket_id" not in errors:
        client_basket_id = client_basket_id.strip()
        # A repeat answers from what the first submission stored, before its lines
        # (whose client order ids are now taken) are looked at. Only a shortcut: the
        # unique constraint below decides between racing submissions.
        existing = _basket_of(user=user, client_basket_id=client_basket_id)
        if existing is not None:
            return existing, False
    lines: list[dict[str, Any]] = []
    if "orders" not in errors:
        lines, line_errors = _lines_check(user=user, orders=orders)
        if line_errors:
            errors["orders"] = line_errors
    if errors:
        raise InvalidInput("Invalid basket.", details=errors)

    try:
        with transaction.atomic():
            accounts_lock(account_ids=[line["account"].pk for line in lines])
            try:
                with transaction.atomic():
                    basket = Basket.objects.create(
                        client_basket_id=client_basket_id, name=name.strip(), created_by=user
                    )
            except IntegrityError:
                existing = _basket_of(user=user, client_basket_id=client_basket_id)
                if existing is None:  # the constraint that fired was not idempotency
                    raise
                return existing, False
            _lines_submit(basket=basket, lines=lines, user=user, origin=origin)
    except IntegrityError:
        # A racing submission took a client order id after the lines were checked:
        # this basket rolled back whole; say which lines, as the check would have.
        taken = _client_order_ids_taken(lines)
        if not taken:
            raise
        raise InvalidInput("Invalid basket.", details={"orders": taken}) from None
    return basket, True


def basket_check(*, user, orders: list[Mapping[str, Any]]) -> list[dict[str, list[str]] | Evaluation]:
    """What-if for a basket's order lines, writing nothing: for each line, its field
    errors as ``basket_submit`` would report them (the references every line names
    read once, client order ids repeated in the basket or already taken), or, for a
    valid line, the compliance verdict it would get on its own (at submission each
    line's compliance also sees the lines before it)."""
    lines, errors = _lines_check(user=user, orders=list(orders))
    return [
        errors[str(index)]
        if str(index) in errors
        else order_evaluate(order=order_build(clean, user=user, origin=Origin.WEB), stage="check", user=user,
                            dry_run=True)
        for index, clean in enumerate(lines)
    ]  # fmt: skip


def _basket_of(*, user, client_basket_id: str) -> Basket | None:
    return Basket.objects.filter(created_by=user, client_basket_id=client_basket_id).first()


def _lines_check(*, user, orders: list) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[str]]]]:
    """Each line through the single order's validation (the references every line
    names read once), then what only a basket can get wrong: a client order id twice
    in the basket, or one an order of the account already has."""
    references = submission_references(
        user=user,
        account_codes=[line.get("account") for line in orders if isinstance(line, Mapping)],
        symbols=[line.get("symbol") for line in orders if isinstance(line, Mapping)],
        venue_codes=[line.get("venue") for line in orders if isinstance(line, Mapping)],
    )
    lines: list[dict[str, Any]] = []
    errors: dict[str, dict[str, list[str]]] = {}
    first_line_of: dict[str, int] = {}
    for index, line in enumerate(orders):
        if not isinstance(line, Mapping):
            errors[str(index)] = {"non_field_errors": ["An order line must be an object."]}
            continue
        unknown = sorted(str(key) for key in line if key not in LINE_FIELDS)
        arguments = dict.fromkeys(REQUIRED_ARGUMENTS)
        arguments.update({LINE_FIELDS[key]: value for key, value in line.items() if key in LINE_FIELDS})
        clean, line_errors = submission_check(references=references, **arguments)
        for key in unknown:
            line_errors[key] = ["Unknown field."]
        client_order_id = clean.get("client_order_id")
        if client_order_id is not None:
            if client_order_id in first_line_of:
                line_errors["client_order_id"] = [
                    f"Also on line {first_line_of[client_order_id]}: unique within the basket."
                ]
            else:
                first_line_of[client_order_id] = index
        if line_errors:
            errors[str(index)] = line_errors
        lines.append(clean)
    if not errors:
        errors = _client_order_ids_taken(lines)
    return lines, errors


def _client_order_ids_taken(lines: list[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """Lines whose client order id an order of their account already has."""
    wanted = {(line["account"].pk, line["client_order_id"]) for line in lines}
    taken = dict(
        ((account_id, client_order_id), pk)
        for account_id, client_order_id, pk in Order.objects.filter(
            account_id__in={account_id for account_id, _ in wanted},
            client_order_id__in={client_order_id for _, client_order_id in wanted},
        ).values_list("account_id", "client_order_id", "pk")
        if (account_id, client_order_id) in wanted
    )
    return {
        str(index): {
            "client_order_id": [
                f"Already used by order #{taken[key]} of account {line['account'].code}: a client order id "
                "identifies one order of an account."
            ]
        }
        for index, line in enumerate(lines)
        if (key := (line["account"].pk, line["client_order_id"])) in taken
    }


def _lines_submit(*, basket: Basket, lines: list[dict[str, Any]], user, origin: str) -> None:
    """The single order's steps for every line, in line order, under the accounts'
    locks: compliance on the order in memory, then reject, hold or route. The lines
    share what compliance reads (read once for the basket, each line's order added
    after its steps, so the next line sees it as if it were stored) and are stored
    together at the end: orders, verdicts, routing rows and audit events in one
    statement each. A line whose compliance reserves something (a locate, a review
    item) is stored at once, so the next line's reservation sees it."""
    actor = actor_name(user)
    writes = SubmitWrites(deferred=True)
    venues = routing_selectors.venues_routable()
    cache: dict = {}
    orders: list[Order] = []
    unstored: list[tuple[Order, Any]] = []
    for clean, pk in zip(lines, order_ids_reserve(len(lines)), strict=True):
        order = order_build(clean, user=user, origin=origin)
        order.pk = pk
        order.basket = basket
        writes.audit(order, actor=actor, action="order.created", details={"origin": origin, "basket": basket.pk})
        evaluation = compliance_engine.evaluate(order=order, stage="submit", user=user, deferred=True, cache=cache)
        evaluated = len(writes.events_pending())
        order_compliance_outcome(order, evaluation, actor=actor, writes=writes, venues=venues)
        if evaluation.commits:
            order.save(force_insert=True)
            verdict = compliance_engine.evaluation_record(
                evaluation, order=order, events=writes.events_pending(), position=evaluated
            )
        else:
            event = compliance_engine.evaluation_event_build(evaluation, order=order)
            writes.events_pending().insert(evaluated, event)
            verdict = compliance_engine.verdict_build(evaluation.results, order_id=order.pk)
            unstored.append((order, verdict))
        compliance_engine.order_added(cache, order)
        order_known_related(order, verdicts=[verdict])
        orders.append(order)
    rows_insert(Order, [order for order, _ in unstored], keyed=True)
    compliance_engine.verdicts_store([verdict for _, verdict in unstored])
    statuses = [order.status for order in orders]
    basket.lines_total = len(orders)
    basket.lines_routed = statuses.count(S.PENDING_NEW)
    basket.lines_held = statuses.count(S.HELD)
    basket.lines_rejected = statuses.count(S.REJECTED)
    basket.save(update_fields=["lines_total", "lines_routed", "lines_held", "lines_rejected"])
    writes.events_pending().append(
        audit_event_build(
            actor=actor,
            action="basket.created",
            object_type="basket",
            object_id=basket.pk,
            after={"client_basket_id": basket.client_basket_id, "name": basket.name, "counts": basket.counts},
            details={"origin": origin, "orders": [order.pk for order in orders]},
        )
    )
    writes.flush()
    # What the answer shows of a new basket is what this request wrote, in line order
    # (the ids were reserved ascending, in line order): rendered without reading back.
    basket.orders_entered = orders


@dataclass
class BasketCancelResult:
    basket: Basket
    cancelled: list[int] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)


def basket_cancel(*, user, basket_id: int) -> BasketCancelResult:
    """Cancel every working order of the basket in the accounts the user trades:
    unsent ones at once, the others with a cancel request (``order_cancel``'s step),
    one transaction per order like the kill switch's sweep, so one order's trouble
    does not hold back the others; an order that ended meanwhile is skipped. A basket
    with nothing working left is not an error (cancelling is "whatever still works",
    safe to repeat). NotFound if the user may not see the basket; NotPermitted if
    they see it but trade none of its accounts (middle office)."""
    basket = basket_get_for_user(user=user, basket_id=basket_id)
    if user_is_portfolio_manager(user):
        raise NotPermitted("A portfolio manager's orders are worked by the desk: only a trader may cancel them.")
    tradable = accounts_tradable_by(user=user, include_inactive=True)
    if not tradable.filter(orders__basket=basket).exists():
        raise NotPermitted("You may view this basket but not trade its accounts.")
    actor = actor_name(user)
    reason = f"basket {basket.pk} cancel"
    order_ids = list(
        Order.objects.filter(basket=basket, status__in=CANCELLABLE_STATUSES, account__in=tradable)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    cancelled, refused = orders_cancel_each(order_ids, user=user, actor=actor, reason=reason)
    result = BasketCancelResult(basket=basket, cancelled=cancelled, refused=refused)
    with transaction.atomic():
        audit_event_record(
            actor=actor,
            action="basket.cancel_requested",
            object_type="basket",
            object_id=basket.pk,
            details={"cancelled": result.cancelled, "refused": result.refused},
        )
    return result
