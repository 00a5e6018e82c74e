from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from audit.admin_base import AuditedModelAdmin, ReadOnlyAdmin, ReadOnlyInline
from audit.services import actor_name
from compliance.models import ComplianceResult

from . import services
from .models import Account, Basket, Execution, Order, OrderFlag, OrderRequest, OrderStatus, Position, Security


@admin.register(Security)
class SecurityAdmin(AuditedModelAdmin):
    audit_key_field = "symbol"
    list_display = ["symbol", "name", "issuer", "asset_class", "currency", "reference_price", "lot_size", "active"]
    list_filter = ["asset_class", "currency", "active"]
    search_fields = ["symbol", "name", "issuer"]


@admin.register(Account)
class AccountAdmin(AuditedModelAdmin):
    audit_key_field = "code"
    list_display = ["code", "name", "active"]
    search_fields = ["code", "name"]
    filter_horizontal = ["traders"]


class OrderRequestInline(ReadOnlyInline):
    model = OrderRequest
    fields = ["kind", "cl_ord_id", "orig_cl_ord_id", "state", "quantity", "limit_price", "reject_reason", "created_at"]


class ExecutionInline(ReadOnlyInline):
    model = Execution
    fields = ["exec_id", "exec_type", "last_qty", "last_px", "in_effect", "outcome", "received_at"]


class ComplianceResultInline(ReadOnlyInline):
    """Every rule's verdict on the order, internal (watch-list) ones included: the
    admin is compliance's view."""

    model = ComplianceResult
    fields = ["stage", "rule", "outcome", "code", "reason", "internal", "overridden", "evaluated_at"]


class OrderFlagInline(ReadOnlyInline):
    model = OrderFlag
    fields = ["kind", "message", "created_at", "resolved_at"]


class LocalCloseForm(forms.Form):
    status = forms.ChoiceField(
        label="End the order as",
        choices=[(status, OrderStatus(status).label) for status in services.LOCAL_CLOSE_STATUSES],
        initial=OrderStatus.CANCELLED,
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why the venue no longer knows the order: recorded on its audit trail with your name.",
    )


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "client_order_id",
        "account",
        "security",
        "side",
        "quantity",
        "order_type",
        "limit_price",
        "status",
        "filled_quantity",
        "avg_fill_price",
        "venue",
        "needs_review",
        "created_at",
    ]
    list_filter = ["status", "side", "needs_review", "venue", "origin"]
    search_fields = ["client_order_id", "cl_ord_id", "security__symbol", "account__code"]
    date_hierarchy = "created_at"
    list_select_related = ["account", "security", "venue"]
    inlines = [OrderRequestInline, ExecutionInline, OrderFlagInline, ComplianceResultInline]
    actions = ["close_locally"]

    def has_close_locally_permission(self, request):
        return request.user.has_perm("orders.close_order_locally")

    @admin.action(description="Close locally (venue no longer knows the order)…", permissions=["close_locally"])
    def close_locally(self, request, queryset):
        """End working orders here, keeping their fills (``order_close_locally``),
        after asking how and why."""
        form = LocalCloseForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            data = form.cleaned_data
            self._each(
                request,
                queryset,
                "Order",
                lambda order: services.order_close_locally(
                    order_id=order.pk,
                    actor=actor_name(request.user),
                    reason=data["reason"],
                    final_status=data["status"],
                ),
                done=lambda count: f"Closed {count} order(s) locally as {OrderStatus(data['status']).label.lower()}.",
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Close orders locally",
            "intro": 'For orders the venue no longer knows (it lost its state; a cancel got "unknown order"). '
            "They end here without a message to the venue, keeping their fills; a fill the venue still "
            "reports is applied. Their working exposure and locates are released.",
            "opts": self.model._meta,
            "objects": list(queryset),
            "action": "close_locally",
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/compliance/action_note.html", context)


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "venue",
        "exec_id",
        "order",
        "symbol",
        "exec_type",
        "last_qty",
        "last_px",
        "in_effect",
        "outcome",
        "received_at",
    ]
    list_filter = ["exec_type", "outcome", "in_effect", "venue"]
    list_select_related = ["venue", "order", "order__security"]
    search_fields = ["exec_id", "cl_ord_id", "order__security__symbol"]

    @admin.display(description="symbol", ordering="order__security__symbol")
    def symbol(self, obj):
        return obj.order.security.symbol if obj.order_id else ""


@admin.register(OrderFlag)
class OrderFlagAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "order", "venue_code", "message", "created_at", "resolved_at"]
    list_filter = ["kind", "venue_code"]
    list_select_related = ["order", "order__security"]


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ["account", "security", "quantity", "bought_quantity", "sold_quantity", "updated_at"]
    list_filter = ["account"]
    list_select_related = ["account", "security"]
    search_fields = ["security__symbol", "account__code"]


@admin.register(Basket)
class BasketAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "client_basket_id",
        "name",
        "created_by",
        "lines_total",
        "lines_routed",
        "lines_held",
        "lines_rejected",
        "created_at",
    ]
    search_fields = ["client_basket_id", "name", "created_by__username"]
    date_hierarchy = "created_at"
    list_select_related = ["created_by"]


from . import admin_allocations  # noqa: E402, F401  (registers the allocation queue)
