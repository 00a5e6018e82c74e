from functools import cache

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.models import AuditEvent
from compliance.models import ComplianceResult, Outcome

from ..models import (
    Allocation,
    AllocationLine,
    Basket,
    Execution,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from ..selectors import order_executions_shown
from ..services import BASKET_MAX_LINES, LOCAL_CLOSE_STATUSES, block_unallocated_quantity

PRICE = {"max_digits": 18, "decimal_places": 8}


class OrderChildInputSerializer(serializers.Serializer):
    """A child order of a parent: its account, symbol and side are the parent's; the
    terms of any order (``OrderCreateInputSerializer`` adds who and what)."""

    quantity = serializers.IntegerField(min_value=1)
    order_type = serializers.ChoiceField(choices=OrderType.choices)
    limit_price = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    stop_price = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices, default=TimeInForce.DAY)
    expire_at = serializers.DateTimeField(required=False, allow_null=True)
    venue = serializers.CharField(max_length=20, required=False, allow_null=True, allow_blank=True)


class AllocationTargetSerializer(serializers.Serializer):
    """One fund of a block order: its quantity, or its percent of the block."""

    account = serializers.CharField(max_length=32)
    quantity = serializers.IntegerField(min_value=1, required=False)
    percent = serializers.DecimalField(max_digits=9, decimal_places=6, required=False)


class OrderCreateInputSerializer(OrderChildInputSerializer):
    client_order_id = serializers.CharField(max_length=64)
    account = serializers.CharField(
        max_length=32, required=False, allow_blank=True, help_text="required unless the order gives allocations"
    )
    allocations = AllocationTargetSerializer(
        many=True,
        required=False,
        help_text="a block order for several funds, instead of account: two or more lines, all with a quantity "
        "(summing to the order quantity) or all with a percent (summing to 100)",
    )
    symbol = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=Side.choices)
    short_exempt_reason = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="SELL_SHORT only: why the sale is exempt from the locate requirement (FIX Side 6)",
    )


class OrderCheckInputSerializer(OrderCreateInputSerializer):
    """A prospective order: the fields of a new order, client_order_id optional."""

    client_order_id = serializers.CharField(max_length=64, required=False)


# Named enum components: the field names "outcome" and "status" already carry other
# choice sets in the schema (executions, orders).
@extend_schema_field({"type": "string", "enum": list(Outcome.values)}, component_name="CheckOutcomeEnum")
class CheckOutcomeField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=Outcome.choices, **kwargs)


class CheckResultSerializer(serializers.Serializer):
    rule = serializers.CharField()
    outcome = CheckOutcomeField()
    code = serializers.CharField()
    reason = serializers.CharField()


class OrderCheckSerializer(serializers.Serializer):
    """What compliance would say; internal (watch-list) results are left out."""

    outcome = CheckOutcomeField()
    results = CheckResultSerializer(many=True, source="visible_results")


class OrderAmendInputSerializer(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1, required=False)
    limit_price = serializers.DecimalField(**PRICE, required=False)


class OrderCloseInputSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=2000, help_text="why the venue no longer knows the order; recorded on its audit trail"
    )
    status = serializers.ChoiceField(
        choices=list(LOCAL_CLOSE_STATUSES),
        default=OrderStatus.CANCELLED,
        help_text="the status the order ends in",
    )


class OrderFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    symbol = serializers.CharField(max_length=32, required=False)
    account = serializers.CharField(max_length=32, required=False)
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_on = serializers.DateField(required=False, help_text="orders created on this date (UTC)")
    basket = serializers.IntegerField(required=False, min_value=1, help_text="orders of this basket")
    incoming = serializers.BooleanField(
        required=False,
        help_text="true: the desk's incoming queue, portfolio managers' orders waiting for a trader of your "
        "accounts (new, not yet accepted), newest first",
    )


class ExecutionFilterSerializer(serializers.Serializer):
    order = serializers.IntegerField(required=False, min_value=1, help_text="executions of this order")
    symbol = serializers.CharField(max_length=32, required=False)
    account = serializers.CharField(max_length=32, required=False, help_text="the order's account")
    created_on = serializers.DateField(required=False, help_text="executions received on this date (UTC)")


class ComplianceResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = ComplianceResult
        fields = ["rule", "stage", "outcome", "code", "reason", "evaluated_at"]


class ExecutionSerializer(serializers.ModelSerializer):
    order_id = serializers.IntegerField(read_only=True, allow_null=True)
    venue = serializers.CharField(source="venue.code", read_only=True)
    exec_ref_id = serializers.CharField(source="ref_execution.exec_id", read_only=True, allow_null=True, default=None)
    symbol = serializers.CharField(source="order.security.symbol", read_only=True, default=None)

    class Meta:
        model = Execution
        fields = [
            "id",
            "order_id",
            "venue",
            "exec_id",
            "exec_type",
            "symbol",
            "last_qty",
            "last_px",
            "exec_ref_id",
            "in_effect",
            "outcome",
            "transact_time",
            "received_at",
        ]


class OrderSerializer(serializers.ModelSerializer):
    account = serializers.SerializerMethodField(help_text="null for a block order: its funds are in allocations")
    allocations = AllocationTargetSerializer(
        source="allocation_targets", many=True, read_only=True, help_text="a block order's funds, as entered"
    )
    symbol = serializers.CharField(source="security.symbol", read_only=True)
    venue = serializers.CharField(source="venue.code", read_only=True, allow_null=True, default=None)
    leaves_quantity = serializers.IntegerField(read_only=True)
    compliance_results = serializers.SerializerMethodField()
    owner = serializers.CharField(
        source="owner.username",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="the trader who accepted (works) a portfolio manager's order",
    )
    children = serializers.SerializerMethodField(help_text="the ids of a parent's child orders, oldest first")
    placed_quantity = serializers.IntegerField(
        read_only=True, help_text="a parent's quantity placed in child orders (working plus filled)"
    )

    class Meta:
        model = Order
        fields = [
            "id",
            "client_order_id",
            "account",
            "symbol",
            "side",
            "quantity",
            "order_type",
            "limit_price",
            "stop_price",
            "time_in_force",
            "expire_at",
            "venue",
            "short_exempt_reason",
            "status",
            "filled_quantity",
            "leaves_quantity",
            "avg_fill_price",
            "reject_reason",
            "compliance_results",
            "basket",
            "desk_order",
            "owner",
            "parent",
            "children",
            "placed_quantity",
            "block_order",
            "allocations",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_account(self, order: Order) -> str | None:
        return None if order.block_order else order.account.code

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_children(self, order: Order) -> list[int]:
        if not order.desk_order or order.pk is None:
            return []
        children = getattr(order, "children_shown", None)
        if children is None:
            return list(order.children.order_by("id").values_list("pk", flat=True))
        return [child.pk for child in children]

    @extend_schema_field(ComplianceResultSerializer(many=True))
    def get_compliance_results(self, order: Order) -> list[dict]:
        """Every rule's result of every evaluation, oldest first, read from the
        verdicts (one row per evaluation; prefetch ``compliance_verdicts`` for a
        list). Internal results (watch list) are for compliance only, never for
        traders."""
        render_time = self._nested(ComplianceResultSerializer).fields["evaluated_at"].to_representation
        rendered = []
        for verdict in sorted(order.compliance_verdicts.all(), key=lambda v: v.pk):
            evaluated_at = render_time(verdict.evaluated_at)
            rendered.extend(
                {
                    "rule": result["rule"],
                    "stage": verdict.stage,
                    "outcome": result["outcome"],
                    "code": result["code"],
                    "reason": result["reason"],
                    "evaluated_at": evaluated_at,
                }
                for result in verdict.results
                if not result["internal"]
            )
        return rendered

    def _nested(self, serializer_class) -> serializers.Serializer:
        """One serializer per class for all the orders this one renders (a list of
        orders, a basket): building a ModelSerializer's fields costs more than
        rendering a row, so a list renders its orders' nested rows with one."""
        nested = self.__dict__.setdefault("_nested_serializers", {})
        if serializer_class not in nested:
            nested[serializer_class] = serializer_class()
        return nested[serializer_class]


class OrderDetailSerializer(OrderSerializer):
    executions = serializers.SerializerMethodField()
    unallocated_quantity = serializers.SerializerMethodField(
        help_text="a block's executed quantity not booked to its funds by a confirmed allocation"
    )

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "unallocated_quantity", "executions"]
        read_only_fields = fields

    def get_unallocated_quantity(self, order: Order) -> int:
        return block_unallocated_quantity(order) if order.block_order and order.pk else 0

    def get_executions(self, order: Order) -> list[dict]:
        render = self._nested(ExecutionSerializer).to_representation
        return [render(execution) for execution in order_executions_shown(order=order)]


@cache
def _order_detail_serializer() -> OrderDetailSerializer:
    return OrderDetailSerializer()


def order_detail_render(order: Order) -> dict:
    """One order as ``OrderDetailSerializer`` renders it, by one serializer kept for
    the process: building a ModelSerializer's fields costs ten times the rendering of
    an order (it keeps no state between orders; its method fields read the order)."""
    return _order_detail_serializer().to_representation(order)


class PositionSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.code", read_only=True)
    symbol = serializers.CharField(source="security.symbol", read_only=True)
    avg_buy_price = serializers.DecimalField(**PRICE, read_only=True, allow_null=True)
    avg_sell_price = serializers.DecimalField(**PRICE, read_only=True, allow_null=True)
    average_cost = serializers.DecimalField(
        **PRICE, read_only=True, allow_null=True, help_text="of the open quantity, weighted average cost method"
    )
    unrealized_pnl = serializers.DecimalField(
        max_digits=28,
        decimal_places=8,
        read_only=True,
        allow_null=True,
        help_text="the open quantity at the reference price less its cost (null without a reference price)",
    )

    class Meta:
        model = Position
        fields = [
            "account",
            "symbol",
            "quantity",
            "bought_quantity",
            "bought_notional",
            "avg_buy_price",
            "sold_quantity",
            "sold_notional",
            "avg_sell_price",
            "average_cost",
            "cost_basis",
            "realized_pnl",
            "unrealized_pnl",
            "updated_at",
        ]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "occurred_at", "actor", "action", "object_type", "object_id", "before", "after", "details"]


class BasketLinesField(serializers.ListField):
    """The basket's order lines, each checked as ``POST /api/v1/orders/`` checks its
    body; errors are keyed by line index (``{"3": {"quantity": [...]}}``). Too many
    lines is refused before any line is looked at."""

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class BasketCreateInputSerializer(serializers.Serializer):
    client_basket_id = serializers.CharField(
        max_length=64, help_text="the client's id of the basket: the same id again returns the basket it made"
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    orders = BasketLinesField(
        child=OrderCreateInputSerializer(),
        min_length=1,
        max_length=BASKET_MAX_LINES,
        help_text=f"1 to {BASKET_MAX_LINES} order lines, each the body of POST /api/v1/orders/ "
        "(client_order_id unique within the basket)",
    )


class BasketCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    routed = serializers.IntegerField(help_text="passed compliance and sent to a venue")
    held = serializers.IntegerField(help_text="held by a compliance warning for an override")
    rejected = serializers.IntegerField(help_text="blocked by compliance, or no route")


class BasketSerializer(serializers.ModelSerializer):
    counts = BasketCountsSerializer(read_only=True, help_text="the lines' outcome when the basket was submitted")

    class Meta:
        model = Basket
        fields = ["id", "client_basket_id", "name", "created_at", "counts"]
        read_only_fields = fields


class BasketDetailSerializer(BasketSerializer):
    orders = serializers.SerializerMethodField()

    class Meta(BasketSerializer.Meta):
        fields = [*BasketSerializer.Meta.fields, "orders"]
        read_only_fields = fields

    @extend_schema_field(OrderDetailSerializer(many=True))
    def get_orders(self, basket: Basket) -> list[dict]:
        """The orders in line order (those of accounts the viewer may see), passed in
        the context by the view, which reads them through the selector."""
        return OrderDetailSerializer(self.context["orders"], many=True).data


class BasketCancelRefusalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()


class BasketCancelSerializer(serializers.Serializer):
    """Documents the answer of ``POST /api/v1/baskets/{id}/cancel/``."""

    basket = BasketDetailSerializer()
    cancelled = serializers.ListField(
        child=serializers.IntegerField(), help_text="orders cancelled, or with a cancel request sent to the venue"
    )
    refused = BasketCancelRefusalSerializer(many=True, help_text="orders whose cancel was refused, with the reason")


class AllocationLineSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.code", read_only=True)

    class Meta:
        model = AllocationLine
        fields = ["line", "account", "quantity", "proposed_quantity"]
        read_only_fields = fields


class AllocationSerializer(serializers.ModelSerializer):
    venue = serializers.CharField(source="venue.code", read_only=True)
    lines = AllocationLineSerializer(many=True, read_only=True)
    confirmed_by = serializers.CharField(source="confirmed_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Allocation
        fields = [
            "id",
            "alloc_id",
            "venue",
            "status",
            "quantity",
            "avg_price",
            "trade_date",
            "lines",
            "replaces",
            "confirmed_by",
            "confirmed_at",
            "ack_status",
            "ack_text",
            "acked_at",
            "cancel_alloc_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AllocationChangeLineSerializer(serializers.Serializer):
    account = serializers.CharField(max_length=32)
    quantity = serializers.IntegerField(min_value=0)


class AllocationChangeInputSerializer(serializers.Serializer):
    allocation = serializers.IntegerField(required=False, help_text="the allocation; optional when only one is open")
    lines = AllocationChangeLineSerializer(many=True, help_text="every fund of the allocation with its quantity")
    reason = serializers.CharField(max_length=500)


class AllocationActionInputSerializer(serializers.Serializer):
    allocation = serializers.IntegerField(required=False, help_text="the allocation; optional when only one is open")


class AllocationCancelInputSerializer(AllocationActionInputSerializer):
    reason = serializers.CharField(max_length=500)
