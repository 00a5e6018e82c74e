"""What compliance reviews: review items (resolved with a note) and every rule's
verdict on every order (read-only)."""

from __future__ import annotations

from django.contrib import admin

from audit.admin_base import ReadOnlyAdmin, timestamp_filter

from .. import services
from ..models import RESULT_ID_BASE, ComplianceResult, ReviewItem
from ._common import ConsoleAdmin, NoteForm

ResolvedFilter = timestamp_filter(field="resolved_at", title="resolved", parameter="resolved", yes_when_set=True)


@admin.register(ReviewItem)
class ReviewItemAdmin(ConsoleAdmin):
    list_display = ["id", "kind", "order", "message", "created_at", "resolved"]
    list_filter = [ResolvedFilter, "kind"]
    list_select_related = ["order", "order__security"]
    search_fields = ["message", "order__client_order_id"]
    fields = ["kind", "order", "message", "details", "created_at", "resolved_by", "resolved_at", "resolution_note"]
    readonly_fields = fields
    actions = ["resolve"]

    @admin.display(description="resolved", boolean=True)
    def resolved(self, obj):
        return obj.resolved_at is not None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request)

    def has_resolve_permission(self, request):
        return super().has_change_permission(request)

    @admin.action(description="Resolve", permissions=["resolve"])
    def resolve(self, request, queryset):
        def perform(note):
            self._each(
                request,
                queryset,
                "Review item",
                lambda item: services.review_item_resolve(user=request.user, item_id=item.pk, note=note),
                done=lambda n: f"Resolved {n} review item(s).",
            )

        return self._note_step(
            request, queryset, action="resolve", title="Resolve review items", form_class=NoteForm, perform=perform
        )


@admin.register(ComplianceResult)
class ComplianceResultAdmin(ReadOnlyAdmin):
    # No delete permission, so no "delete selected" action either.
    list_display = [
        "id",
        "order",
        "account",
        "symbol",
        "stage",
        "rule",
        "outcome",
        "code",
        "internal",
        "overridden",
        "evaluated_at",
    ]
    list_filter = ["evaluated_at", ("order__account", admin.RelatedOnlyFieldListFilter), "rule", "outcome", "stage"]
    list_select_related = ["order", "order__account", "order__security"]
    search_fields = ["order__client_order_id", "order__security__symbol", "code"]
    date_hierarchy = "evaluated_at"
    show_full_result_count = False

    def get_object(self, request, object_id, from_field=None):
        # A result's id is its verdict's id x RESULT_ID_BASE + its position: find the
        # verdict by its key rather than scanning every verdict's results.
        try:
            verdict_id = int(object_id) // RESULT_ID_BASE
        except (TypeError, ValueError):
            return None
        queryset = self.get_queryset(request).filter(verdict_id=verdict_id)
        return queryset.filter(pk=int(object_id)).first()

    @admin.display(description="account", ordering="order__account__code")
    def account(self, obj):
        return obj.order.account.code

    @admin.display(description="symbol", ordering="order__security__symbol")
    def symbol(self, obj):
        return obj.order.security.symbol
