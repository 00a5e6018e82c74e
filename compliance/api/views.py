"""Thin API views for compliance systems and middle office: validate input, call one
service or selector, serialize. Every view here needs a compliance user."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import services as order_services

from .. import selectors, services
from ..models import KillSwitch, OverrideRequest, RestrictedEntry
from .serializers import (
    KillSwitchInputSerializer,
    KillSwitchResultSerializer,
    KillSwitchSerializer,
    OverrideApproveInputSerializer,
    OverrideDecisionSerializer,
    OverrideDenyInputSerializer,
    OverrideFilterSerializer,
    OverrideRequestInputSerializer,
    OverrideRequestSerializer,
    RestrictedEntryFilterSerializer,
    RestrictedEntryInputSerializer,
    RestrictedEntrySerializer,
)


class IsComplianceUser(BasePermission):
    """Middle office, compliance API clients and superusers; traders get 403."""

    def has_permission(self, request, view) -> bool:
        return selectors.is_compliance_user(request.user)


COMPLIANCE_ONLY = [IsAuthenticated, IsComplianceUser]


class RestrictedEntryListCreateApi(GenericAPIView):
    permission_classes = COMPLIANCE_ONLY
    serializer_class = RestrictedEntrySerializer
    queryset = RestrictedEntry.objects.none()  # for the schema; reads go through selectors

    @extend_schema(parameters=[RestrictedEntryFilterSerializer], responses=RestrictedEntrySerializer(many=True))
    def get(self, request):
        # A plain dict: DRF reads an empty form value (``?symbol=``) as not given;
        # the schema says a filter, when given, is valid, so an empty one is a 400.
        filters = RestrictedEntryFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        entries = selectors.restricted_entry_list(
            active=filters.validated_data.get("active"),
            symbol=filters.validated_data.get("symbol"),
            issuer=filters.validated_data.get("issuer"),
        )
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(RestrictedEntrySerializer(page, many=True).data)

    @extend_schema(request=RestrictedEntryInputSerializer, responses={201: RestrictedEntrySerializer})
    def post(self, request):
        data = RestrictedEntryInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = services.restricted_entry_add(user=request.user, **data.validated_data)
        return Response(RestrictedEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class RestrictedEntryEndApi(APIView):
    permission_classes = COMPLIANCE_ONLY

    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(RestrictedEntrySerializer, description="the entry, ended now; kept as history")
        },
    )
    def delete(self, request, entry_id: int):
        entry = services.restricted_entry_end(user=request.user, entry_id=entry_id)
        return Response(RestrictedEntrySerializer(entry).data)


class KillSwitchApi(GenericAPIView):
    permission_classes = COMPLIANCE_ONLY
    serializer_class = KillSwitchSerializer
    queryset = KillSwitch.objects.none()

    @extend_schema(responses=KillSwitchSerializer(many=True), description="The switches that are on.")
    def get(self, request):
        page = self.paginate_queryset(selectors.kill_switches_active().select_related("released_by"))
        return self.get_paginated_response(KillSwitchSerializer(page, many=True).data)

    @extend_schema(
        request=KillSwitchInputSerializer,
        responses={
            201: OpenApiResponse(KillSwitchResultSerializer, description="switched on"),
            200: OpenApiResponse(KillSwitchResultSerializer, description="released, or already in that state"),
        },
    )
    def post(self, request):
        data = KillSwitchInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = order_services.kill_switch_set(user=request.user, **data.validated_data)
        activated = result.changed and result.switch.active
        return Response(
            KillSwitchResultSerializer(result).data,
            status=status.HTTP_201_CREATED if activated else status.HTTP_200_OK,
        )


class OrderOverrideRequestApi(APIView):
    """The trader's side of an override: ask compliance to release a held order.
    Entitlements are the order's (404 if not yours), not the compliance role."""

    @extend_schema(request=OverrideRequestInputSerializer, responses={201: OverrideRequestSerializer})
    def post(self, request, order_id: int):
        data = OverrideRequestInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        override = order_services.order_override_request(user=request.user, order_id=order_id, **data.validated_data)
        return Response(OverrideRequestSerializer(override).data, status=status.HTTP_201_CREATED)


class OverrideListApi(GenericAPIView):
    permission_classes = COMPLIANCE_ONLY
    serializer_class = OverrideRequestSerializer
    queryset = OverrideRequest.objects.none()

    @extend_schema(parameters=[OverrideFilterSerializer], responses=OverrideRequestSerializer(many=True))
    def get(self, request):
        filters = OverrideFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.override_list(status=filters.validated_data.get("status")))
        return self.get_paginated_response(OverrideRequestSerializer(page, many=True).data)


class OverrideApproveApi(APIView):
    permission_classes = COMPLIANCE_ONLY

    @extend_schema(request=OverrideApproveInputSerializer, responses={200: OverrideDecisionSerializer})
    def post(self, request, override_id: int):
        data = OverrideApproveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        override = order_services.override_approve(user=request.user, override_id=override_id, **data.validated_data)
        return Response(OverrideDecisionSerializer(override).data)


class OverrideDenyApi(APIView):
    permission_classes = COMPLIANCE_ONLY

    @extend_schema(request=OverrideDenyInputSerializer, responses={200: OverrideDecisionSerializer})
    def post(self, request, override_id: int):
        data = OverrideDenyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        override = order_services.override_deny(user=request.user, override_id=override_id, **data.validated_data)
        return Response(OverrideDecisionSerializer(override).data)
