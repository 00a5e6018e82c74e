from django.apps import AppConfig
from django.contrib.auth import signals

from oms_site.celery import app as celery_app


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from . import admin_users, auth, worker  # noqa: F401  (admin_users: the audited User/Group admins)

        # Auth bookkeeping, not business logic: Django's login has no service to call.
        signals.user_logged_in.connect(auth.user_logged_in_record, dispatch_uid="audit.auth.login")
        signals.user_login_failed.connect(auth.user_login_failed_record, dispatch_uid="audit.auth.login_failed")
        signals.user_logged_out.connect(auth.user_logged_out_record, dispatch_uid="audit.auth.logout")
        # A worker reads its steps after Celery's Django fixup has run django.setup().
        celery_app.steps["worker"].add(worker.AuditSealing)
