from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from audit.health import audit_sealing_check
from oms_site.health import healthz, readyz_view
from routing.health import venue_sessions_check

urlpatterns = [
    # Probes (oms_site/health.py): no sign-in, not in the API schema.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz_view({"venues": venue_sessions_check, "audit_sealing": audit_sealing_check}), name="readyz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("orders.api.urls")),
    path("api/v1/", include("compliance.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("orders.urls")),
]

handler400 = "oms_site.errors.bad_request"
handler404 = "oms_site.errors.page_not_found"
handler500 = "oms_site.errors.server_error"
