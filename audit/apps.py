from django.apps import AppConfig
from django.contrib.auth import signals

from oms_site.celery import app as celery_app


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        # admin_users, admin_lockouts: the audited User/Group and sign-in lockout admins.
        from . import admin_lockouts, admin_users, auth, worker  # noqa: F401

        # Auth bookkeeping, not business logic: Django's login has no service to call.
        signals.user_logged_in.connect(auth.user_logged_in_record, dispatch_uid="audit.auth.login")
        signals.user_login_failed.connect(auth.user_login_failed_record, dispatch_uid="audit.auth.login_failed")
        signals.user_logged_out.connect(auth.user_logged_out_record, dispatch_uid="audit.auth.logout")
        user_locked_out.connect(auth.user_locked_out_record, dispatch_uid="audit.auth.locked_out")
        # A worker reads its steps after Celery's Django fixup has run django.setup().
        celery_app.steps["worker"].add(worker.AuditSealing)
