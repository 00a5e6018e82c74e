from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Max, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django_fsm import can_proceed

from audit.models import AuditEvent
from audit.selectors import audit_events_for_object
from compliance.models import OverrideRequest
from oms_site.errors import NotFound
from oms_site.prepared import PreparedRead, reads_together
from oms_site.roles import API_CLIENT_GROUP, MIDDLE_OFFICE_GROUP, PORTFOLIO_MANAGER_GROUP, TRADER_GROUP

from .models import (
    LIVE_STATUSES,
    PLACEABLE_STATUSES,
    Account,
    Allocation,
    Basket,
    Execution,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Security,
    Side,
)

__all__ = ["API_CLIENT_GROUP", "MIDDLE_OFFICE_GROUP", "TRADER_GROUP"]  # the group names, for callers of old


def user_is_portfolio_manager(user) -> bool:
    """A portfolio manager (and not a superuser): their orders wait for a trader, and
    they see only their own. Read once per user object."""
    if not getattr(user, "is_authenticated", False) or user.is_superuser:
        return False
    if _portfolio_manager_unknown(user):
        user._oms_is_portfolio_manager = bool(_PORTFOLIO_MANAGER.rows(user_id=user.pk))
    return user._oms_is_portfolio_manager


def _portfolio_manager_unknown(user) -> bool:
    return (
        getattr(user, "is_authenticated", False)
        and not user.is_superuser
        and getattr(user, "_oms_is_portfolio_manager", None) is None
    )


_PORTFOLIO_MANAGER = PreparedRead(
    lambda user_id: Group.objects.filter(user=user_id, name=PORTFOLIO_MANAGER_GROUP).values_list("pk")[:1],
    user_id=1,
)


def orders_visible_to(*, user) -> QuerySet[Order]:
    """The orders a user may see: those of the accounts visible to them; a portfolio
    manager sees only the orders they entered and the child orders working them."""
    qs = Order.objects.filter(account__in=accounts_visible_to(user=user))
    if user_is_portfolio_manager(user):
        qs = qs.filter(Q(created_by=user) | Q(parent__created_by=user))
    return qs


def user_sees_all_accounts(user) -> bool:
    return bool(user.is_superuser or user.groups.filter(name=MIDDLE_OFFICE_GROUP).exists())


def accounts_visible_to(*, user) -> QuerySet[Account]:
    """Accounts whose orders the user may see: the accounts they trade, or every
    account for middle office."""
    if user_sees_all_accounts(user):
        return Account.objects.all()
    return Account.objects.filter(traders=user)


def accounts_tradable_by(*, user, include_inactive: bool = False) -> QuerySet[Account]:
    """Accounts the user may submit, cancel and amend orders for (with
    ``include_inactive``, also deactivated ones: for cancels, which reduce risk)."""
    return _accounts_tradable(user_id=user.pk, superuser=user.is_superuser, include_inactive=include_inactive)


def _accounts_tradable(*, user_id: int, superuser: bool, include_inactive: bool = False) -> QuerySet[Account]:
    qs = Account.objects.all() if superuser else Account.objects.filter(traders=user_id)
    return qs if include_inactive else qs.filter(active=True)


_ACCOUNTS_TRADABLE = PreparedRead(
    lambda user_id, codes, superuser: _accounts_tradable(user_id=user_id, superuser=superuser).filter(code__in=codes),
    shape=("superuser",),
    user_id=1,
    codes=["A"],
)


def accounts_and_securities_get(
    *, user, codes: Iterable[str], symbols: Iterable[str]
) -> tuple[dict[str, Account], dict[str, Security]]:
    """The active accounts of ``codes`` the user may trade, by code, and the active
    securities of ``symbols`` by symbol (matched in upper case, as one is): what a
    submission names, read together."""
    codes, symbols = list(codes), sorted({symbol.upper() for symbol in symbols})
    reads = []
    if codes:
        reads.append((_ACCOUNTS_TRADABLE, {"user_id": user.pk, "codes": codes, "superuser": bool(user.is_superuser)}))
    if symbols:
        reads.append((_SECURITIES, {"symbols": symbols}))
    # Whether the user is a portfolio manager (their orders wait for a trader), which
    # the submission asks next: read with the rest when not known yet.
    role_unknown = user is not None and _portfolio_manager_unknown(user)
    if role_unknown:
        reads.append((_PORTFOLIO_MANAGER, {"user_id": user.pk}))
    results = iter(reads_together(*reads))
    accounts = {account.code: account for account in next(results)} if codes else {}
    securities = {security.symbol: security for security in next(results)} if symbols else {}
    if role_unknown:
        user._oms_is_portfolio_manager = bool(next(results))
    return accounts, securities


def order_list(*, user, filters: dict[str, Any] | None = None, sort: str | None = None) -> QuerySet[Order]:
    """The orders the user may see, filtered, each with its ``notional``; newest first,
    or by ``sort`` (a key of ``ORDER_SORTS``, ``-key`` descending; an unknown key is
    ignored)."""
    filters = filters or {}
    qs = (
        orders_visible_to(user=user)
        .select_related("account", "security", "venue", "owner")
        .prefetch_related(order_children_prefetch())
        .annotate(notional=ORDER_NOTIONAL)
    )
    if filters.get("ids") is not None:
        qs = qs.filter(pk__in=filters["ids"])
    if filters.get("incoming"):  # the desk's queue: orders waiting for a trader of the account
        qs = qs.filter(
            desk_order=True, owner__isnull=True, status=OrderStatus.NEW, account__in=accounts_tradable_by(user=user)
        )
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("symbol"):
        qs = qs.filter(security__symbol=filters["symbol"].upper())
    if filters.get("account"):
        qs = qs.filter(account__code=filters["account"])
    if filters.get("side"):
        qs = qs.filter(side=filters["side"])
    if filters.get("created_after"):
        qs = qs.filter(created_at__gte=filters["created_after"])
    if filters.get("created_on"):  # a trade date, in UTC
        qs = qs.filter(created_at__date=filters["created_on"])
    if filters.get("basket"):
        qs = qs.filter(basket_id=filters["basket"])
    return qs.order_by(*order_sort_terms(sort))


# An order's value: quantity at its limit price; with no limit (market, stop), at its
# average fill price once it has fills, else at the security's reference price.
ORDER_PRICE_ESTIMATE = Coalesce("limit_price", "avg_fill_price", "security__reference_price")
ORDER_NOTIONAL = ExpressionWrapper(
    F("quantity") * ORDER_PRICE_ESTIMATE, output_field=DecimalField(max_digits=30, decimal_places=8)
)
# Who works the order: its owner for a desk order, else who entered it.
ORDER_TRADER = Coalesce("owner__username", "created_by__username")
# The blotter's sort keys and what each sorts by (ties: by id, in the same direction).
ORDER_SORTS: dict[str, Any] = {
    "created": F("created_at"),
    "symbol": F("security__symbol"),
    "account": F("account__code"),
    "side": F("side"),
    "quantity": F("quantity"),
    "price": F("limit_price"),
    "status": F("status"),
    "filled": F("filled_quantity"),
    "notional": ORDER_NOTIONAL,
    "trader": ORDER_TRADER,
}
ORDER_SORT_DEFAULT = "-created"


def order_sort_key(sort: str | None) -> str:
    """``sort`` if it names a sort key (``-`` for descending), else the default."""
    return sort if sort and sort.removeprefix("-") in ORDER_SORTS else ORDER_SORT_DEFAULT


def order_sort_terms(sort: str | None) -> list:
    key = order_sort_key(sort)
    descending = key.startswith("-")
    expression = ORDER_SORTS[key.removeprefix("-")]
    if descending:
        return [expression.desc(nulls_last=True), F("id").desc()]
    return [expression.asc(nulls_last=True), F("id").asc()]


def order_children_prefetch() -> Prefetch:
    """A parent's child orders, oldest first, as ``children_shown`` (its API fields
    ``children`` and ``placed_quantity`` read them)."""
    return Prefetch("children", queryset=Order.objects.order_by("id"), to_attr="children_shown")


def order_get_for_user(*, user, order_id: int) -> Order:
    """The order if the user may see it; NotFound otherwise (never reveals existence)."""
    order = (
        orders_visible_to(user=user)
        .filter(pk=order_id)
        .select_related("account", "security", "venue", "owner")
        .prefetch_related(order_children_prefetch())
        .first()
    )
    if order is None:
        raise NotFound("Order not found.")
    return order


# The executions an order shows: trades, busts, corrections and the fill statuses.
EXEC_TYPES_SHOWN = ("F", "G", "H", "1", "2")


def order_allocations(*, order: Order) -> QuerySet[Allocation]:
    """A block's allocations, newest first, with their lines and venue."""
    return order.allocations.select_related("venue", "confirmed_by").prefetch_related("lines__account")


def order_executions_shown(*, order: Order) -> list[Execution]:
    """The order's executions as its detail shows them (prefetched by
    ``basket_orders``, else read)."""
    prefetched = getattr(order, "executions_shown", None)
    if prefetched is not None:
        return prefetched
    return list(order.executions.filter(exec_type__in=EXEC_TYPES_SHOWN).select_related("venue", "ref_execution"))


def baskets_visible_to(*, user) -> QuerySet[Basket]:
    """The baskets a user may see: those they submitted, every basket for middle
    office (who see every account). A trader never sees another trader's basket, even
    one with orders in an account both trade: a basket is one person's submission and
    may span accounts the viewer does not trade; its orders are visible to them
    through the orders API."""
    if user_sees_all_accounts(user):
        return Basket.objects.all()
    return Basket.objects.filter(created_by=user)


def basket_list(*, user) -> QuerySet[Basket]:
    return baskets_visible_to(user=user).order_by("-created_at", "-id")


def basket_get_for_user(*, user, basket_id: int) -> Basket:
    """The basket if the user may see it; NotFound otherwise (never reveals existence)."""
    basket = baskets_visible_to(user=user).filter(pk=basket_id).first()
    if basket is None:
        raise NotFound("Basket not found.")
    return basket


def basket_orders(*, user, basket: Basket) -> QuerySet[Order]:
    """The basket's orders in line order, those of accounts the user may see (its
    submitter may since have lost an account), with what their detail shows
    prefetched: a constant number of statements for any basket size."""
    return (
        orders_visible_to(user=user)
        .filter(basket=basket)
        .select_related("account", "security", "venue", "owner")
        .prefetch_related(
            "compliance_verdicts",
            Prefetch(
                "executions",
                queryset=Execution.objects.filter(exec_type__in=EXEC_TYPES_SHOWN)
                .select_related("venue", "ref_execution", "order__security")
                .order_by("id"),
                to_attr="executions_shown",
            ),
        )
        .order_by("id")
    )


def execution_list(*, user, order_id: int | None = None, filters: dict[str, Any] | None = None) -> QuerySet[Execution]:
    """The executions (fills, busts, corrections, cancels and rejects as the venue
    reported them) of the orders the user may see, newest first; ``filters``: ``order``
    (an order id), ``symbol``, ``account`` (the order's account: a block's first fund),
    ``created_on`` (the date received, UTC)."""
    filters = dict(filters or {})
    if order_id is not None:
        filters["order"] = order_id
    qs = Execution.objects.filter(
        order__account__in=accounts_visible_to(user=user), exec_type__in=EXEC_TYPES_SHOWN
    ).select_related("order", "order__security", "order__account", "venue", "ref_execution")
    if user_is_portfolio_manager(user):
        qs = qs.filter(order__in=orders_visible_to(user=user))
    if filters.get("order") is not None:
        qs = qs.filter(order_id=filters["order"])
    if filters.get("symbol"):
        qs = qs.filter(order__security__symbol=filters["symbol"].upper())
    if filters.get("account"):
        qs = qs.filter(order__account__code=filters["account"])
    if filters.get("created_on"):
        qs = qs.filter(received_at__date=filters["created_on"])
    return qs.order_by("-id")


def position_list(*, user, account: str | None = None, symbol: str | None = None) -> QuerySet[Position]:
    qs = Position.objects.filter(account__in=accounts_visible_to(user=user)).select_related("account", "security")
    if account:
        qs = qs.filter(account__code=account)
    if symbol:
        qs = qs.filter(security__symbol=symbol.upper())
    return qs.order_by("account__code", "security__symbol")


def security_get(*, symbol: str) -> Security | None:
    return Security.objects.filter(symbol=symbol.upper(), active=True).first()


_SECURITIES = PreparedRead(lambda symbols: Security.objects.filter(symbol__in=symbols, active=True), symbols=["A"])


def security_search(*, query: str, limit: int = 10) -> list[Security]:
    """Active securities for the ticket's symbol search: symbols starting with the
    query first, then names containing it."""
    query = (query or "").strip()
    if not query:
        return []
    active = Security.objects.filter(active=True)
    by_symbol = list(active.filter(symbol__istartswith=query).order_by("symbol")[:limit])
    if len(by_symbol) < limit:
        by_name = active.filter(name__icontains=query).exclude(pk__in=[s.pk for s in by_symbol]).order_by("symbol")
        by_symbol += list(by_name[: limit - len(by_symbol)])
    return by_symbol


@dataclass(frozen=True)
class OrderActions:
    """What a user may ask for on an order now (the services check again)."""

    can_cancel: bool
    can_amend: bool
    can_amend_price: bool
    can_request_override: bool


def order_actions(*, user, order: Order) -> OrderActions:
    trades = accounts_tradable_by(user=user, include_inactive=True).filter(pk=order.account_id).exists()
    if not trades or user_is_portfolio_manager(user):  # a PM's orders are worked by the desk
        return OrderActions(False, False, False, False)
    active = order.account.active
    # The same transitions the services take: cancelled at once, or asked of the venue.
    can_cancel = can_proceed(order.cancel_unsent) or can_proceed(order.request_cancel)
    # A filled order may only be increased (FIX 4.4 C.1.c): quantity, never price.
    can_amend = active and can_proceed(order.request_amend)
    priced = order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    return OrderActions(
        can_cancel=can_cancel,
        can_amend=can_amend,
        can_amend_price=can_amend and priced and order.status != OrderStatus.FILLED,
        can_request_override=active
        and order.status == OrderStatus.HELD
        and not order.override_requests.filter(status=OverrideRequest.Status.PENDING).exists(),
    )


@dataclass(frozen=True)
class DeskActions:
    """What a user may do with a desk order now (the desk services check again)."""

    can_accept: bool
    can_place_child: bool


def order_desk_actions(*, user, order: Order) -> DeskActions:
    """Accept it off the incoming queue (a trader of its account, not a portfolio
    manager, while it is new and unowned), or place a child (its owner, while it takes
    children)."""
    if not order.desk_order:
        return DeskActions(False, False)
    can_accept = (
        order.owner_id is None
        and order.status == OrderStatus.NEW
        and not user_is_portfolio_manager(user)
        and accounts_tradable_by(user=user).filter(pk=order.account_id).exists()
    )
    return DeskActions(can_accept, order.owner_id == user.pk and order.status in PLACEABLE_STATUSES)


def orders_version(*, orders: QuerySet[Order]) -> tuple:
    """Changes whenever any of these orders changes (each change saves the order,
    moving ``updated_at``): lets a live blotter skip rendering when nothing did."""
    version = orders.order_by().aggregate(count=Count("id"), latest=Max("updated_at"))
    return version["count"], version["latest"]


def blotter_version(*, orders: QuerySet[Order]) -> tuple:
    """``orders_version`` plus the latest reference price of their securities (an
    order with no limit and no fill is valued at it: its notional, the totals and
    the order by notional move with it), in one statement."""
    version = orders.order_by().aggregate(
        count=Count("id"), latest=Max("updated_at"), priced=Max("security__reference_price_at")
    )
    return version["count"], version["latest"], version["priced"]


@dataclass(frozen=True)
class BlotterTotals:
    """The filtered orders summed. Working: the leaves of the orders at the venue or
    on their way to it (as the Leaves column and the positions page count them),
    valued like the order (``ORDER_PRICE_ESTIMATE``); filled: filled quantity at the
    average fill price. A child order counts in its parent when the parent is among
    the orders too (the parent's fills are its children's)."""

    orders: int
    working_quantity: int
    working_notional: Decimal
    filled_quantity: int
    filled_notional: Decimal


def blotter_totals(*, orders: QuerySet[Order]) -> BlotterTotals:
    """Totals of all the filtered orders (not one page of them), in one statement."""
    orders = orders.order_by()
    counted = Q(parent__isnull=True) | ~Q(parent_id__in=orders.values("pk"))
    working = counted & Q(status__in=LIVE_STATUSES)
    leaves = F("quantity") - F("filled_quantity")
    amount = DecimalField(max_digits=30, decimal_places=8)
    totals = orders.aggregate(  # names of their own: an aggregate may not take a field's name
        total_orders=Count("id"),
        total_working=Sum(leaves, filter=working),
        total_working_notional=Sum(
            ExpressionWrapper(leaves * ORDER_PRICE_ESTIMATE, output_field=amount), filter=working
        ),
        total_filled=Sum("filled_quantity", filter=counted),
        total_filled_notional=Sum(
            ExpressionWrapper(F("filled_quantity") * F("avg_fill_price"), output_field=amount),
            filter=counted & Q(filled_quantity__gt=0),
        ),
    )
    return BlotterTotals(
        orders=totals["total_orders"],
        working_quantity=totals["total_working"] or 0,
        working_notional=totals["total_working_notional"] or Decimal(0),
        filled_quantity=totals["total_filled"] or 0,
        filled_notional=totals["total_filled_notional"] or Decimal(0),
    )


def orders_cancellable(*, user, orders: Iterable[Order]) -> set[int]:
    """The ids of ``orders`` the user may ask to cancel now: ``order_actions``'
    ``can_cancel`` for many orders in one statement (the service checks again)."""
    orders = list(orders)
    if not orders or user_is_portfolio_manager(user):
        return set()
    tradable = set(
        accounts_tradable_by(user=user, include_inactive=True)
        .filter(pk__in={order.account_id for order in orders})
        .values_list("pk", flat=True)
    )
    return {
        order.pk
        for order in orders
        if order.account_id in tradable and (can_proceed(order.cancel_unsent) or can_proceed(order.request_cancel))
    }


def order_version(*, order: Order) -> tuple:
    """Changes whenever the order page would: the order, its account's state, or its
    audit trail (fills, compliance, overrides and FIX messages all write one)."""
    last_event = audit_events_for_object(object_type="order", object_id=order.pk).aggregate(last=Max("id"))["last"]
    return order.updated_at, order.account.active, last_event


def order_override_requests(*, order: Order):
    """The order's override requests, newest first, with who asked and who decided."""
    return order.override_requests.select_related("requested_by", "decided_by").order_by("-id")


def order_compliance_results(*, order: Order):
    """The order's compliance verdicts as a trader may see them (never the internal,
    watch-list ones), in the order they were made."""
    return order.compliance_results.filter(internal=False).order_by("evaluated_at", "id")


FIX_MESSAGE_ACTIONS = ("fix.sent", "fix.received")


def order_timeline(*, order: Order) -> tuple[list[AuditEvent], list[AuditEvent]]:
    """The order's audit trail, oldest first, split into its events and the raw FIX
    messages sent and received for it."""
    events = list(audit_events_for_object(object_type="order", object_id=order.pk))
    messages = [e for e in events if e.action in FIX_MESSAGE_ACTIONS]
    return [e for e in events if e.action not in FIX_MESSAGE_ACTIONS], messages


@dataclass
class PositionRow:
    account: str
    symbol: str
    name: str
    quantity: int = 0
    average_cost: Decimal | None = None
    realized_pnl: Decimal = Decimal(0)
    unrealized_pnl: Decimal | None = Decimal(0)
    working_buy: int = 0
    working_sell: int = 0
    reference_price: Decimal | None = None

    @property
    def market_value(self) -> Decimal | None:
        return None if self.reference_price is None else self.reference_price * self.quantity


def position_rows(*, user, account: str | None = None) -> list[PositionRow]:
    """Per account and security: the position, its average cost and realized P&L (kept
    on the position with every fill and booking, busts and corrections included:
    ``orders.pnl``), its unrealized P&L at the reference price, and the quantity
    working to buy and to sell. Securities with working orders but no position yet
    are listed too."""
    accounts = accounts_visible_to(user=user)
    if account:
        accounts = accounts.filter(code=account)
    rows: dict[tuple[int, int], PositionRow] = {}

    def row(account_id: int, security: Security, account_code: str) -> PositionRow:
        key = (account_id, security.pk)
        if key not in rows:
            rows[key] = PositionRow(
                account=account_code,
                symbol=security.symbol,
                name=security.name,
                reference_price=security.reference_price or None,
            )
        return rows[key]

    positions = Position.objects.filter(account__in=accounts).select_related("account", "security")
    for position in positions:
        target = row(position.account_id, position.security, position.account.code)
        target.quantity, target.average_cost = position.quantity, position.average_cost
        target.realized_pnl, target.unrealized_pnl = position.realized_pnl, position.unrealized_pnl

    # Working quantities summed in the database: one row per account, security and side.
    working = (
        Order.objects.filter(account__in=accounts, status__in=LIVE_STATUSES)
        .values("account_id", "security_id", "side")
        .annotate(open_quantity=Sum(F("quantity") - F("filled_quantity")))
    )
    working = [w for w in working if w["open_quantity"] > 0]
    missing = {(w["account_id"], w["security_id"]) for w in working} - set(rows)
    if missing:
        codes = dict(Account.objects.filter(pk__in={a for a, _ in missing}).values_list("pk", "code"))
        known = Security.objects.in_bulk({s for _, s in missing})
        for account_id, security_id in missing:
            row(account_id, known[security_id], codes[account_id])
    for entry in working:
        target = rows[(entry["account_id"], entry["security_id"])]
        if entry["side"] == Side.BUY:
            target.working_buy += entry["open_quantity"]
        else:
            target.working_sell += entry["open_quantity"]
    return sorted(rows.values(), key=lambda r: (r.account, r.symbol))


# AllocationInstructionAck (FIX 35=P): read here as a literal, since ``compliance``
# reads orders' selectors and never depends on ``routing``.
ALLOCATION_ACK_MSG_TYPE = "P"


def order_allocation_acks(*, order_id: int, alloc_ids: set[str] | None = None) -> list[AuditEvent]:
    """The AllocationInstructionAcks (35=P) received for a block, oldest first, from
    its audit trail (``details["message"]`` is the raw message, | separated); only
    those naming one of ``alloc_ids`` (AllocID, tag 70) when given."""
    events = audit_events_for_object(object_type="order", object_id=order_id).filter(
        action="fix.received", details__msg_type=ALLOCATION_ACK_MSG_TYPE
    )
    return [e for e in events if alloc_ids is None or ack_alloc_id(e) in alloc_ids]


def ack_alloc_id(event: AuditEvent) -> str:
    """The AllocID (70) of a received message on the audit trail."""
    for part in (event.details or {}).get("message", "").split("|"):
        tag, _, value = part.partition("=")
        if tag == "70":
            return value
    return ""


def order_allocations_version(*, order: Order) -> tuple:
    """Changes whenever a block's allocations do (a status, a line, an ack): with
    ``order_version`` (whose audit trail moves when an instruction is sent), what the
    block's live page shows."""
    version = order.allocations.order_by().aggregate(count=Count("id"), latest=Max("updated_at"))
    return version["count"], version["latest"]


def orders_nested(orders) -> list[Order]:
    """A blotter page with each child order moved right under its parent (oldest
    child first) when the parent is on the page too, marked ``nested``; the rest keep
    their order."""
    orders = list(orders)
    on_page = {order.pk for order in orders}
    children: dict[int, list[Order]] = {}
    for order in orders:
        order.nested = order.parent_id in on_page
        if order.nested:
            children.setdefault(order.parent_id, []).append(order)
    nested: list[Order] = []
    for order in orders:
        if not order.nested:
            nested.append(order)
            nested.extend(sorted(children.get(order.pk, ()), key=lambda child: child.pk))
    return nested


@dataclass
class PositionTotals:
    """One account's positions (``rows``) summed: market value, realized and
    unrealized P&L (the unrealized total is missing when a security has no reference
    price: a total that leaves one out would mislead)."""

    account: str
    rows: list[PositionRow] = field(default_factory=list)
    market_value: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    unrealized_pnl: Decimal | None = Decimal(0)


def position_totals(rows: list[PositionRow]) -> list[PositionTotals]:
    """``position_rows`` grouped by account, each group with its totals."""
    totals: dict[str, PositionTotals] = {}
    for r in rows:
        total = totals.setdefault(r.account, PositionTotals(account=r.account))
        total.rows.append(r)
        total.market_value += r.market_value or 0
        total.realized_pnl += r.realized_pnl
        if total.unrealized_pnl is not None:
            total.unrealized_pnl = None if r.unrealized_pnl is None else total.unrealized_pnl + r.unrealized_pnl
    return [totals[code] for code in sorted(totals)]
