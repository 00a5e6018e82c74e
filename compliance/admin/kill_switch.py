"""Kill switches: activated through ``orders.services.kill_switch_set`` (the latch in
compliance, then the cancels in ``orders``), released with a reason, never deleted."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from audit.admin_base import application_error_text, timestamp_filter
from oms_site.errors import ApplicationError, InvalidInput
from orders import services as order_services

from ..models import KillSwitch
from ._common import ConsoleAdmin, ReleaseReasonForm, ServiceAddMixin

ActiveSwitchFilter = timestamp_filter(
    field="released_at", title="active", parameter="active", yes_when_set=False, no="No (released)"
)


class KillSwitchAddForm(forms.Form):
    scope = forms.ChoiceField(choices=KillSwitch.Scope.choices)
    target = forms.CharField(
        max_length=150, required=False, help_text="Account code, username, venue code or symbol; empty for firm."
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


@admin.register(KillSwitch)
class KillSwitchAdmin(ServiceAddMixin, ConsoleAdmin):
    add_form = KillSwitchAddForm
    add_title = "Activate a kill switch"
    list_display = [
        "scope",
        "target",
        "active",
        "reason",
        "activated_by",
        "activated_at",
        "released_by",
        "released_at",
        "cancels_requested",
    ]
    list_filter = [ActiveSwitchFilter, "scope"]
    list_select_related = ["activated_by", "released_by"]
    search_fields = ["target", "reason"]
    fields = [
        "scope",
        "target",
        "reason",
        "activated_by",
        "activated_at",
        "cancels_requested",
        "released_by",
        "released_at",
        "release_reason",
    ]
    actions = ["release_switches"]

    @admin.display(description="active", boolean=True)
    def active(self, obj):
        return obj.active

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request)

    def has_release_permission(self, request):
        return super().has_change_permission(request)

    def add_through_service(self, request, data):
        result = order_services.kill_switch_set(
            user=request.user, scope=data["scope"], target=data["target"], active=True, reason=data["reason"]
        )
        if not result.changed:
            raise InvalidInput("Already active.", details={"non_field_errors": [f"{result.switch} is already on."]})
        cancels = len(result.cancelled_order_ids)
        return result.switch, f"Kill switch {result.switch} activated; {cancels} cancel(s) sent."

    @admin.action(description="Release selected switches", permissions=["release"])
    def release_switches(self, request, queryset):
        def perform(reason):
            released = 0
            for switch in queryset:
                if not switch.active:
                    self.message_user(request, f"Switch #{switch.pk} ({switch}) was already released.", messages.INFO)
                    continue
                try:
                    result = order_services.kill_switch_set(
                        user=request.user, scope=switch.scope, target=switch.target, active=False, reason=reason
                    )
                except ApplicationError as exc:
                    self.message_user(request, f"Switch #{switch.pk}: {application_error_text(exc)}", messages.ERROR)
                    continue
                released += int(result.changed)
            if released:
                self.message_user(request, f"Released {released} switch(es).", messages.SUCCESS)

        return self._note_step(
            request,
            queryset,
            action="release_switches",
            title="Release kill switches",
            intro="New orders in these scopes will be accepted again. Working orders are not touched.",
            form_class=ReleaseReasonForm,
            perform=perform,
        )
