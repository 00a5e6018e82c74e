import logging
import os

from celery import Celery, bootsteps, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms_site.settings")

logger = logging.getLogger(__name__)

app = Celery("oms_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class FixSessionHosting(bootsteps.StartStopStep):
    """Host the FIX sessions of all enabled venues beside the worker's consumer
    (DESIGN §7): a FIX session is not a task. Any number of workers may run this; the
    per-venue lease decides which one holds each session. Off with
    ``OMS_FIX_HOSTING=false`` (e.g. workers dedicated to other queues)."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.host = None

    def start(self, worker):
        from django.conf import settings

        if not getattr(settings, "OMS_FIX_HOSTING", True):
            logger.info("FIX session hosting is off in this worker")
            return
        from routing.hosting import SessionHost

        self.host = SessionHost().start()

    def stop(self, worker):
        if self.host is not None:
            self.host.stop()
            self.host = None


app.steps["worker"].add(FixSessionHosting)


class AuditSealing(bootsteps.StartStopStep):
    """Chain committed audit events every ``OMS_AUDIT_SEAL_INTERVAL`` seconds (one
    sealer at a time across workers: an advisory lock). Writers only insert; the chain
    is built here, so it never slows an order down."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.sealer = None

    def start(self, worker):
        from audit.sealing import Sealer

        self.sealer = Sealer().start()

    def stop(self, worker):
        if self.sealer is not None:
            self.sealer.stop()
            self.sealer = None


app.steps["worker"].add(AuditSealing)


@signals.worker_process_init.connect
def _close_inherited_venue_sockets(**kwargs):
    """A prefork pool child starts with copies of the parent's FIX sockets: close them
    so only the session holder's process keeps the venue connection."""
    from routing.hosting import close_inherited_venue_sockets

    closed = close_inherited_venue_sockets()
    if closed:
        logger.info("closed %d inherited FIX socket(s) in pool process", closed)
