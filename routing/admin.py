from django.contrib import admin

from .models import OutboundMessage, Venue


@admin.register(Venue)
class VenueAdmin(admin.ModelAdmin):
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
    ]
    list_filter = ["enabled", "fix_version"]
    search_fields = ["code", "name"]


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "venue", "msg_type", "cl_ord_id", "order_id", "state", "msg_seq_num", "created_at", "sent_at"]
    list_filter = ["state", "msg_type", "venue"]
    search_fields = ["cl_ord_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
