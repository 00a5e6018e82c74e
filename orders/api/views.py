"""Thin API views: validate input, call one service or selector, serialize."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.selectors import audit_events_for_object
from audit.services import actor_name
from oms_site.errors import NotPermitted

from .. import selectors, services
from ..models import Basket, Execution, Order, Origin, Position
from .serializers import (
    AllocationActionInputSerializer,
    AllocationCancelInputSerializer,
    AllocationChangeInputSerializer,
    AllocationSerializer,
    AuditEventSerializer,
    BasketCancelSerializer,
    BasketCreateInputSerializer,
    BasketDetailSerializer,
    BasketSerializer,
    ExecutionFilterSerializer,
    ExecutionSerializer,
    OrderAmendInputSerializer,
    OrderCheckInputSerializer,
    OrderCheckSerializer,
    OrderChildInputSerializer,
    OrderCloseInputSerializer,
    OrderCreateInputSerializer,
    OrderDetailSerializer,
    OrderFilterSerializer,
    OrderSerializer,
    PositionSerializer,
    order_detail_render,
)


def _order_detail(order_id: int, user):
    order = selectors.order_get_for_user(user=user, order_id=order_id)
    return order_detail_render(order)


def _basket_detail(basket: Basket, user):
    # A basket this request entered carries its orders as written (``basket_submit``).
    orders = getattr(basket, "orders_entered", None)
    if orders is None:
        orders = selectors.basket_orders(user=user, basket=basket)
    return BasketDetailSerializer(basket, context={"orders": orders}).data


class OrderListCreateApi(GenericAPIView):
    serializer_class = OrderSerializer
    queryset = Order.objects.none()  # for the schema; reads go through selectors

    @extend_schema(parameters=[OrderFilterSerializer], responses=OrderSerializer(many=True))
    def get(self, request):
        # A plain dict: DRF reads an empty form value (``?symbol=``) as not given;
        # the schema says a filter, when given, is valid, so an empty one is a 400.
        filters = OrderFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        orders = selectors.order_list(user=request.user, filters=filters.validated_data).prefetch_related(
            "compliance_verdicts"
        )
        page = self.paginate_queryset(orders)
        return self.get_paginated_response(OrderSerializer(page, many=True).data)

    @extend_schema(
        request=OrderCreateInputSerializer,
        responses={
            201: OrderDetailSerializer,
            200: OpenApiResponse(OrderDetailSerializer, description="client_order_id already used: the existing order"),
        },
    )
    def post(self, request):
        data = OrderCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order, created = services.order_submit(user=request.user, origin=Origin.API, **data.validated_data)
        # The service checked the entitlement; serialize what it returned.
        return Response(order_detail_render(order), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OrderCheckApi(APIView):
    @extend_schema(
        request=OrderCheckInputSerializer,
        responses={
            200: OpenApiResponse(OrderCheckSerializer, description="what compliance would say; nothing is stored")
        },
    )
    def post(self, request):
        data = OrderCheckInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation = services.order_check(user=request.user, **data.validated_data)
        return Response(OrderCheckSerializer(evaluation).data)


class OrderDetailApi(APIView):
    @extend_schema(responses=OrderDetailSerializer)
    def get(self, request, order_id: int):
        return Response(_order_detail(order_id, request.user))


class OrderCancelApi(APIView):
    @extend_schema(request=None, responses={202: OrderDetailSerializer})
    def post(self, request, order_id: int):
        order = services.order_cancel(user=request.user, order_id=order_id)
        return Response(_order_detail(order.pk, request.user), status=status.HTTP_202_ACCEPTED)


class OrderAmendApi(APIView):
    @extend_schema(request=OrderAmendInputSerializer, responses={202: OrderDetailSerializer})
    def post(self, request, order_id: int):
        data = OrderAmendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = services.order_amend(user=request.user, order_id=order_id, **data.validated_data)
        return Response(_order_detail(order.pk, request.user), status=status.HTTP_202_ACCEPTED)


class OrderAcceptApi(APIView):
    @extend_schema(
        summary="Accept a portfolio manager's order (trader)",
        description="A trader of the order's account takes it off the desk's incoming queue and becomes its owner; "
        "it stays new, the trader's to work. Audited (order.accepted).",
        request=None,
        responses={
            200: OrderDetailSerializer,
            403: OpenApiResponse(description="you may see the order but not trade its account (or are its PM)"),
            404: OpenApiResponse(description="no such order, or not visible to you"),
            409: OpenApiResponse(description="not a portfolio manager's order, already accepted, or no longer new"),
        },
    )
    def post(self, request, order_id: int):
        order = services.order_accept(user=request.user, order_id=order_id)
        return Response(_order_detail(order.pk, request.user))


class OrderChildCreateApi(APIView):
    @extend_schema(
        summary="Place a child order of a parent (its owner)",
        description="A slice of a portfolio manager's order that its owner works: the parent's account, symbol "
        "and side, checked by compliance and routed like any order. The parent's placed quantity (children "
        "working plus filled) may not exceed its quantity.",
        request=OrderChildInputSerializer,
        responses={
            201: OrderDetailSerializer,
            400: OpenApiResponse(description="invalid child order (field errors in details)"),
            403: OpenApiResponse(description="not the parent's owner, or you may not trade its account"),
            404: OpenApiResponse(description="no such order, or not visible to you"),
            409: OpenApiResponse(description="it would overplace the parent, or the parent cannot be worked"),
        },
    )
    def post(self, request, order_id: int):
        data = OrderChildInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        child = services.order_child_place(user=request.user, order_id=order_id, **data.validated_data)
        return Response(_order_detail(child.pk, request.user), status=status.HTTP_201_CREATED)


ALLOCATION_ERRORS = {
    400: OpenApiResponse(description="invalid input (field errors in details), or no allocation named"),
    403: OpenApiResponse(description="not middle office"),
    404: OpenApiResponse(description="no such order, or not visible to you"),
    409: OpenApiResponse(description="not a block order, or the allocation is not in a state that allows it"),
}


def _allocations(order_id: int, user) -> list[dict]:
    order = selectors.order_get_for_user(user=user, order_id=order_id)
    return AllocationSerializer(selectors.order_allocations(order=order), many=True).data


class OrderAllocationListApi(APIView):
    @extend_schema(
        summary="A block order's allocations",
        description="Each allocation of the block's fills to its funds, newest first: proposed by the OMS when the "
        "block ended, changed and confirmed by middle office, acknowledged by the broker (35=P).",
        responses={200: AllocationSerializer(many=True), 404: OpenApiResponse(description="no such order")},
    )
    def get(self, request, order_id: int):
        return Response(_allocations(order_id, request.user))


class OrderAllocationChangeApi(APIView):
    @extend_schema(
        summary="Change a proposed allocation (middle office)",
        description="New quantities for every fund of the allocation, summing to its executed quantity; audited "
        "with before and after and the reason.",
        request=AllocationChangeInputSerializer,
        responses={200: AllocationSerializer(many=True), **ALLOCATION_ERRORS},
    )
    def post(self, request, order_id: int):
        data = AllocationChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.allocation_change(
            user=request.user,
            order_id=order_id,
            allocation_id=data.validated_data.get("allocation"),
            lines=[dict(line) for line in data.validated_data["lines"]],
            reason=data.validated_data["reason"],
        )
        return Response(_allocations(order_id, request.user))


class OrderAllocationConfirmApi(APIView):
    @extend_schema(
        summary="Confirm an allocation (middle office)",
        description="Books each fund's position at the allocation's average price and sends the broker an "
        "AllocationInstruction (35=J), one NoAllocs entry per fund.",
        request=AllocationActionInputSerializer,
        responses={200: AllocationSerializer(many=True), **ALLOCATION_ERRORS},
    )
    def post(self, request, order_id: int):
        data = AllocationActionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.allocation_confirm(
            user=request.user, order_id=order_id, allocation_id=data.validated_data.get("allocation")
        )
        return Response(_allocations(order_id, request.user))


class OrderAllocationCancelApi(APIView):
    @extend_schema(
        summary="Cancel an allocation and propose it afresh (middle office)",
        description="Before the broker accepts it: a confirmed allocation's bookings are reversed and the broker "
        "is sent a cancel (35=J, AllocTransType 2); a new proposal takes its place.",
        request=AllocationCancelInputSerializer,
        responses={200: AllocationSerializer(many=True), **ALLOCATION_ERRORS},
    )
    def post(self, request, order_id: int):
        data = AllocationCancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.allocation_cancel(
            user=request.user,
            order_id=order_id,
            allocation_id=data.validated_data.get("allocation"),
            reason=data.validated_data["reason"],
        )
        return Response(_allocations(order_id, request.user))


class OrderCloseApi(APIView):
    @extend_schema(
        summary="Close an order the venue no longer knows (middle office)",
        description="Ends a working order here without a message to the venue (it lost the order, e.g. after a "
        "restart), as cancelled or done for the day, keeping its fills; its working exposure and locate are "
        "released, and the reason is on its audit trail. A fill the venue still reports is applied. Middle office "
        "and superusers only.",
        request=OrderCloseInputSerializer,
        responses={
            200: OrderDetailSerializer,
            400: OpenApiResponse(description="no reason, or a status other than cancelled / done_for_day"),
            403: OpenApiResponse(description="not middle office"),
            404: OpenApiResponse(description="no such order"),
            409: OpenApiResponse(description="the order is not working (already ended, or never sent)"),
        },
    )
    def post(self, request, order_id: int):
        if not request.user.has_perm("orders.close_order_locally"):
            raise NotPermitted("Only middle office may close an order locally.")
        data = OrderCloseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        selectors.order_get_for_user(user=request.user, order_id=order_id)  # 404 if not visible
        order = services.order_close_locally(
            order_id=order_id,
            actor=actor_name(request.user),
            reason=data.validated_data["reason"],
            final_status=data.validated_data["status"],
        )
        return Response(_order_detail(order.pk, request.user))


class OrderAuditApi(APIView):
    @extend_schema(responses=AuditEventSerializer(many=True))
    def get(self, request, order_id: int):
        order = selectors.order_get_for_user(user=request.user, order_id=order_id)
        events = audit_events_for_object(object_type="order", object_id=order.pk)
        return Response(AuditEventSerializer(events, many=True).data)


class ExecutionListApi(GenericAPIView):
    serializer_class = ExecutionSerializer
    queryset = Execution.objects.none()

    @extend_schema(parameters=[ExecutionFilterSerializer], responses=ExecutionSerializer(many=True))
    def get(self, request):
        # As for orders: a filter, when given, must be valid (an empty one is a 400).
        filters = ExecutionFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.execution_list(user=request.user, filters=filters.validated_data))
        return self.get_paginated_response(ExecutionSerializer(page, many=True).data)


class PositionListApi(GenericAPIView):
    serializer_class = PositionSerializer
    queryset = Position.objects.none()

    @extend_schema(
        parameters=[
            OpenApiParameter("account", str, required=False),
            OpenApiParameter("symbol", str, required=False),
        ],
        responses=PositionSerializer(many=True),
    )
    def get(self, request):
        positions = selectors.position_list(
            user=request.user, account=request.query_params.get("account"), symbol=request.query_params.get("symbol")
        )
        page = self.paginate_queryset(positions)
        return self.get_paginated_response(PositionSerializer(page, many=True).data)


class BasketListCreateApi(GenericAPIView):
    serializer_class = BasketSerializer
    queryset = Basket.objects.none()  # for the schema; reads go through selectors

    @extend_schema(responses=BasketSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.basket_list(user=request.user))
        return self.get_paginated_response(BasketSerializer(page, many=True).data)

    @extend_schema(
        request=BasketCreateInputSerializer,
        responses={
            201: OpenApiResponse(
                BasketDetailSerializer,
                description="the basket and its orders in line order; a compliance block or warning is a "
                "rejected or held order, not an error",
            ),
            200: OpenApiResponse(
                BasketDetailSerializer, description="client_basket_id already used by you: the existing basket"
            ),
            400: OpenApiResponse(
                description='invalid basket: nothing was created; a bad line is named in details.orders["<index>"]'
            ),
        },
    )
    def post(self, request):
        data = BasketCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        basket, created = services.basket_submit(user=request.user, origin=Origin.API, **data.validated_data)
        return Response(
            _basket_detail(basket, request.user),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class BasketDetailApi(APIView):
    @extend_schema(responses=BasketDetailSerializer)
    def get(self, request, basket_id: int):
        basket = selectors.basket_get_for_user(user=request.user, basket_id=basket_id)
        return Response(_basket_detail(basket, request.user))


class BasketCancelApi(APIView):
    @extend_schema(
        request=None,
        responses={
            202: OpenApiResponse(
                BasketCancelSerializer,
                description="every working order of the basket cancelled or asked to cancel; none left working "
                "is not an error (cancelled is empty)",
            )
        },
    )
    def post(self, request, basket_id: int):
        result = services.basket_cancel(user=request.user, basket_id=basket_id)
        body = {
            "basket": _basket_detail(result.basket, request.user),
            "cancelled": result.cancelled,
            "refused": result.refused,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)
