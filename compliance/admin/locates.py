"""Locates: borrows located for short sales, ended rather than deleted."""

from __future__ import annotations

from django.contrib import admin

from .. import services
from ..models import Locate
from ..rules import locate_unused
from ._common import ConsoleAdmin


@admin.register(Locate)
class LocateAdmin(ConsoleAdmin):
    list_display = [
        "account",
        "security",
        "broker",
        "reference",
        "quantity",
        "unused",
        "expires_at",
        "ended",
    ]
    list_filter = ["broker", "expires_at"]
    list_select_related = ["account", "security"]
    search_fields = ["reference", "broker", "security__symbol", "account__code"]
    autocomplete_fields = ["account", "security"]
    fields = ["account", "security", "broker", "reference", "quantity", "expires_at", "created_by", "ended_at"]
    readonly_fields = ["created_by", "ended_at"]
    actions = ["end_locates"]

    @admin.display(description="unused")
    def unused(self, obj):
        return locate_unused(obj)

    @admin.display(description="ended", boolean=True)
    def ended(self, obj):
        return obj.ended_at is not None

    def has_change_permission(self, request, obj=None):
        # An ended locate is history.
        if obj is not None and obj.ended_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="End selected locates", permissions=["change"])
    def end_locates(self, request, queryset):
        self._each(
            request,
            queryset,
            "Locate",
            lambda locate: services.locate_end(user=request.user, locate_id=locate.pk),
            done=lambda n: f"Ended {n} locate(s).",
        )
