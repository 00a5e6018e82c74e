"""The kill switch on orders: compliance latches it (no new order in scope passes
from the commit on), then every working order in scope gets a cancel, one
transaction per order."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from audit.services import actor_name
from compliance import services as compliance_services
from compliance.models import KillSwitch
from compliance.services import KILL_SWITCH_TARGETS, KillSwitchResult
from routing.models import Venue

from ..locks import accounts_lock
from ..models import CANCELLABLE_STATUSES, Account, Order
from ..selectors import security_get
from .cancel import orders_cancel_each

logger = logging.getLogger(__name__)

KILL_SWITCH_FILTERS = {
    "firm": lambda target: {},
    "account": lambda target: {"account__code": target},
    "trader": lambda target: {"created_by__username": target},
    "venue": lambda target: {"venue__code": target},
    "symbol": lambda target: {"security__symbol": target},
}


def orders_cancel_in_scope(*, scope: str, target: str, actor: str, reason: str) -> list[int]:
    """Kill switch: send a cancel for every working order in scope (unsent ones are
    cancelled at once). One transaction per order, so one order's trouble does not
    hold back the others; an order that ended meanwhile is skipped. Returns the ids
    of the orders cancelled or with a cancel request queued."""
    with transaction.atomic():
        # An order whose compliance passed before the latch committed may still be in
        # flight under its account's lock (a single order for milliseconds, a basket
        # for seconds). Waiting for those locks (id order, as everyone takes them) lets
        # them commit first, so the sweep sees them; anything later meets the latch.
        accounts = Account.objects.filter(code=target) if scope == "account" else Account.objects.all()
        accounts_lock(account_ids=accounts.values_list("pk", flat=True))
        order_ids = list(
            Order.objects.filter(status__in=CANCELLABLE_STATUSES, **KILL_SWITCH_FILTERS[scope](target))
            .order_by("id")
            .values_list("pk", flat=True)
        )
    cancelled, _refused = orders_cancel_each(order_ids, user=None, actor=actor, reason=reason)
    return cancelled


def _kill_switch_target_problem(scope: str, target: str) -> str | None:
    exists = {
        KillSwitch.Scope.ACCOUNT: lambda: Account.objects.filter(code=target).exists(),
        KillSwitch.Scope.TRADER: lambda: get_user_model().objects.filter(username=target).exists(),
        KillSwitch.Scope.VENUE: lambda: Venue.objects.filter(code=target).exists(),
        KillSwitch.Scope.SYMBOL: lambda: security_get(symbol=target) is not None,
    }[scope]
    return None if exists() else f"Unknown {KILL_SWITCH_TARGETS[scope]} {target!r}."


def kill_switch_set(*, user, scope: Any, target: Any = "", active: Any, reason: Any) -> KillSwitchResult:
    """Switch on: latch first (no new orders in scope from the commit on), then a
    cancel for every working order in scope. Switch off: release the latch; working
    orders are not touched. Setting the state it is already in changes nothing."""
    result = compliance_services.kill_switch_latch(
        user=user, scope=scope, target=target, active=active, reason=reason, target_problem=_kill_switch_target_problem
    )
    switch = result.switch
    if not result.changed or switch.released_at is not None:
        return result
    # After the latch committed: no new order in scope can pass compliance, so the
    # sweep below cannot miss one that slips in behind it.
    actor = actor_name(user)
    cancelled = orders_cancel_in_scope(
        scope=switch.scope,
        target=switch.target,
        actor=actor,
        reason=f"kill switch {switch.scope} {switch.target}".strip(),
    )
    compliance_services.kill_switch_cancels_record(switch=switch, actor=actor, order_ids=cancelled)
    result.cancelled_order_ids = cancelled
    return result
