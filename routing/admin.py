from django.contrib import admin, messages

from audit.admin_base import AuditedModelAdmin, ReadOnlyAdmin
from audit.services import actor_name

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
        "session_status",
    ]
    list_filter = ["enabled", "fix_version"]
    list_select_related = ["session"]
    search_fields = ["code", "name"]

    @admin.display(description="FIX session")
    def session_status(self, obj):
        session = getattr(obj, "session", None)
        if session is None:
            return "not hosted yet"
        return f"{session.status}{' (FATAL)' if session.fatal else ''}{' (stopped)' if session.stopped else ''}"


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "venue", "msg_type", "cl_ord_id", "order_id", "state", "msg_seq_num", "created_at", "sent_at"]
    list_filter = ["state", "msg_type", "venue"]
    search_fields = ["cl_ord_id"]


@admin.register(VenueSession)
class VenueSessionAdmin(admin.ModelAdmin):
    """The FIX session console. Another process holds the socket, so the actions only
    file a request (``requested_action``) that the holding worker carries out within
    about a second. Set sequence numbers: enter them in the form and save."""

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
    actions = ["request_disconnect", "request_reconnect"]
    fields = [
        "venue",
        "status",
        "next_sender_seq",
        "next_target_seq",
        "sender_epoch",
        "target_epoch",
        "holder",
        "fencing_token",
        "lease_expires_at",
        "last_logon_at",
        "last_message_at",
        "last_error",
        "last_error_at",
        "fatal",
        "stopped",
        "requested_action",
        "requested_by",
        "requested_at",
        "requested_sender_seq",
        "requested_target_seq",
    ]
    editable = ("requested_sender_seq", "requested_target_seq")

    def get_readonly_fields(self, request, obj=None):
        return [f for f in self.fields if f not in self.editable]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Never write the row from here: file the request through the service.
        sender, target = obj.requested_sender_seq, obj.requested_target_seq
        if not (sender or target):
            self.message_user(request, "Enter a sender and/or target sequence number.", messages.WARNING)
            return
        services.session_action_request(
            venue=obj.venue,
            action=VenueSession.Action.SET_SEQUENCE,
            actor=actor_name(request.user),
            sender_seq=sender,
            target_seq=target,
        )
        self.message_user(request, f"{obj.venue}: sequence numbers requested; the holding worker applies them.")

    def _request(self, request, queryset, action: str) -> None:
        for session in queryset.select_related("venue"):
            services.session_action_request(venue=session.venue, action=action, actor=actor_name(request.user))
        self.message_user(request, f"{action} requested for {queryset.count()} session(s).")

    @admin.action(description="Disconnect (log out, stay down until reconnect)", permissions=["change"])
    def request_disconnect(self, request, queryset):
        self._request(request, queryset, VenueSession.Action.DISCONNECT)

    @admin.action(description="Reconnect (also clears a fatal stop)", permissions=["change"])
    def request_reconnect(self, request, queryset):
        self._request(request, queryset, VenueSession.Action.RECONNECT)


@admin.register(FixMessageLog)
class FixMessageLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "venue", "direction", "epoch", "msg_seq_num", "msg_type", "poss_dup", "created_at"]
    list_filter = ["direction", "msg_type", "venue"]
    search_fields = ["raw"]


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "venue", "epoch", "msg_seq_num", "msg_type", "received_at", "applied_at", "outcome", "error"]
    list_filter = ["msg_type", "outcome", "venue"]
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
