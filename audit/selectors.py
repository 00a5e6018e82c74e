from django.db.models import QuerySet

from .models import AuditEvent


def audit_events_for_object(*, object_type: str, object_id) -> QuerySet[AuditEvent]:
    """The object's history, oldest first."""
    return AuditEvent.objects.filter(object_type=object_type, object_id=str(object_id)).order_by("id")


EXPORT_FIELDS = (
    "id",
    "occurred_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "before",
    "after",
    "details",
    "seal__seq",
    "seal__prev_hash",
    "seal__hash",
)


def audit_events_export(*, since=None, until=None, object_type: str | None = None, object_ids=None, chunk: int = 2000):
    """Events with their chain position, oldest first, streamed (keyset pages of
    ``chunk`` rows: constant memory for millions). ``object_ids`` may be a list or a
    subquery of ids (as strings)."""
    events = AuditEvent.objects.all()
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    if object_type is not None:
        events = events.filter(object_type=object_type)
    if object_ids is not None:
        events = events.filter(object_id__in=object_ids)
    after = 0
    while True:
        rows = list(events.filter(id__gt=after).order_by("id").values(*EXPORT_FIELDS)[:chunk])
        if not rows:
            return
        for row in rows:
            row["seq"] = row.pop("seal__seq")
            row["prev_hash"] = row.pop("seal__prev_hash")
            row["hash"] = row.pop("seal__hash")
            yield row
        after = rows[-1]["id"]
