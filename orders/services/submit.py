"""Submitting an order: validate it against the security master and the user's
accounts, store it, run pre-trade compliance under the account lock, and route it
(block: rejected; warning: held for an override; pass: a NewOrderSingle in the
outbox). Also the what-if check, which runs the same rules and writes nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import actor_name, audit_events_store
from compliance import engine as compliance_engine
from compliance import references as compliance_references
from compliance import selectors as compliance_selectors
from compliance.models import ComplianceVerdict, Outcome
from oms_site.db import rows_batch, rows_insert, rows_update
from oms_site.errors import InvalidInput
from oms_site.prepared import RawRead, reads_together
from routing import selectors as routing_selectors
from routing import services as routing_services
from routing.fix import codec
from routing.models import Venue

from ..allocation import allocation_targets_validate
from ..locks import account_lock_then, accounts_lock
from ..models import Account, Order, OrderRequest, OrderStatus, OrderType, Origin, Security, Side, TimeInForce
from ..selectors import accounts_and_securities_get, user_is_portfolio_manager
from ._common import cl_ord_id_next, order_audit, order_audit_build, order_terms, price_parse, quantity_check
from .blocks import order_evaluate

S = OrderStatus


@dataclass(frozen=True)
class SubmissionReferences:
    """The accounts (those the user may trade), securities (active) and venues
    (enabled) that submissions name, read once: one order reads its own, a basket
    all of its lines' in three statements."""

    accounts: dict[str, Account]
    securities: dict[str, Security]
    venues: dict[str, Venue]


def submission_references(
    *, user, account_codes: Iterable[Any], symbols: Iterable[Any], venue_codes: Iterable[Any]
) -> SubmissionReferences:
    account_codes = {code for code in account_codes if isinstance(code, str)}
    symbols = {symbol for symbol in symbols if isinstance(symbol, str) and symbol}
    venue_codes = {code for code in venue_codes if isinstance(code, str) and code}
    accounts, securities = accounts_and_securities_get(user=user, codes=account_codes, symbols=symbols)
    return SubmissionReferences(
        accounts=accounts,
        securities=securities,
        venues=routing_selectors.venues_get_enabled(codes=venue_codes) if venue_codes else {},
    )


def submission_validate(
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
    allocations: Any = None,
) -> dict[str, Any]:
    """The validated fields of one order, or InvalidInput with field errors."""
    fund_codes = [line.get("account") for line in allocations if isinstance(line, dict)] if _listed(allocations) else []
    references = submission_references(
        user=user, account_codes=[account_code, *fund_codes], symbols=[symbol], venue_codes=[venue_code]
    )
    clean, errors = submission_check(
        references=references,
        client_order_id=client_order_id,
        account_code=account_code,
        symbol=symbol,
        side=side,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        stop_price=stop_price,
        time_in_force=time_in_force,
        expire_at=expire_at,
        venue_code=venue_code,
        short_exempt_reason=short_exempt_reason,
    )
    if allocations is not None or account_code in (None, ""):
        _block_check(clean, errors, references=references, account_code=account_code, allocations=allocations)
    if errors:
        raise InvalidInput("Invalid order.", details=errors)
    return clean


def _listed(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _block_check(
    clean: dict[str, Any],
    errors: dict[str, list[str]],
    *,
    references: SubmissionReferences,
    account_code: Any,
    allocations: Any,
) -> None:
    """A block order names its funds in ``allocations`` instead of an account: the
    lines valid (``orders.allocation``), every fund one the user may trade. The block's
    row takes the first fund's account; its targets are kept as entered."""
    if allocations is None:
        return  # no account and no allocations: submission_check said the account is required
    if account_code not in (None, ""):
        errors["allocations"] = ["Give an account, or allocations for a block order, not both."]
        return
    errors.pop("account", None)
    quantity = clean.get("quantity") if "quantity" not in errors else None
    lines, line_errors = allocation_targets_validate(lines=allocations, order_quantity=quantity)
    errors.update(line_errors)
    for index, line in enumerate(lines):
        if line["account"] not in references.accounts:
            errors.setdefault(f"allocations[{index}].account", []).append(
                "Unknown account, or you are not entitled to trade it."
            )
    if line_errors or any(key.startswith("allocations") for key in errors):
        return
    clean["account"] = references.accounts[lines[0]["account"]]
    clean["allocation_targets"] = [
        {"account": line["account"], "percent": f"{line['percent'].normalize():f}"}
        if "percent" in line
        else {"account": line["account"], "quantity": line["quantity"]}
        for line in lines
    ]


def submission_check(
    *,
    references: SubmissionReferences,
    client_order_id: Any,
    account_code: Any,
    symbol: Any,
    side: Any,
    quantity: Any,
    order_type: Any,
    limit_price: Any = None,
    stop_price: Any = None,
    time_in_force: Any = TimeInForce.DAY,
    expire_at: Any = None,
    venue_code: Any = None,
    short_exempt_reason: Any = "",
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Every check of one submission against the references read for it: the
    validated fields and the field errors (empty when it is valid). The one
    validation of an order, whether it comes alone or as a basket line."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}

    if not isinstance(client_order_id, str) or not client_order_id.strip():
        errors["client_order_id"] = ["This field is required."]
    elif len(client_order_id) > 64 or not client_order_id.isprintable():
        errors["client_order_id"] = ["At most 64 printable characters."]
    else:
        clean["client_order_id"] = client_order_id.strip()

    account = references.accounts.get(account_code) if isinstance(account_code, str) else None
    if account is None:
        errors["account"] = ["Unknown account, or you are not entitled to trade it."]
    clean["account"] = account

    security = references.securities.get(symbol.upper()) if isinstance(symbol, str) and symbol else None
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

    clean["quantity"] = quantity_check(quantity, security.lot_size if security else 1, "quantity", errors)
    clean["limit_price"] = price_parse(limit_price, "limit_price", errors)
    clean["stop_price"] = price_parse(stop_price, "stop_price", errors)

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
        elif expire_at <= timezone.now():
            errors["expire_at"] = ["Must be in the future."]
    elif expire_at is not None:
        errors["expire_at"] = ["Only allowed with time in force GTD."]
    clean["expire_at"] = expire_at if time_in_force == TimeInForce.GTD else None

    venue = None
    if venue_code not in (None, ""):
        venue = references.venues.get(venue_code) if isinstance(venue_code, str) else None
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

    return clean, errors


def order_build(clean: dict[str, Any], *, user, origin: str) -> Order:
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
        # Decided here, once, for every way an order is entered (API, ticket, basket):
        # a portfolio manager's order is not routed but waits for a trader.
        desk_order=user_is_portfolio_manager(user),
        block_order=bool(clean.get("allocation_targets")),
        allocation_targets=clean.get("allocation_targets") or [],
    )


def order_submit(
    *,
    user,
    client_order_id: str,
    account: str = "",
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
    allocations: list[dict[str, Any]] | None = None,
) -> tuple[Order, bool]:
    """Validate, persist, run compliance, route, and queue the NewOrderSingle.

    Returns ``(order, created)``; a repeated ``client_order_id`` for the same account
    returns the existing order with ``created=False`` and changes nothing. The account
    is locked first: its limits and locates are consumed one order at a time."""
    clean = submission_validate(
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
        allocations=allocations,
    )
    return order_create(clean, user=user, origin=origin)


def order_create(clean: dict[str, Any], *, user, origin: str, parent: Order | None = None) -> tuple[Order, bool]:
    """Store validated fields as an order, run compliance on it and reject, hold or
    route it (``order_submit``'s steps after validation; a child order of ``parent``
    takes the same ones). Returns ``(order, created)``."""
    actor = actor_name(user)
    with transaction.atomic():
        order = order_build(clean, user=user, origin=origin)
        order.parent = parent
        # Under the account's lock no one else can enter this account's order with
        # this ClOrdID, so looking first is race-free (no savepoint needed).
        targets = clean.get("allocation_targets")
        primed: dict = {}  # what compliance would read first: here, its reference data's version
        if targets:  # a block consumes each fund's limits: every fund's lock, in id order
            accounts_lock(codes=[line["account"] for line in targets])
            existing_id = order_id_reserve(order)
        else:  # the lock, the id and the version compliance checks, in one round trip
            version = compliance_references.reference_version_read()
            reads = (_id_reservation(order), *([version] if version else []))
            _, (reservation, *versions) = account_lock_then(account_id=clean["account"].pk, reads=reads)
            existing_id = _id_reserved(order, reservation[0])
            if version:
                compliance_references.references_prime(primed, versions[0])
        if existing_id is not None:
            return Order.objects.get(pk=existing_id), False
        # Every step runs on the order in memory; it is inserted once, in the state
        # they leave it, and the steps' rows follow in one statement each.
        writes = SubmitWrites(deferred=True)
        details = {"origin": origin} if parent is None else {"origin": origin, "parent": parent.pk}
        writes.audit(order, actor=actor, action="order.created", details=details)
        evaluation = order_evaluate(order=order, stage="submit", user=user, deferred=True, primed=primed)
        evaluated = len(writes.events_pending())
        order_compliance_outcome(order, evaluation, actor=actor, writes=writes)
        with rows_batch():  # the order and every row of its steps in one round trip
            rows_insert(Order, [order], keyed=True)
            verdict = compliance_engine.evaluation_record(
                evaluation, order=order, events=writes.events_pending(), position=evaluated
            )
            writes.flush()
    order_known_related(order, verdicts=[verdict])
    return order, True


def order_known_related(order: Order, *, verdicts: list) -> None:
    """What a new order's answer shows of its related rows is what its request wrote:
    its verdicts, and no executions. Kept on the order as prefetched, so the answer
    reads nothing back."""
    order.executions_shown = []
    # Filtered as the related manager's would be (anything chained on it reads this
    # order's verdicts, not every order's), but lazily, as that manager does: the
    # answer never builds the query.
    known = QuerySet(model=ComplianceVerdict)
    known._defer_next_filter = True
    known = known.filter(order_id=order.pk)
    known._result_cache = verdicts
    known._prefetch_done = True
    order._prefetched_objects_cache = {"compliance_verdicts": known}


def order_ids_reserve(count: int) -> list[int]:
    """``count`` order ids for orders not stored yet, ascending, in one statement."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('orders_order', 'id')) FROM generate_series(1, %s)", [count]
            )
            return sorted(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM orders_order")  # the embedded database: one writer
        start = cursor.fetchone()[0] + 1
    return list(range(start, start + count))


def order_id_reserve(order: Order) -> int | None:
    """Give the unsaved ``order`` its id before it is stored (ClOrdIDs and audit
    events name it), or return the id of the account's order that already has its
    ClOrdID. One statement on PostgreSQL; the caller holds the account's lock."""
    return _id_reserved(order, reads_together(_id_reservation(order))[0][0])


def _id_reservation(order: Order) -> RawRead:
    """The statement of ``order_id_reserve``: the next order id, and the id of the
    account's order with this ClOrdID if there is one."""
    if connection.vendor == "postgresql":
        reserve = "SELECT nextval(pg_get_serial_sequence('orders_order', 'id')), "
    else:  # the embedded database: one writer at a time, so the next id is free
        reserve = "SELECT (SELECT COALESCE(MAX(id), 0) + 1 FROM orders_order), "
    return RawRead(
        reserve + "(SELECT id FROM orders_order WHERE account_id = %s AND client_order_id = %s)",
        (order.account_id, order.client_order_id),
    )


def _id_reserved(order: Order, row: tuple) -> int | None:
    reserved, existing = row
    if existing is None:
        order.pk = reserved
    return existing


class SubmitWrites:
    """Where the steps after compliance put what they write. For one order (the
    default) every write happens at once. A basket (``deferred``) collects the routing
    rows, the status changes of held and routed orders and their audit events, and
    inserts them in bulk once every line is evaluated (``flush``): a held or routed
    order counts toward every limit exactly as its stored ``new`` row does (all three
    are working), so the next line's compliance sees the same exposure either way. A
    rejected order does not count, so its status is written before the next line."""

    def __init__(self, *, deferred: bool = False):
        self.deferred = deferred
        self._orders: dict[int, Order] = {}
        self._requests: list[OrderRequest] = []
        self._messages: list = []
        self._events: list = []

    def order_save(self, order: Order) -> None:
        if order._state.adding:  # the caller inserts it whole once every step is done
            return
        if self.deferred and order.status != S.REJECTED:
            order.updated_at = timezone.now()
            self._orders[order.pk] = order
        else:
            order.save()

    def audit(self, order: Order, *, actor: str, action: str, details=None) -> None:
        if self.deferred:
            self._events.append(order_audit_build(order, actor=actor, action=action, details=details))
        else:
            order_audit(order, actor=actor, action=action, details=details)

    def request_add(self, request: OrderRequest) -> None:
        if self.deferred:
            self._requests.append(request)
        else:
            request.save()

    def outbox_add(self, **message) -> None:
        if self.deferred:
            self._messages.append(routing_services.outbox_message_build(**message))
        else:
            routing_services.outbox_message_enqueue(**message)

    def events_pending(self) -> list:
        """The audit events collected and not stored yet, in the order of their steps
        (a step recorded later may put its own among them; ``flush`` stores them)."""
        return self._events

    def flush(self) -> None:
        """Write what was collected. The orders were inserted in this transaction
        under their account's lock, so no one else can have changed them; their
        transitions were checked by the state machine when they were made."""
        rows_insert(OrderRequest, self._requests, ids=False)
        routing_services.outbox_messages_enqueue(messages=self._messages)
        rows_update(Order, list(self._orders.values()), ["status", "venue", "cl_ord_id", "updated_at"])
        audit_events_store(self._events)
        self._orders, self._requests, self._messages, self._events = {}, [], [], []


def order_compliance_outcome(
    order: Order, evaluation, *, actor: str, writes: SubmitWrites | None = None, venues: list[Venue] | None = None
) -> None:
    """Block: reject. Warn: hold for an override. Pass: route, or, for a desk order
    (a portfolio manager's), leave it new in the desk's incoming queue."""
    writes = writes or SubmitWrites()
    if evaluation.outcome == Outcome.BLOCK:
        order.reject_reason = "; ".join(evaluation.visible_reasons) or "Blocked by compliance."
        order.mark_rejected()
        writes.order_save(order)
        writes.audit(
            order, actor=actor, action="order.compliance_rejected", details={"reasons": evaluation.visible_reasons}
        )
    elif evaluation.outcome == Outcome.WARN:
        if order.status != S.HELD:
            order.hold()
            writes.order_save(order)
        writes.audit(order, actor=actor, action="order.held", details={"reasons": evaluation.visible_reasons})
    elif order.desk_order:
        if order.status != S.NEW:  # released after an override
            order.queue_for_desk()
            writes.order_save(order)
        writes.audit(order, actor=actor, action="order.queued_for_desk", details={"account": order.account.code})
    else:
        switches = evaluation.cache.get("kill_switches")
        order_route(order, actor=actor, writes=writes, venues=venues, switches=switches)


def order_route(
    order: Order,
    *,
    actor: str,
    writes: SubmitWrites | None = None,
    venues: list[Venue] | None = None,
    switches: list | None = None,
) -> None:
    """Choose the venue (unless the trader did) and queue the NewOrderSingle, or
    reject: "no route", a venue closed or down until an operator acts
    (``routing.selectors.venue_route``), or a kill switch on the venue chosen. An order
    for a venue whose session is coming back waits in the outbox (``pending_new``). ``venues``:
    the routable venues when the caller has read them already (a basket);
    ``switches``: the active kill switches compliance read in this transaction."""
    writes = writes or SubmitWrites()
    security = order.security
    if order.venue is not None:
        venue, refusal = order.venue, routing_selectors.venue_refusal(order.venue)
    else:
        venue, refusal = routing_selectors.venue_route(
            routing_selectors.venues_routable() if venues is None else venues,
            asset_class=security.asset_class,
            symbol=security.symbol,
            currency=security.currency,
        )
    if refusal is None and (switch := _venue_switch(venue, switches)) is not None:
        refusal = f"Kill switch on (venue {venue.code}): {switch.reason}"
    if refusal is not None:
        order.reject_reason = refusal
        order.mark_rejected()
        writes.order_save(order)
        writes.audit(order, actor=actor, action="order.rejected", details={"reason": refusal})
        return
    order.venue = venue
    order.cl_ord_id = cl_ord_id_next(order, first=True)
    writes.request_add(
        OrderRequest(
            order=order,
            kind=OrderRequest.Kind.NEW,
            cl_ord_id=order.cl_ord_id,
            quantity=order.quantity,
            limit_price=order.limit_price,
            requested_by=order.created_by,
        )
    )
    writes.outbox_add(
        venue=venue,
        order_id=order.pk,
        cl_ord_id=order.cl_ord_id,
        msg_type=codec.MSG_NEW_ORDER_SINGLE,
        fields=codec.new_order_single(
            cl_ord_id=order.cl_ord_id,
            account=order.account.code,
            currency=security.currency,
            transact_time=timezone.now(),
            **order_terms(order),
        ),
    )
    order.send()
    writes.order_save(order)
    writes.audit(order, actor=actor, action="order.routed", details={"venue": venue.code, "cl_ord_id": order.cl_ord_id})


def _venue_switch(venue: Venue, switches: list | None):
    if switches is None:
        return compliance_selectors.kill_switch_active_for(scope="venue", target=venue.code)
    return next((s for s in switches if s.scope == "venue" and s.target == venue.code), None)


def order_check(
    *,
    user,
    account: str = "",
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
    allocations: list[dict[str, Any]] | None = None,
):
    """What-if: validate a prospective order and run every compliance rule on it,
    writing nothing (no order, no result, no locate, no review item, no audit)."""
    clean = submission_validate(
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
        allocations=allocations,
    )
    prospective = order_build(clean, user=user, origin=Origin.API)
    return order_evaluate(order=prospective, stage="check", user=user, dry_run=True)
