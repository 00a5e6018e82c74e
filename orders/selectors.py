from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from oms_site.errors import NotFound

from .models import Account, Execution, Order, Position, Security

MIDDLE_OFFICE_GROUP = "middle_office"
TRADER_GROUP = "trader"
API_CLIENT_GROUP = "api_client"


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
    qs = Order.objects.filter(account__in=accounts_visible_to(user=user)).select_related("account", "security", "venue")
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
    return qs.order_by("-created_at", "-id")


def order_get_for_user(*, user, order_id: int) -> Order:
    """The order if the user may see it; NotFound otherwise (never reveals existence)."""
    order = (
        Order.objects.filter(pk=order_id, account__in=accounts_visible_to(user=user))
        .select_related("account", "security", "venue")
        .first()
    )
    if order is None:
        raise NotFound("Order not found.")
    return order


def execution_list(*, user, order_id: int | None = None) -> QuerySet[Execution]:
    qs = Execution.objects.filter(
        order__account__in=accounts_visible_to(user=user), exec_type__in=("F", "G", "H", "1", "2")
    ).select_related("order", "order__security", "venue", "ref_execution")
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
