from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q
from django.db.models.functions import Now

from .models import InboundMessage, OutboundMessage, Venue, VenueSession


def venue_get_enabled(*, code: str) -> Venue | None:
    return Venue.objects.filter(code=code, enabled=True).first()


def venues_get_enabled(*, codes: Iterable[str]) -> dict[str, Venue]:
    return {venue.code: venue for venue in Venue.objects.filter(code__in=set(codes), enabled=True)}


def _routable() -> Q:
    """A venue takes new orders when it is enabled and its FIX session is up: logged on
    by a worker whose lease is live. A venue no worker has contended for yet (no
    session row: hosting not started, or a fresh install) is routable too: its orders
    wait in the outbox and go out at the first logon. Once hosting has seen the venue,
    "not connected" means "skip it" (DESIGN: disconnected venues are skipped)."""
    return Q(enabled=True) & (
        Q(session__isnull=True) | Q(session__status=VenueSession.Status.CONNECTED, session__lease_expires_at__gt=Now())
    )


def venues_routable() -> list[Venue]:
    """The venues that take new orders now, best priority first (what the router
    chooses from; a basket reads them once for all its lines)."""
    return list(Venue.objects.filter(_routable()).order_by("priority", "code"))


def venue_pick(venues: Iterable[Venue], *, asset_class: str, symbol: str, currency: str) -> Venue | None:
    """The first of ``venues`` whose routing attributes take the order, or None."""
    for venue in venues:
        if venue.takes(asset_class=asset_class, symbol=symbol, currency=currency):
            return venue
    return None


def venue_choose(*, asset_class: str, symbol: str, currency: str) -> Venue | None:
    """The router: the routable venue of best priority whose routing attributes take
    the order, or None when nothing does ("no route")."""
    return venue_pick(venues_routable(), asset_class=asset_class, symbol=symbol, currency=currency)


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


def outbox_pending_order_ids(*, venue_id: int):
    """A lazy queryset of order ids, meant as a subquery (``pk__in``) so the caller's
    one statement sees the outbox and its orders in the same snapshot."""
    return OutboundMessage.objects.filter(venue_id=venue_id, state=OutboundMessage.State.PENDING).values("order_id")


def outbox_pending_ids(*, venue_id: int, limit: int) -> list[int]:
    return list(
        OutboundMessage.objects.filter(venue_id=venue_id, state=OutboundMessage.State.PENDING)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def venues_enabled() -> list[Venue]:
    """Venues a trader may pick on the ticket, by the router's preference."""
    return list(Venue.objects.filter(enabled=True).order_by("priority", "code"))
