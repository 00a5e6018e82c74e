"""Celery tasks of the orders app: thin (ids and JSON values in, one service call),
idempotent, acknowledged late, retried on transient database errors. The FIX session
hosts enqueue them by name (routing does not import orders)."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services

RETRY = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 20,
}


@shared_task(name="orders.tasks.inbox_apply", **RETRY)
def inbox_apply(venue_code: str) -> int:
    """Apply the venue's unapplied inbox messages in MsgSeqNum order. A worker finding
    another one applying them returns at once (that one takes these messages too)
    instead of holding a pool process blocked on the venue's lock."""
    return services.inbox_apply(venue_code=venue_code, wait=False)


@shared_task(name="orders.tasks.venue_reconcile", **RETRY)
def venue_reconcile(venue_code: str) -> int:
    """Ask the venue for the status of every order still working there (after logon)."""
    return len(services.venue_reconcile(venue_code=venue_code))


@shared_task(name="orders.tasks.route_wait_expire", **RETRY)
def route_wait_expire() -> int:
    """Reject the orders that waited too long for a venue session that stayed down."""
    return len(services.orders_waiting_expire())


@shared_task(name="orders.tasks.end_of_day", **RETRY)
def end_of_day(venue_code: str | None = None) -> int:
    """Close the day's DAY orders of venues whose session ended, and expired GTD orders."""
    return services.end_of_day(venue_code=venue_code).closed
