from django.urls import path

from . import views, views_baskets, views_blotter, views_executions, views_site, views_ticket

app_name = "orders"

urlpatterns = [
    path("", views.home, name="home"),
    path("orders/", views.blotter, name="blotter"),
    path("orders/live/", views.blotter_live, name="blotter-live"),
    path("orders/cancel-selected/", views_blotter.blotter_cancel, name="blotter-cancel"),
    path("orders/new/", views_ticket.order_new, name="new"),
    path("orders/incoming/", views.incoming, name="incoming"),
    path("orders/<int:order_id>/", views.order_detail, name="detail"),
    path("orders/<int:order_id>/live/", views.order_live, name="detail-live"),
    path("orders/<int:order_id>/cancel/", views.order_cancel, name="cancel"),
    path("orders/<int:order_id>/amend/", views.order_amend, name="amend"),
    path("orders/<int:order_id>/override/", views.order_override, name="override"),
    path("orders/<int:order_id>/accept/", views.order_accept, name="accept"),
    path("orders/<int:order_id>/children/", views.order_child_new, name="child-new"),
    path("executions/", views_executions.executions, name="executions"),
    path("executions/live/", views_executions.executions_live, name="executions-live"),
    path("baskets/", views_baskets.basket_list, name="baskets"),
    path("baskets/new/", views_baskets.basket_new, name="basket-new"),
    path("baskets/<int:basket_id>/", views_baskets.basket_detail, name="basket"),
    path("baskets/<int:basket_id>/live/", views_baskets.basket_live, name="basket-live"),
    path("baskets/<int:basket_id>/cancel/", views_baskets.basket_cancel, name="basket-cancel"),
    path("positions/", views.positions, name="positions"),
    path("positions/live/", views.positions_live, name="positions-live"),
    path("securities/search/", views.security_search, name="security-search"),
    path("favicon.ico", views_site.favicon, name="favicon"),
]
