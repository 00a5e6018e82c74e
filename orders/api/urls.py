from django.urls import path

from . import views

urlpatterns = [
    path("orders/", views.OrderListCreateApi.as_view(), name="order-list"),
    path("orders/check/", views.OrderCheckApi.as_view(), name="order-check"),
    path("orders/<int:order_id>/", views.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<int:order_id>/cancel/", views.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<int:order_id>/amend/", views.OrderAmendApi.as_view(), name="order-amend"),
    path("orders/<int:order_id>/accept/", views.OrderAcceptApi.as_view(), name="order-accept"),
    path("orders/<int:order_id>/children/", views.OrderChildCreateApi.as_view(), name="order-children"),
    path("orders/<int:order_id>/allocations/", views.OrderAllocationListApi.as_view(), name="order-allocations"),
    path(
        "orders/<int:order_id>/allocations/change/",
        views.OrderAllocationChangeApi.as_view(),
        name="order-allocation-change",
    ),
    path(
        "orders/<int:order_id>/allocations/confirm/",
        views.OrderAllocationConfirmApi.as_view(),
        name="order-allocation-confirm",
    ),
    path(
        "orders/<int:order_id>/allocations/cancel/",
        views.OrderAllocationCancelApi.as_view(),
        name="order-allocation-cancel",
    ),
    path("orders/<int:order_id>/close/", views.OrderCloseApi.as_view(), name="order-close"),
    path("orders/<int:order_id>/audit/", views.OrderAuditApi.as_view(), name="order-audit"),
    path("baskets/", views.BasketListCreateApi.as_view(), name="basket-list"),
    path("baskets/<int:basket_id>/", views.BasketDetailApi.as_view(), name="basket-detail"),
    path("baskets/<int:basket_id>/cancel/", views.BasketCancelApi.as_view(), name="basket-cancel"),
    path("executions/", views.ExecutionListApi.as_view(), name="execution-list"),
    path("positions/", views.PositionListApi.as_view(), name="position-list"),
]
