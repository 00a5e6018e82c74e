"""The audit trail's part of the readiness probe (``/readyz``, oms_site.health): how
far the sealed head of the hash chain trails the newest audit event. The workers'
sealer (audit.sealing) chains events within a few seconds; a growing lag means no
worker is sealing (none running, or sealing keeps failing)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from .models import AuditAnchor, AuditEvent, AuditSeal

# Sealing waits for older transactions to end (services.SETTLE_WAIT) and runs every
# OMS_AUDIT_SEAL_INTERVAL seconds: an event unsealed for longer than this is a fault.
SEAL_LAG_DEGRADED_SECONDS = 60
COUNT_LIMIT = 100_000  # counting stops here: enough to tell a backlog, cheap to read


def audit_sealing_check() -> dict[str, Any]:
    """``head_seq``: the last sealed sequence number (0: none yet); ``unsealed_events``:
    events after the head (at most COUNT_LIMIT counted); ``lag_seconds``: age of the
    oldest of them (0 when none). ``degraded`` past SEAL_LAG_DEGRADED_SECONDS."""
    head = AuditSeal.objects.order_by("-seq").values("seq", "event_id").first()
    if head is None:
        anchor = AuditAnchor.objects.order_by("-seq").values("seq", "last_event_id").first()
        head = {"seq": anchor["seq"], "event_id": anchor["last_event_id"]} if anchor else {"seq": 0, "event_id": 0}
    unsealed = AuditEvent.objects.filter(id__gt=head["event_id"])
    oldest = unsealed.order_by("id").values_list("occurred_at", flat=True).first()
    lag = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest is not None else 0.0
    return {
        "status": "degraded" if lag > SEAL_LAG_DEGRADED_SECONDS else "ok",
        "head_seq": head["seq"],
        "unsealed_events": unsealed.order_by()[:COUNT_LIMIT].count() if oldest is not None else 0,
        "lag_seconds": round(lag, 3),
    }
