from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils import timezone

from oms_site.prepared import PreparedRead, reads_together

from .models import InboundMessage, OutboundMessage, Venue, VenueSession


def venue_get_enabled(*, code: str) -> Venue | None:
    return Venue.objects.filter(code=code, enabled=True).select_related("session").first()


def venues_get_enabled(*, codes: Iterable[str]) -> dict[str, Venue]:
    venues = Venue.objects.filter(code__in=set(codes), enabled=True).select_related("session")
    return {venue.code: venue for venue in venues}


def venues_routable() -> list[Venue]:
    """The enabled venues with their session rows, best priority first: what the
    router chooses from (a basket reads them once for all its lines)."""
    venues, session_rows = reads_together((_ROUTABLE, {}), (_ROUTABLE_SESSIONS, {}))
    sessions = {session.venue_id: session for session in session_rows}
    for venue in venues:  # as select_related("session") leaves them
        session = sessions.get(venue.pk)
        Venue.session.related.set_cached_value(venue, session)
        if session is not None:
            VenueSession.venue.field.set_cached_value(session, venue)
    return venues


# Two reads compiled once per process and sent together (``oms_site.prepared``) cost
# less than one the ORM builds with select_related each time.
_ROUTABLE = PreparedRead(lambda: Venue.objects.filter(enabled=True).order_by("priority", "code"))
_ROUTABLE_SESSIONS = PreparedRead(lambda: VenueSession.objects.filter(venue__enabled=True))


def _session(venue: Venue) -> VenueSession | None:
    try:
        return venue.session
    except VenueSession.DoesNotExist:
        return None


def venue_is_up(venue: Venue, now: dt.datetime) -> bool:
    """Logged on by a worker whose lease is live, or never hosted yet (a fresh install:
    its orders wait in the outbox for the first logon)."""
    session = _session(venue)
    if session is None:
        return True
    return session.status == VenueSession.Status.CONNECTED and (
        session.lease_expires_at is not None and session.lease_expires_at > now
    )


def venue_down_for_good(venue: Venue) -> str | None:
    """Why the venue's session will not come back by itself (stopped by an operator,
    or a fatal error only an operator can clear), else None."""
    session = _session(venue)
    if session is None:
        return None
    if session.fatal:
        return "its FIX session stopped on an error an operator must clear"
    if session.stopped:
        return "its FIX session was disconnected by an operator"
    return None


def venue_down_since(venue: Venue, now: dt.datetime) -> dt.datetime:
    """Since when the venue has not taken orders: when it logged off, or when its
    holder's lease ran out (a worker that died while logged on)."""
    session = _session(venue)
    if session is None:
        return now
    if session.unavailable_since is not None:
        return session.unavailable_since
    if session.lease_expires_at is not None and session.lease_expires_at <= now:
        return session.lease_expires_at
    return session.updated_at or now


def venue_route(
    venues: Iterable[Venue], *, asset_class: str, symbol: str, currency: str, now: dt.datetime | None = None
) -> tuple[Venue | None, str | None]:
    """The router: (venue, None) or (None, why not). Among ``venues`` (best priority
    first) that take the order: the first that is open and logged on; else the first
    that is open with its session coming back (the order waits in the outbox for it,
    up to ``OMS_ROUTE_WAIT_SECONDS``); else a refusal naming why: closed outside its
    session schedule, down until an operator acts, or "no route"."""
    now = now or timezone.now()
    taking = [v for v in venues if v.takes(asset_class=asset_class, symbol=symbol, currency=currency)]
    open_ = [v for v in taking if v.schedule.is_open(now)]
    for venue in open_:
        if venue_is_up(venue, now):
            return venue, None
    for venue in open_:
        if venue_down_for_good(venue) is None:
            return venue, None
    if open_:
        return None, venue_unavailable_reason(open_[0], now)
    if taking:
        return None, venue_closed_reason(taking[0], now)
    return None, "no route"


def venue_refusal(venue: Venue, now: dt.datetime | None = None) -> str | None:
    """Why an order the trader sent to ``venue`` cannot go there (closed, or down until
    an operator acts), else None: it goes out now or waits for the session."""
    now = now or timezone.now()
    if not venue.schedule.is_open(now):
        return venue_closed_reason(venue, now)
    if not venue_is_up(venue, now) and venue_down_for_good(venue) is not None:
        return venue_unavailable_reason(venue, now)
    return None


def venue_closed_reason(venue: Venue, now: dt.datetime) -> str:
    schedule = venue.schedule
    opens = schedule.next_open(now)
    reopens = f"; opens {opens:%Y-%m-%d %H:%M} UTC" if opens else ""
    return f"venue {venue.code} closed (session {schedule.describe()}{reopens})"


def venue_unavailable_reason(venue: Venue, now: dt.datetime) -> str:
    since = venue_down_since(venue, now)
    why = venue_down_for_good(venue)
    return f"venue {venue.code} unavailable since {since:%Y-%m-%d %H:%M:%S} UTC" + (f": {why}" if why else "")


def venue_choose(*, asset_class: str, symbol: str, currency: str) -> Venue | None:
    """The venue the router would choose now, or None (see ``venue_route``)."""
    return venue_route(venues_routable(), asset_class=asset_class, symbol=symbol, currency=currency)[0]


def venues_to_host() -> list[tuple[int, str]]:
    """(id, code) of the venues whose sessions the hosting workers bring up."""
    return list(Venue.objects.filter(enabled=True).order_by("id").values_list("id", "code"))


def venue_session_get(*, venue_id: int) -> VenueSession | None:
    return VenueSession.objects.select_related("venue").filter(venue_id=venue_id).first()


def venue_codes_with_unapplied_inbox() -> list[str]:
    return list(
        Venue.objects.filter(inbound_messages__applied_at__isnull=True, inbound_messages__error="")
        .distinct()
        .order_by("code")
        .values_list("code", flat=True)
    )


def inbox_unapplied(*, venue_id: int, limit: int) -> list[InboundMessage]:
    """The venue's inbox messages not yet applied (nor failed), in the order the venue
    sent them: sequence generation, then MsgSeqNum."""
    return list(
        InboundMessage.objects.filter(venue_id=venue_id, applied_at__isnull=True, error="").order_by(
            "epoch", "msg_seq_num"
        )[:limit]
    )


def inbox_has_unapplied(*, venue_id: int) -> bool:
    """Whether the venue's inbox holds a message not yet applied (nor failed)."""
    return InboundMessage.objects.filter(venue_id=venue_id, applied_at__isnull=True, error="").exists()


def outbox_pending_order_ids(*, venue_id: int):
    """A lazy queryset of order ids, meant as a subquery (``pk__in``) so the caller's
    one statement sees the outbox and its orders in the same snapshot."""
    return OutboundMessage.objects.filter(venue_id=venue_id, state=OutboundMessage.State.PENDING).values("order_id")


def outbox_waiting_overdue(*, wait_seconds: float, now: dt.datetime | None = None):
    """The NewOrderSingles still unsent after ``wait_seconds``: their orders may be
    waiting for a session that is not coming back in time (a lazy queryset)."""
    cutoff = (now or timezone.now()) - dt.timedelta(seconds=wait_seconds)
    return OutboundMessage.objects.filter(state=OutboundMessage.State.PENDING, msg_type="D", created_at__lt=cutoff)


def outbox_waiting_overdue_exists(*, wait_seconds: float) -> bool:
    return outbox_waiting_overdue(wait_seconds=wait_seconds).exists()


def outbox_pending_ids(*, venue_id: int, limit: int) -> list[int]:
    return list(
        OutboundMessage.objects.filter(venue_id=venue_id, state=OutboundMessage.State.PENDING)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def venues_enabled() -> list[Venue]:
    """Venues a trader may pick on the ticket, by the router's preference."""
    return list(Venue.objects.filter(enabled=True).order_by("priority", "code"))


def outbox_messages_for_order(*, order_id: int, msg_type: str) -> list[OutboundMessage]:
    """The messages of ``msg_type`` queued for an order (any state), oldest first."""
    return list(OutboundMessage.objects.filter(order_id=order_id, msg_type=msg_type).order_by("id"))
