"""Probes for load balancers and orchestrators, unauthenticated and outside the API
schema (they reveal no secret: no error text, no URL, no host name).

- ``GET /healthz``: the web process answers. 200 ``{"status": "ok"}``; touches nothing
  else (no database), so a slow database never gets healthy web processes restarted.
- ``GET /readyz``: this web process can do its work. The database (``SELECT 1``) and
  the Celery broker (a connection with a short timeout; the filesystem broker's folder)
  are required: either down makes it 503 ``"unavailable"``. The other checks, passed in
  by ``oms_site.urls`` (the apps' own: FIX venue sessions, audit sealing), only inform:
  one not ``"ok"`` makes the body say ``"degraded"`` with a 200, because the web tier
  still serves the blotter, the audit trail and orders to the other venues while a venue
  is down. They need the database, so they are ``"skipped"`` when it is down.

This module imports no app (tests/test_architecture.py): the apps' checks come in as
callables returning a JSON-able dict with a ``"status"`` key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from kombu import Connection

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 2.0  # seconds to connect to the broker
OK = "ok"

Check = Callable[[], dict[str, Any]]


@login_not_required
@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": OK})


def database_check() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("readiness: database check failed", exc_info=True)
        return {"status": "down", "error": type(exc).__name__}
    return {"status": OK, "vendor": connection.vendor}


def broker_check() -> dict[str, Any]:
    url = settings.CELERY_BROKER_URL
    transport = url.partition("://")[0] or "unknown"
    if transport == "filesystem":
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        if not (os.path.isdir(folder) and os.access(folder, os.R_OK | os.W_OK | os.X_OK)):
            logger.warning("readiness: the filesystem broker's folder %s is missing or not writable", folder)
            return {"status": "down", "transport": transport}
        return {"status": OK, "transport": transport}
    try:
        with Connection(url, connect_timeout=BROKER_TIMEOUT) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT)
    except Exception as exc:  # kombu raises the transport's own errors (OperationalError, OSError, ...)
        logger.warning("readiness: broker check failed", exc_info=True)
        return {"status": "down", "transport": transport, "error": type(exc).__name__}
    return {"status": OK, "transport": transport}


def readiness(informational: dict[str, Check]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of a readiness probe."""
    checks: dict[str, dict[str, Any]] = {"database": database_check(), "broker": broker_check()}
    required_ok = checks["database"]["status"] == OK and checks["broker"]["status"] == OK
    for name, check in informational.items():
        if checks["database"]["status"] != OK:
            checks[name] = {"status": "skipped", "reason": "database down"}
            continue
        try:
            checks[name] = check()
        except DatabaseError as exc:
            logger.warning("readiness: %s check failed", name, exc_info=True)
            checks[name] = {"status": "unknown", "error": type(exc).__name__}
    if not required_ok:
        return 503, {"status": "unavailable", "checks": checks}
    degraded = any(checks[name]["status"] != OK for name in informational)
    return 200, {"status": "degraded" if degraded else OK, "checks": checks}


def readyz_view(informational: dict[str, Check]) -> Callable[[HttpRequest], JsonResponse]:
    """The ``/readyz`` view, with the apps' informational checks by name."""

    @login_not_required
    @never_cache
    @require_safe
    def readyz(request: HttpRequest) -> JsonResponse:
        status, body = readiness(informational)
        return JsonResponse(body, status=status)

    return readyz
