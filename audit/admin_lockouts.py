"""Sign-in lockouts in the admin: django-axes' failed-attempt counters, seen by middle
office and superusers, and cleared by deleting them (the change page, or the "delete
selected" action) — each clearing an ``auth.lockout_cleared`` event, with who cleared
what, in the admin's transaction. Imported by ``AuditConfig.ready()``; axes' own admin
is off (``AXES_ENABLE_ADMIN``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.db import transaction

from oms_site.lockout import API_TOKEN_USERNAME

from .services import actor_name, audit_event_record


def _locked_until(attempt: AccessAttempt) -> dt.datetime | None:
    cool_off = get_cool_off()
    if attempt.failures_since_start < settings.AXES_FAILURE_LIMIT or cool_off is None:
        return None
    until = attempt.attempt_time + cool_off
    return until if until > dt.datetime.now(dt.UTC) else None


class LockoutAdmin(AccessAttemptAdmin):
    """Read-only counters; deleting one clears it (and so the lockout it makes)."""

    list_display = ["attempt_time", "username", "ip_address", "path_info", "failures_since_start", "locked_until"]
    # No "clean up expired attempts": axes drops expired counters at each failure.
    actions = []

    @admin.display(description="locked until")
    def locked_until(self, obj: AccessAttempt):
        return _locked_until(obj) or "-"

    def has_change_permission(self, request, obj=None):
        return False

    def _clear_record(self, request, attempt: AccessAttempt) -> None:
        is_token = attempt.username == API_TOKEN_USERNAME
        details: dict[str, Any] = {
            "username": None if is_token else attempt.username,
            "ip": attempt.ip_address,
            "failures": attempt.failures_since_start,
            "last_failure_at": attempt.attempt_time.isoformat(),
            "was_locked": _locked_until(attempt) is not None,
            "via": "admin",
        }
        audit_event_record(
            actor=actor_name(request.user),
            action="auth.lockout_cleared",
            object_type="api_token" if is_token else "user",
            object_id=((attempt.ip_address or "unknown") if is_token else (attempt.username or ""))[:100],
            details=details,
        )

    def delete_model(self, request, obj):
        # The admin's delete view is atomic: the event commits with the deletion.
        self._clear_record(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        # The "delete selected" action runs outside the admin's atomic views.
        with transaction.atomic(using=queryset.db):
            for attempt in queryset.select_for_update():
                self._clear_record(request, attempt)
            super().delete_queryset(request, queryset)


admin.site.register(AccessAttempt, LockoutAdmin)
