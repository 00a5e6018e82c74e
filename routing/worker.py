"""What a Celery worker runs for routing beside its consumer, registered by
``RoutingConfig.ready()``: the FIX session host (a bootstep) and, in each prefork pool
child, the closing of the venue sockets inherited from the parent."""

from __future__ import annotations

import logging

from celery import bootsteps
from django.conf import settings

from .hosting import SessionHost, close_inherited_venue_sockets

logger = logging.getLogger(__name__)


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
        if not getattr(settings, "OMS_FIX_HOSTING", True):
            logger.info("FIX session hosting is off in this worker")
            return
        self.host = SessionHost().start()

    def stop(self, worker):
        if self.host is not None:
            self.host.stop()
            self.host = None


def pool_process_close_inherited_sockets(**kwargs) -> None:
    """``worker_process_init``: a prefork pool child starts with copies of the parent's
    FIX sockets: close them so only the session holder's process keeps the venue
    connection."""
    closed = close_inherited_venue_sockets()
    if closed:
        logger.info("closed %d inherited FIX socket(s) in pool process", closed)
