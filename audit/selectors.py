from django.db.models import QuerySet

from .models import AuditEvent


def audit_events_for_object(*, object_type: str, object_id) -> QuerySet[AuditEvent]:
    """The object's history, oldest first."""
    return AuditEvent.objects.filter(object_type=object_type, object_id=str(object_id)).order_by("id")
