from __future__ import annotations

from .models import Venue


def venue_get_enabled(*, code: str) -> Venue | None:
    return Venue.objects.filter(code=code, enabled=True).first()


def venue_choose(*, asset_class: str, symbol: str, currency: str) -> Venue | None:
    """The router: the enabled venue of best priority whose routing attributes take the
    order, or None when nothing does ("no route")."""
    for venue in Venue.objects.filter(enabled=True).order_by("priority", "code"):
        if venue.takes(asset_class=asset_class, symbol=symbol, currency=currency):
            return venue
    return None
