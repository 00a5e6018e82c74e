from celery import signals
from django.apps import AppConfig

from oms_site.celery import app as celery_app


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing and FIX connectivity"

    def ready(self) -> None:
        from . import worker  # imports models: only once the app registry is ready

        # A worker reads its steps after Celery's Django fixup has run django.setup().
        celery_app.steps["worker"].add(worker.FixSessionHosting)
        signals.worker_process_init.connect(
            worker.pool_process_close_inherited_sockets, dispatch_uid="routing.worker.close_inherited_sockets"
        )
