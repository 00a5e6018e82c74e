"""The audit trail in the admin: events read-only; retention policies and legal holds
maintained by superusers and middle office through ``audit.retention`` (every change
audited with who, before and after). Nothing here is ever deleted: holds are released."""

from __future__ import annotations

from django.contrib import admin

from . import retention
from .admin_base import KeptAdmin, ReadOnlyAdmin, timestamp_filter
from .models import AuditEvent, LegalHold, RetentionPolicy


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "occurred_at", "actor", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_id", "actor", "action"]
    date_hierarchy = "occurred_at"


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(KeptAdmin):
    list_display = ["record_type", "years", "note", "updated_by", "updated_at"]
    list_select_related = ["updated_by"]
    search_fields = ["record_type"]
    fields = ["record_type", "years", "note", "updated_by", "updated_at"]
    readonly_fields = ["updated_by", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # A policy's record type is its identity: add a policy for another type instead.
        return [*self.readonly_fields, "record_type"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        saved = retention.retention_policy_set(
            user=request.user, record_type=obj.record_type, years=obj.years, note=obj.note
        )
        obj.pk, obj.updated_by, obj.updated_at = saved.pk, saved.updated_by, saved.updated_at


ActiveFilter = timestamp_filter(
    field="released_at", title="active", parameter="active", yes_when_set=False, no="Released"
)


@admin.register(LegalHold)
class LegalHoldAdmin(KeptAdmin):
    list_display = ["id", "target", "reason", "active", "placed_by", "placed_at", "released_by", "released_at"]
    list_filter = [ActiveFilter, "object_type"]
    list_select_related = ["placed_by", "released_by"]
    search_fields = ["object_type", "object_id", "reason"]
    fields = ["object_type", "object_id", "reason", "placed_by", "placed_at", "released_by", "released_at"]
    readonly_fields = ["placed_by", "placed_at", "released_by", "released_at"]
    actions = ["release_holds"]

    @admin.display(description="covers", ordering="object_type")
    def target(self, obj):
        return obj.target_label

    @admin.display(description="active", boolean=True)
    def active(self, obj):
        return obj.active

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        # What a hold covers is fixed (place another); a released hold is history.
        fixed = ["object_type", "object_id"] + ([] if obj.active else ["reason"])
        return [*fixed, *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        if change:
            saved = retention.legal_hold_change(user=request.user, hold_id=obj.pk, reason=obj.reason)
        else:
            saved = retention.legal_hold_place(
                user=request.user, object_type=obj.object_type, object_id=obj.object_id, reason=obj.reason
            )
        for name in ("pk", "placed_by", "placed_at", "reason", "object_type", "object_id"):
            setattr(obj, name, getattr(saved, name))

    @admin.action(description="Release selected holds now", permissions=["change"])
    def release_holds(self, request, queryset):
        self._each(
            request,
            queryset.filter(released_at__isnull=True),
            "Legal hold",
            lambda hold: retention.legal_hold_release(user=request.user, hold_id=hold.pk),
            done=lambda n: f"Released {n} hold{'' if n == 1 else 's'}.",
        )
