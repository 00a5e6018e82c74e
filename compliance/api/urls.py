from django.urls import path

from . import views

urlpatterns = [
    path("compliance/restricted-list/", views.RestrictedEntryListCreateApi.as_view(), name="restricted-entry-list"),
    path(
        "compliance/restricted-list/<int:entry_id>/", views.RestrictedEntryEndApi.as_view(), name="restricted-entry-end"
    ),
    path("compliance/kill-switch/", views.KillSwitchApi.as_view(), name="kill-switch"),
    path("orders/<int:order_id>/override/", views.OrderOverrideRequestApi.as_view(), name="order-override"),
    path("compliance/overrides/", views.OverrideListApi.as_view(), name="override-list"),
    path(
        "compliance/overrides/<int:override_id>/approve/", views.OverrideApproveApi.as_view(), name="override-approve"
    ),
    path("compliance/overrides/<int:override_id>/deny/", views.OverrideDenyApi.as_view(), name="override-deny"),
]
