from django.contrib import admin

from audit.admin_base import AuditedModelAdmin, ReadOnlyAdmin, ReadOnlyInline
from compliance.models import ComplianceResult

from .models import Account, Basket, Execution, Order, OrderFlag, OrderRequest, Position, Security


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
    inlines = [OrderRequestInline, ExecutionInline, ComplianceResultInline]


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "venue",
        "exec_id",
        "order",
        "exec_type",
        "last_qty",
        "last_px",
        "in_effect",
        "outcome",
        "received_at",
    ]
    list_filter = ["exec_type", "outcome", "in_effect", "venue"]
    search_fields = ["exec_id", "cl_ord_id"]


@admin.register(OrderFlag)
class OrderFlagAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "order", "venue_code", "message", "created_at", "resolved_at"]
    list_filter = ["kind", "venue_code"]


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ["account", "security", "quantity", "bought_quantity", "sold_quantity", "updated_at"]
    list_filter = ["account"]
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
