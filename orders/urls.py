from django.urls import path

from . import views

app_name = "orders"

urlpatterns = [
    path("", views.home, name="home"),
    path("orders/", views.blotter, name="blotter"),
    path("orders/live/", views.blotter_live, name="blotter-live"),
    path("orders/new/", views.order_new, name="new"),
    path("orders/incoming/", views.incoming, name="incoming"),
    path("orders/<int:order_id>/", views.order_detail, name="detail"),
    path("orders/<int:order_id>/live/", views.order_live, name="detail-live"),
    path("orders/<int:order_id>/cancel/", views.order_cancel, name="cancel"),
    path("orders/<int:order_id>/amend/", views.order_amend, name="amend"),
    path("orders/<int:order_id>/override/", views.order_override, name="override"),
    path("orders/<int:order_id>/accept/", views.order_accept, name="accept"),
    path("orders/<int:order_id>/children/", views.order_child_new, name="child-new"),
    path("positions/", views.positions, name="positions"),
    path("positions/live/", views.positions_live, name="positions-live"),
    path("securities/search/", views.security_search, name="security-search"),
]
