"""The operating day around the venues' sessions: orders waiting for a session that
is coming back, and the end of a venue's day.

- ``orders_waiting_expire``: an order routed to a venue whose session was down waits
  in the outbox (``pending_new``); once it has waited ``OMS_ROUTE_WAIT_SECONDS`` and the
  session is still not up, it is rejected "venue X unavailable since T".
- ``end_of_day``: at a venue's session end its DAY orders still working end
  ``done_for_day`` (FIX: "no further executions forthcoming for the trading day"), and
  at any time GTD orders past their ``expire_at`` end ``expired`` ("canceled in
  broker's system due to time in force instructions"); each with an audit event saying
  the OMS closed it. Idempotent: an order already ended is left alone.

Both run from the workers (the FIX session host enqueues them by task name) and
``end_of_day`` also as ``manage.py end_of_day``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from oms_site.errors import InvalidStateTransition
from routing import selectors as routing_selectors
from routing import services as routing_services
from routing.models import Venue

from ..locks import order_lock
from ..models import LIVE_STATUSES, Order, OrderRequest, TimeInForce
from ..models import OrderStatus as S
from ._common import order_audit, order_snapshot
from .local_close import SYSTEM_CLOSE_STATUSES, order_close_locally

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "system:session-day"
# Statuses in which an order is still working at (or on its way to) a venue.
CLOSABLE = tuple(LIVE_STATUSES)


def route_wait_seconds() -> float:
    return float(getattr(settings, "OMS_ROUTE_WAIT_SECONDS", 60))


def orders_waiting_expire(*, now: dt.datetime | None = None, actor: str = SYSTEM_ACTOR) -> list[int]:
    """Reject the orders that waited longer than ``OMS_ROUTE_WAIT_SECONDS`` for a venue
    whose session is still down; returns their ids. An order whose NewOrderSingle the
    session claimed meanwhile is left to the venue (the withdraw is a compare-and-swap
    on the outbox row)."""
    now = now or timezone.now()
    overdue = list(
        routing_selectors.outbox_waiting_overdue(wait_seconds=route_wait_seconds(), now=now).values_list(
            "order_id", "venue_id"
        )
    )
    if not overdue:
        return []
    venues = {
        venue.pk: venue for venue in Venue.objects.filter(pk__in={v for _, v in overdue}).select_related("session")
    }
    down = {pk for pk, venue in venues.items() if not routing_selectors.venue_is_up(venue, now)}
    rejected = []
    for order_id, venue_id in sorted(overdue):
        if venue_id not in down:
            continue
        reason = routing_selectors.venue_unavailable_reason(venues[venue_id], now)
        if _waiting_reject(order_id=order_id, reason=reason, actor=actor):
            rejected.append(order_id)
    if rejected:
        logger.warning("rejected %d order(s) that waited for a venue session: %s", len(rejected), rejected)
    return rejected


def _waiting_reject(*, order_id: int, reason: str, actor: str) -> bool:
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        if order.status != S.PENDING_NEW or not routing_services.outbox_message_withdraw(
            order_id=order.pk, cl_ord_id=order.cl_ord_id
        ):
            return False
        before = order_snapshot(order)
        order.requests.filter(state=OrderRequest.State.PENDING).update(
            state=OrderRequest.State.WITHDRAWN, resolved_at=timezone.now()
        )
        order.reject_reason = reason
        order.mark_rejected()
        order.save()
        order_audit(order, actor=actor, action="order.rejected", before=before, details={"reason": reason})
    return True


@dataclass
class EndOfDayResult:
    """What one run closed: order ids by venue code (DAY orders) and the GTD orders."""

    day_orders: dict[str, list[int]] = field(default_factory=dict)
    gtd_orders: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def closed(self) -> int:
        return sum(len(ids) for ids in self.day_orders.values()) + len(self.gtd_orders)


def end_of_day(
    *, venue_code: str | None = None, now: dt.datetime | None = None, immediate: bool = False, actor: str = SYSTEM_ACTOR
) -> EndOfDayResult:
    """Close the day: for each enabled venue (or ``venue_code``), the DAY orders still
    working there that were entered before its last session end (``immediate``: before
    now, for a venue without a configured end, or a drill) end ``done_for_day``; and
    GTD orders past their ``expire_at`` end ``expired``. Idempotent."""
    now = now or timezone.now()
    result = EndOfDayResult()
    venues = Venue.objects.filter(enabled=True) if venue_code is None else Venue.objects.filter(code=venue_code)
    for venue in venues.order_by("code"):
        cutoff = now if immediate else venue.schedule.last_end(now)
        if cutoff is None:
            result.skipped[venue.code] = "no session end configured (use --now to close its day)"
            continue
        ids = list(
            Order.objects.filter(
                venue=venue, time_in_force=TimeInForce.DAY, status__in=CLOSABLE, created_at__lt=cutoff
            ).values_list("pk", flat=True)
        )
        closed = [
            pk
            for pk in sorted(ids)
            if _close(
                pk,
                actor=actor,
                final_status=S.DONE_FOR_DAY,
                action="order.closed_end_of_day",
                reason=f"end of day at venue {venue.code} ({cutoff:%Y-%m-%d %H:%M} UTC): closed by the OMS",
            )
        ]
        result.day_orders[venue.code] = closed
    # A desk order is not at a venue: its children (orders of their own) expire.
    gtd = Order.objects.filter(time_in_force=TimeInForce.GTD, status__in=CLOSABLE, expire_at__lte=now, desk_order=False)
    if venue_code is not None:
        gtd = gtd.filter(venue__code=venue_code)
    for pk, expire_at in sorted(gtd.values_list("pk", "expire_at")):
        if _close(
            pk,
            actor=actor,
            final_status=S.EXPIRED,
            action="order.expired_gtd",
            reason=f"good till {expire_at:%Y-%m-%d %H:%M:%S} UTC: expired by the OMS",
        ):
            result.gtd_orders.append(pk)
    if result.closed:
        logger.info("end of day: closed %d order(s) %s, GTD %s", result.closed, result.day_orders, result.gtd_orders)
    return result


def _close(order_id: int, *, actor: str, final_status: str, action: str, reason: str) -> bool:
    """Close one order, in its own transaction; False when it ended meanwhile."""
    order = Order.objects.filter(pk=order_id).only("status").first()
    if order is None or order.status not in CLOSABLE:
        return False
    try:
        order_close_locally(
            order_id=order_id,
            actor=actor,
            reason=reason,
            final_status=final_status,
            action=action,
            allowed=SYSTEM_CLOSE_STATUSES,
        )
    except InvalidStateTransition:
        return False  # it ended between the read and the lock
    return True
