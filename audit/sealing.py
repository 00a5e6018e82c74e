"""The background sealer hosted by Celery workers (the bootstep audit.worker.AuditSealing)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connection

from .services import audit_seal

logger = logging.getLogger(__name__)


class Sealer:
    def __init__(self, interval: float | None = None):
        self.interval = interval if interval is not None else settings.OMS_AUDIT_SEAL_INTERVAL
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)

    def start(self) -> Sealer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while audit_seal() and not self._stop.is_set():
                    pass
            except Exception:  # a database hiccup must not end sealing for good
                logger.exception("audit sealing failed; retrying")
                connection.close()
            self._stop.wait(self.interval)
        connection.close()
