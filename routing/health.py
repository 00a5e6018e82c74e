"""The FIX sessions' part of the readiness probe (``/readyz``, oms_site.health): per
enabled venue, whether its session is up, as the hosting workers last wrote it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from .models import Venue, VenueSession


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def venue_session_health(venue: Venue, now: dt.datetime) -> dict[str, Any]:
    """One venue: ``state`` is ``up`` (logged on, its holder's lease live), ``closed``
    (outside its session schedule: expected, not a fault), ``down`` (open but not
    logged on, its holder gone, stopped by an operator or by a fatal error) or
    ``not_hosted`` (no worker has taken it up yet). No error text: it may name hosts;
    the FIX session console in the admin has it."""
    try:
        session = venue.session
    except VenueSession.DoesNotExist:
        session = None
    if not venue.schedule.is_open(now):
        state = "closed"
    elif session is None:
        state = "not_hosted"
    else:
        lease_live = session.lease_expires_at is not None and session.lease_expires_at > now
        state = "up" if session.status == VenueSession.Status.CONNECTED and lease_live else "down"
    health: dict[str, Any] = {"code": venue.code, "state": state}
    if session is not None:
        health.update(
            session=session.status,
            lease_live=session.lease_expires_at is not None and session.lease_expires_at > now,
            fatal=session.fatal,
            stopped=session.stopped,
            last_logon_at=_iso(session.last_logon_at),
            last_error_at=_iso(session.last_error_at),
            unavailable_since=_iso(session.unavailable_since),
        )
    return health


def venue_sessions_check() -> dict[str, Any]:
    """``ok`` when every enabled venue is up or closed by its schedule, else
    ``degraded`` naming the venues down."""
    now = timezone.now()
    venues = Venue.objects.filter(enabled=True).select_related("session").order_by("code")
    sessions = [venue_session_health(venue, now) for venue in venues]
    down = [health["code"] for health in sessions if health["state"] not in ("up", "closed")]
    return {"status": "degraded" if down else "ok", "down": down, "venues": sessions}
