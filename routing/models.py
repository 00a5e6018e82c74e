from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Venue(models.Model):
    """An execution venue (broker or exchange) reached over FIX, with the attributes the
    router uses to pick it."""

    class FixVersion(models.TextChoices):
        FIX44 = "FIX.4.4", "FIX 4.4"
        FIX42 = "FIX.4.2", "FIX 4.2"

    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=100, blank=True)
    host = models.CharField(max_length=255, default="127.0.0.1")
    port = models.PositiveIntegerField(default=9878, validators=[MaxValueValidator(65535)])
    sender_comp_id = models.CharField(max_length=64, default="OMS")
    target_comp_id = models.CharField(max_length=64, default="SIM")
    fix_version = models.CharField(max_length=8, choices=FixVersion.choices, default=FixVersion.FIX44)
    heartbeat_interval = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(3600)]
    )
    reset_on_logon = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # Routing attributes: an empty list means "any".
    asset_classes = models.JSONField(default=list, blank=True)
    symbols = models.JSONField(default=list, blank=True)
    currencies = models.JSONField(default=list, blank=True)
    priority = models.IntegerField(default=100, help_text="lower is preferred")

    class Meta:
        ordering = ["priority", "code"]

    def __str__(self) -> str:
        return self.code

    def takes(self, *, asset_class: str, symbol: str, currency: str) -> bool:
        return (
            (not self.asset_classes or asset_class in self.asset_classes)
            and (not self.symbols or symbol in self.symbols)
            and (not self.currencies or currency in self.currencies)
        )


class OutboundMessage(models.Model):
    """The transactional outbox: an application message written in the same transaction
    as the order change that needs it, drained in id order by the venue's session
    holder. The session stamps the header (MsgSeqNum, SendingTime) when it sends."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        VOID = "void", "Void (withdrawn before sending)"

    venue = models.ForeignKey(Venue, on_delete=models.PROTECT, related_name="outbound_messages")
    # A plain id: routing does not depend on the orders app (STYLE.md).
    order_id = models.BigIntegerField(db_index=True)
    cl_ord_id = models.CharField(max_length=64)
    msg_type = models.CharField(max_length=2)
    fields = models.JSONField(encoder=DjangoJSONEncoder, help_text="body as [[tag, value], ...]")
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    msg_seq_num = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["venue", "state", "id"])]

    def __str__(self) -> str:
        return f"{self.venue_id} {self.msg_type} {self.cl_ord_id} ({self.state})"
