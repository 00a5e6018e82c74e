from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Max, Prefetch, Q, QuerySet, Sum
from django_fsm import can_proceed

from audit.models import AuditEvent
from audit.selectors import audit_events_for_object
from compliance.models import OverrideRequest
from oms_site.errors import NotFound
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
    cached = getattr(user, "_oms_is_portfolio_manager", None)
    if cached is None:
        cached = user.groups.filter(name=PORTFOLIO_MANAGER_GROUP).exists()
        user._oms_is_portfolio_manager = cached
    return cached


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
    qs = Account.objects.all() if user.is_superuser else Account.objects.filter(traders=user)
    return qs if include_inactive else qs.filter(active=True)


def order_list(*, user, filters: dict[str, Any] | None = None) -> QuerySet[Order]:
    filters = filters or {}
    qs = (
        orders_visible_to(user=user)
        .select_related("account", "security", "venue", "owner")
        .prefetch_related(order_children_prefetch())
    )
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
    return qs.order_by("-created_at", "-id")


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


def execution_list(*, user, order_id: int | None = None) -> QuerySet[Execution]:
    qs = Execution.objects.filter(
        order__account__in=accounts_visible_to(user=user), exec_type__in=EXEC_TYPES_SHOWN
    ).select_related("order", "order__security", "venue", "ref_execution")
    if user_is_portfolio_manager(user):
        qs = qs.filter(order__in=orders_visible_to(user=user))
    if order_id is not None:
        qs = qs.filter(order_id=order_id)
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


def securities_get(*, symbols: Iterable[str]) -> dict[str, Security]:
    """Active securities by symbol (symbols are matched in upper case, as one is)."""
    return {
        s.symbol: s for s in Security.objects.filter(symbol__in={symbol.upper() for symbol in symbols}, active=True)
    }


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
    working_buy: int = 0
    working_sell: int = 0
    reference_price: Decimal | None = None

    @property
    def market_value(self) -> Decimal | None:
        return None if self.reference_price is None else self.reference_price * self.quantity


def average_cost(trades) -> tuple[int, Decimal | None]:
    """Position and its average cost by the weighted-average-cost method, from
    ``(signed quantity, price)`` trades in the order they happened: a trade that adds
    to the position moves the average, one that reduces it leaves the average as it
    is, and one that crosses zero starts the new side at its own price."""
    position, cost = 0, None
    for quantity, price in trades:
        if position == 0 or (position > 0) == (quantity > 0):
            total = abs(position) + abs(quantity)
            cost = ((cost or Decimal(0)) * abs(position) + price * abs(quantity)) / total
            position += quantity
        elif abs(quantity) <= abs(position):
            position += quantity
        else:
            position += quantity
            cost = price
        if position == 0:
            cost = None
    return position, (cost.quantize(Decimal("0.00000001")) if cost is not None else None)


def position_rows(*, user, account: str | None = None) -> list[PositionRow]:
    """Per account and security: the position, its average cost (from the executions
    in effect, busts and corrections included), and the quantity working to buy and
    to sell. Securities with working orders but no position yet are listed too."""
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
                reference_price=security.reference_price,
            )
        return rows[key]

    positions = Position.objects.filter(account__in=accounts).select_related("account", "security")
    for position in positions:
        row(position.account_id, position.security, position.account.code).quantity = position.quantity

    trades: dict[tuple[int, int], list[tuple[int, Decimal]]] = {}
    executions = (
        Execution.objects.filter(order__account__in=accounts, in_effect=True, last_px__isnull=False)
        .order_by("id")
        .values_list("order__account_id", "order__security_id", "order__side", "last_qty", "last_px")
    )
    for account_id, security_id, side, quantity, price in executions:
        signed = quantity if side == Side.BUY else -quantity
        trades.setdefault((account_id, security_id), []).append((signed, price))
    for key, position_trades in trades.items():
        if key in rows:
            rows[key].average_cost = average_cost(position_trades)[1]

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
