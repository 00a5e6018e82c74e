from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from audit.admin_base import AuditedModelAdmin, ReadOnlyAdmin, application_error_text
from audit.services import actor_name
from oms_site.errors import ApplicationError

from . import services
from .models import FixMessageLog, InboundMessage, OutboundMessage, Venue, VenueSession


@admin.register(Venue)
class VenueAdmin(AuditedModelAdmin):
    """Venue settings; every add, change and delete is audited ("venue.created",
    "venue.changed", "venue.deleted", object id the venue code). Session actions live
    on the FIX session admin below and are audited by their service."""

    audit_key_field = "code"
    list_display = [
        "code",
        "name",
        "host",
        "port",
        "sender_comp_id",
        "target_comp_id",
        "fix_version",
        "enabled",
        "priority",
        "session_hours",
        "session_status",
    ]
    list_filter = ["enabled", "fix_version"]
    list_select_related = ["session"]
    search_fields = ["code", "name"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "code",
                    "name",
                    ("host", "port"),
                    ("sender_comp_id", "target_comp_id"),
                    ("fix_version", "heartbeat_interval"),
                    "enabled",
                ]
            },
        ),
        (
            "Session schedule and sequence resets",
            {
                "description": "Outside its hours the venue is closed: no logon, orders refused. Sequence numbers "
                "reset at each session start; its DAY orders end done-for-day at the session end. "
                "No start and end: always open.",
                "fields": [
                    ("session_start", "session_end"),
                    ("session_time_zone", "trading_days"),
                    ("reset_on_logon", "reset_on_logout", "reset_on_disconnect"),
                ],
            },
        ),
        ("Routing", {"fields": ["priority", "asset_classes", "symbols", "currencies"]}),
    ]

    @admin.display(description="Session hours")
    def session_hours(self, obj):
        return obj.schedule.describe()

    @admin.display(description="FIX session")
    def session_status(self, obj):
        session = getattr(obj, "session", None)
        if session is None:
            return "not hosted yet"
        return f"{session.status}{' (FATAL)' if session.fatal else ''}{' (stopped)' if session.stopped else ''}"


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "venue", "msg_type", "cl_ord_id", "order", "state", "msg_seq_num", "created_at", "sent_at"]
    list_filter = ["state", "msg_type", "venue"]
    list_select_related = ["venue"]
    search_fields = ["cl_ord_id"]

    @admin.display(description="order", ordering="order_id")
    def order(self, obj):
        # routing keeps a plain order id (it does not depend on orders): the symbol is
        # the message's own Symbol (55).
        symbol = next((str(value) for tag, value in obj.fields or [] if str(tag) == "55"), "")
        return f"#{obj.order_id} {symbol}".strip()


class SessionReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why: recorded on the audit trail with your name.",
    )


class SessionSequenceForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[
            ("reset", "Reset both to 1 (a FIX sequence reset, new generations): the venue started again from 1"),
            ("set", "Set the next numbers given below"),
        ],
        widget=forms.RadioSelect,
        initial="reset",
    )
    next_sender_seq = forms.IntegerField(
        min_value=1, required=False, label="Next sender MsgSeqNum", help_text="the number our next message carries"
    )
    next_target_seq = forms.IntegerField(
        min_value=1, required=False, label="Next target MsgSeqNum", help_text="the number we expect from the venue"
    )
    reconnect = forms.BooleanField(
        required=False, initial=True, label="Then reconnect", help_text="also clears a fatal stop or a disconnect"
    )
    reason = SessionReasonForm.base_fields["reason"]

    def clean(self):
        data = super().clean()
        if data.get("mode") == "set" and not (data.get("next_sender_seq") or data.get("next_target_seq")):
            raise forms.ValidationError("Give a next sender and/or target sequence number, or choose the reset.")
        return data


# operation -> (title, form, what it does)
OPERATIONS = {
    "sequence": (
        "Reset sequence numbers",
        SessionSequenceForm,
        "The worker holding the session logs out if connected, then sets the numbers. After a venue restart "
        '("MsgSeqNum too low"), reset both to 1 and reconnect.',
    ),
    "reconnect": (
        "Reconnect",
        SessionReasonForm,
        "The worker logs out if connected and logs on again; clears a fatal stop and an operator's disconnect.",
    ),
    "disconnect": (
        "Disconnect",
        SessionReasonForm,
        "The worker logs out; the session stays down until someone reconnects it. Orders wait, then are rejected.",
    ),
}


@admin.register(VenueSession)
class VenueSessionAdmin(admin.ModelAdmin):
    """The FIX session console. Another process holds the socket, so the operations
    only file a request (``requested_action``) that the holding worker carries out
    within about a second. Each asks for a reason and is audited with who and why
    (``session_action_request``); they need the "operate" permission (middle office),
    not the right to change the row, which nobody edits here."""

    change_form_template = "admin/routing/venuesession/change_form.html"
    list_display = [
        "venue",
        "status",
        "next_sender_seq",
        "next_target_seq",
        "holder",
        "fencing_token",
        "lease_expires_at",
        "last_message_at",
        "fatal",
        "stopped",
        "requested_action",
        "last_error",
    ]
    list_filter = ["status", "fatal", "stopped"]
    list_select_related = ["venue"]
    actions = ["request_sequence_reset", "request_reconnect", "request_disconnect"]
    fields = [
        "venue",
        "status",
        "last_error",
        "last_error_at",
        "fatal",
        "stopped",
        "next_sender_seq",
        "next_target_seq",
        "sender_epoch",
        "target_epoch",
        "holder",
        "fencing_token",
        "lease_expires_at",
        "last_logon_at",
        "last_message_at",
        "requested_action",
        "requested_by",
        "requested_at",
        "requested_reason",
        "requested_sender_seq",
        "requested_target_seq",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the row is the workers'; operators file requests (the actions)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_operate_permission(self, request, obj=None):
        return request.user.has_perm("routing.operate_venuesession")

    def get_urls(self):
        return [
            path(
                "<path:object_id>/operate/<str:operation>/",
                self.admin_site.admin_view(self.operate_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_operate",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_operate"] = self.has_operate_permission(request)
        context["operations"] = [(key, title) for key, (title, _, _) in OPERATIONS.items()]
        return super().render_change_form(request, context, *args, **kwargs)

    def operate_view(self, request, object_id, operation):
        """One session's operation page (the buttons on its change page)."""
        if operation not in OPERATIONS:
            raise Http404("No such operation.")
        if not self.has_operate_permission(request):
            raise PermissionDenied
        session = self.get_object(request, unquote(object_id))
        if session is None:
            raise Http404("No such FIX session.")
        done = self._operate(request, [session], operation)
        if done is None:
            return HttpResponseRedirect(reverse("admin:routing_venuesession_change", args=[session.pk]))
        return done

    def _operate(self, request, sessions, operation: str, *, action: str = ""):
        """The page asking for the reason (and the numbers); on a valid confirmed form,
        file the request for every session and return None."""
        title, form_class, intro = OPERATIONS[operation]
        form = form_class(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            self._file(request, sessions, operation, form.cleaned_data)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "intro": intro,
            "opts": self.opts,
            "sessions": sessions,
            "action": action,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/routing/venuesession/operate.html", context)

    def _file(self, request, sessions, operation: str, data) -> None:
        if operation == "sequence":
            reset = data["mode"] == "reset"
            action = VenueSession.Action.RESET_SEQUENCE if reset else VenueSession.Action.SET_SEQUENCE
            extra = {"reconnect": data["reconnect"]}
            if not reset:
                extra.update(sender_seq=data["next_sender_seq"], target_seq=data["next_target_seq"])
        else:
            action, extra = operation, {}
        for session in sessions:
            try:
                services.session_action_request(
                    venue=session.venue, action=action, actor=actor_name(request.user), reason=data["reason"], **extra
                )
            except ApplicationError as exc:
                self.message_user(request, f"{session.venue}: {application_error_text(exc)}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{session.venue}: {VenueSession.Action(action).label} requested; the holding worker carries "
                    "it out within a few seconds.",
                    messages.SUCCESS,
                )

    @admin.action(description="Reset or set sequence numbers…", permissions=["operate"])
    def request_sequence_reset(self, request, queryset):
        return self._operate(
            request, list(queryset.select_related("venue")), "sequence", action="request_sequence_reset"
        )

    @admin.action(description="Reconnect (also clears a fatal stop)…", permissions=["operate"])
    def request_reconnect(self, request, queryset):
        return self._operate(request, list(queryset.select_related("venue")), "reconnect", action="request_reconnect")

    @admin.action(description="Disconnect (log out, stay down until reconnect)…", permissions=["operate"])
    def request_disconnect(self, request, queryset):
        return self._operate(request, list(queryset.select_related("venue")), "disconnect", action="request_disconnect")


@admin.register(FixMessageLog)
class FixMessageLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "venue", "direction", "epoch", "msg_seq_num", "msg_type", "poss_dup", "created_at"]
    list_filter = ["direction", "msg_type", "venue"]
    list_select_related = ["venue"]
    search_fields = ["raw"]


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "venue", "epoch", "msg_seq_num", "msg_type", "received_at", "applied_at", "outcome", "error"]
    list_filter = ["msg_type", "outcome", "venue"]
    list_select_related = ["venue"]
    search_fields = ["raw"]
    actions = ["retry_apply"]

    def has_change_permission(self, request, obj=None):
        # Needed for the retry action; the fields themselves stay read-only.
        return request.user.has_perm("routing.change_inboundmessage")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Retry applying failed messages", permissions=["change"])
    def retry_apply(self, request, queryset):
        from .hosting import INBOX_APPLY_TASK, enqueue

        codes = set()
        for message in queryset.select_related("venue"):
            services.inbox_retry(message_id=message.pk, actor=actor_name(request.user))
            codes.add(message.venue.code)
        for code in codes:
            enqueue(INBOX_APPLY_TASK, venue_code=code)
        self.message_user(request, "Retry queued.")
