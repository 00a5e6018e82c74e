"""The override queue: held orders waiting for a second pair of eyes. Decisions go
through ``orders.services`` (approval releases the order, denial rejects it)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Case, IntegerField, Value, When

from orders import services as order_services

from ..models import OverrideRequest
from ._common import ConsoleAdmin, NoteForm, OptionalNoteForm


@admin.register(OverrideRequest)
class OverrideRequestAdmin(ConsoleAdmin):
    list_display = [
        "id",
        "order",
        "symbol",
        "side",
        "quantity",
        "requested_by",
        "justification",
        "warning_rules",
        "requested_at",
        "expires_at",
        "status",
    ]
    list_filter = ["status"]
    list_select_related = ["order", "order__security", "requested_by"]
    search_fields = ["order__client_order_id", "order__security__symbol", "requested_by__username"]
    readonly_fields = [
        "order",
        "requested_by",
        "justification",
        "warnings",
        "requested_at",
        "expires_at",
        "status",
        "decided_by",
        "decided_at",
        "decision_note",
    ]
    fields = readonly_fields
    actions = ["approve", "deny"]

    def get_ordering(self, request):
        pending_first = Case(
            When(status=OverrideRequest.Status.PENDING, then=Value(0)), default=Value(1), output_field=IntegerField()
        )
        return [pending_first.asc(), "-requested_at", "-id"]

    @admin.display(description="symbol", ordering="order__security__symbol")
    def symbol(self, obj):
        return obj.order.security.symbol

    @admin.display(description="warnings")
    def warning_rules(self, obj):
        return ", ".join(obj.warnings) or "-"

    @admin.display(description="side")
    def side(self, obj):
        return obj.order.side

    @admin.display(description="quantity")
    def quantity(self, obj):
        return obj.order.quantity

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_decide_permission(self, request):
        return request.user.has_perm("compliance.decide_overriderequest")

    def _decide(self, request, queryset, *, approve: bool, note: str) -> None:
        service = order_services.override_approve if approve else order_services.override_deny
        verb = "Approved" if approve else "Denied"
        self._each(
            request,
            queryset,
            "Override",
            lambda override: service(user=request.user, override_id=override.pk, note=note),
            done=lambda n: f"{verb} {n} override request(s).",
        )

    @admin.action(description="Approve (release the orders)", permissions=["decide"])
    def approve(self, request, queryset):
        return self._note_step(
            request,
            queryset,
            action="approve",
            title="Approve override requests",
            intro="Each approved order is evaluated again with its requested warnings covered and routed.",
            form_class=OptionalNoteForm,
            perform=lambda note: self._decide(request, queryset, approve=True, note=note),
        )

    @admin.action(description="Deny (reject the orders)", permissions=["decide"])
    def deny(self, request, queryset):
        return self._note_step(
            request,
            queryset,
            action="deny",
            title="Deny override requests",
            intro="Each denied order is rejected and never sent.",
            form_class=NoteForm,
            perform=lambda note: self._decide(request, queryset, approve=False, note=note),
        )
