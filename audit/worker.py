"""What a Celery worker runs for audit beside its consumer, registered by
``AuditConfig.ready()``: the sealer (a bootstep)."""

from __future__ import annotations

from celery import bootsteps

from .sealing import Sealer


class AuditSealing(bootsteps.StartStopStep):
    """Chain committed audit events every ``OMS_AUDIT_SEAL_INTERVAL`` seconds (one
    sealer at a time across workers: an advisory lock). Writers only insert; the chain
    is built here, so it never slows an order down."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.sealer = None

    def start(self, worker):
        self.sealer = Sealer().start()

    def stop(self, worker):
        if self.sealer is not None:
            self.sealer.stop()
            self.sealer = None
