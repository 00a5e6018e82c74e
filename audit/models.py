from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("audit events are append-only")

    def delete(self):
        raise PermissionError("audit events are append-only")


class AuditEvent(models.Model):
    """One immutable fact: who did what to which object, when, and what it looked like
    before and after. Written only through ``audit.services`` inside the caller's
    transaction, so an event exists exactly when the change it describes committed."""

    occurred_at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=150, help_text="username, or system:<component>")
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100)
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # The inserting transaction (PostgreSQL xid8, stamped by a trigger): the sealer
    # chains an event only once every transaction that could precede it has ended.
    txid = models.BigIntegerField(null=True, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["object_type", "object_id", "id"])]

    def __str__(self) -> str:
        return f"{self.occurred_at.isoformat()} {self.actor} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")


class AuditSeal(models.Model):
    """An event's place in the hash chain: ``seq`` consecutive from 1 (or from the
    purge anchor), ``hash = sha256(prev_hash | seq | canonical event)``. Written once
    by the sealer, never changed (database triggers)."""

    event = models.OneToOneField(AuditEvent, on_delete=models.DO_NOTHING, primary_key=True, related_name="seal")
    seq = models.BigIntegerField(unique=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField()

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} event {self.event_id} {self.hash[:12]}"


class AuditAnchor(models.Model):
    """Where the chain starts after a purge removed its oldest events: the last purged
    seal's sequence number and hash, recorded by the purge (append-only)."""

    seq = models.BigIntegerField(unique=True)
    hash = models.CharField(max_length=64)
    last_event_id = models.BigIntegerField()
    purged_events = models.BigIntegerField()
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=150)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"anchor at #{self.seq} ({self.purged_events} purged)"


# ------------------------------------------------------------------------ retention
DEFAULT_RETENTION_YEARS = 7  # longest of 204-2(e) 5y, 17a-4(a) 6y, MiFIR 25 5y, rounded up
ANY_RECORD_TYPE = "*"


class KeptQuerySet(models.QuerySet):
    def delete(self):
        raise PermissionError("retention policies and legal holds are never deleted")


class RetentionPolicy(models.Model):
    """How long audit events of one record type (their ``object_type``) are kept; ``*``
    is the default for types without a policy of their own (7 years when not set).
    Changed only through ``audit.retention`` (audited), never deleted."""

    record_type = models.CharField(
        max_length=100,
        unique=True,
        help_text='An audit object type ("order", "fix_session", "user") or * for the default.',
    )
    years = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    note = models.TextField(blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField()

    objects = KeptQuerySet.as_manager()

    class Meta:
        ordering = ["record_type"]
        verbose_name_plural = "retention policies"
        constraints = [models.CheckConstraint(condition=models.Q(years__gte=1), name="audit_retention_years_positive")]

    def __str__(self) -> str:
        return f"{self.record_type}: {self.years} years"

    def delete(self, *args, **kwargs):
        raise PermissionError("retention policies are never deleted")


class LegalHold(models.Model):
    """Audit events of an object (or, with a blank ``object_id``, of every object of the
    type) that no purge may remove while the hold is active (not released). Holds are
    released, never deleted."""

    object_type = models.CharField(max_length=100, help_text='An audit object type, e.g. "order" or "account".')
    object_id = models.CharField(max_length=100, blank=True, help_text="Blank: every object of that type.")
    reason = models.TextField()
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    placed_at = models.DateTimeField()
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)

    objects = KeptQuerySet.as_manager()

    class Meta:
        ordering = ["-placed_at", "-id"]
        indexes = [
            models.Index(
                fields=["object_type", "object_id"],
                condition=models.Q(released_at__isnull=True),
                name="audit_legalhold_active",
            )
        ]

    def __str__(self) -> str:
        return f"hold on {self.target_label}{'' if self.active else ' (released)'}"

    @property
    def active(self) -> bool:
        return self.released_at is None

    @property
    def target_label(self) -> str:
        return f"{self.object_type}:{self.object_id}" if self.object_id else f"every {self.object_type}"

    def delete(self, *args, **kwargs):
        raise PermissionError("legal holds are released, never deleted")
