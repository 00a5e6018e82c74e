"""Reads for the compliance app."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from oms_site.roles import COMPLIANCE_GROUPS

from .models import KillSwitch, OverrideRequest, RestrictedEntry


def is_compliance_user(user) -> bool:
    """Middle office, API clients of compliance systems and superusers; never a trader."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return bool(user.is_superuser or user.groups.filter(name__in=COMPLIANCE_GROUPS).exists())


def kill_switch_active_for(*, scope: str, target: str = "") -> KillSwitch | None:
    return KillSwitch.objects.filter(scope=scope, target=target, released_at__isnull=True).first()


def kill_switches_active() -> QuerySet[KillSwitch]:
    return KillSwitch.objects.filter(released_at__isnull=True).select_related("activated_by")


def restricted_entry_list(
    *, active: bool | None = None, symbol: str | None = None, issuer: str | None = None, now=None
) -> QuerySet[RestrictedEntry]:
    """Entries, newest first. ``active``: True = in force now, False = ended or not
    started yet. ``issuer`` also finds entries added by symbol (they store it)."""
    entries = RestrictedEntry.objects.select_related("security", "added_by", "ended_by")
    if active is not None:
        now = now or dt.datetime.now(dt.UTC)
        in_force = RestrictedEntry.in_force_q(now)
        entries = entries.filter(in_force) if active else entries.exclude(in_force)
    if symbol:
        entries = entries.filter(security__symbol=symbol.strip().upper())
    if issuer:
        entries = entries.filter(issuer__iexact=issuer.strip())
    return entries


def override_list(*, status: str | None = None) -> QuerySet[OverrideRequest]:
    overrides = OverrideRequest.objects.select_related("order", "order__security", "requested_by", "decided_by")
    return overrides.filter(status=status) if status else overrides
