from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.functional import cached_property

from .schedule import WEEKDAYS, Schedule, parse_days, time_zone


def validate_time_zone(value: str) -> None:
    try:
        time_zone(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def validate_days(value: str) -> None:
    try:
        parse_days(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


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
    reset_on_logon = models.BooleanField(
        default=False, help_text="reset both sequence numbers at every logon (sends ResetSeqNumFlag=Y)"
    )
    reset_on_logout = models.BooleanField(default=False, help_text="reset sequence numbers after a clean logout")
    reset_on_disconnect = models.BooleanField(
        default=False, help_text="reset sequence numbers whenever the connection ends"
    )
    # The session schedule (routing.schedule): none of start and end means always open.
    # Sequence numbers reset at the start of each session; outside it the venue is
    # closed (no logon attempts, orders refused) and its DAY orders end at its end.
    session_start = models.TimeField(null=True, blank=True, help_text="local time the session opens")
    session_end = models.TimeField(null=True, blank=True, help_text="local time the session ends (the venue's day)")
    session_time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], help_text="IANA name, e.g. America/New_York"
    )
    trading_days = models.CharField(
        max_length=40, default=WEEKDAYS, validators=[validate_days], help_text="e.g. Mon-Fri or Mon,Tue,Wed"
    )
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

    def clean(self) -> None:
        if (self.session_start is None) != (self.session_end is None):
            raise ValidationError(
                {"session_end" if self.session_end is None else "session_start": "Give both start and end, or neither."}
            )

    @cached_property
    def schedule(self) -> Schedule:
        return Schedule.of(self)

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


class VenueSession(models.Model):
    """The FIX session of a venue as the hosting workers see it: who holds it (a lease
    with a fencing token), its sequence numbers and health, and what an operator asked
    the holder to do. Exactly one row per venue, created when a worker first contends."""

    class Status(models.TextChoices):
        DISCONNECTED = "disconnected", "Disconnected"
        CONNECTING = "connecting", "Connecting (Logon sent)"
        CONNECTED = "connected", "Connected (logged on)"

    class Action(models.TextChoices):
        NONE = "", "None"
        DISCONNECT = "disconnect", "Disconnect (log out and stay down)"
        RECONNECT = "reconnect", "Reconnect (clears a fatal error or a disconnect)"
        SET_SEQUENCE = "set_sequence", "Set sequence numbers"
        RESET_SEQUENCE = "reset", "Reset sequence numbers (both to 1, new generations)"

    venue = models.OneToOneField(Venue, on_delete=models.PROTECT, related_name="session")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DISCONNECTED)
    next_sender_seq = models.PositiveIntegerField(default=1)
    next_target_seq = models.PositiveIntegerField(default=1)
    # Generations of sequence numbering: bumped whenever a number goes back down (a
    # sequence reset), so stored messages stay unique per (epoch, MsgSeqNum).
    sender_epoch = models.PositiveIntegerField(default=1)
    target_epoch = models.PositiveIntegerField(default=1)
    holder = models.CharField(max_length=200, blank=True, help_text="worker holding the lease")
    fencing_token = models.BigIntegerField(default=0, help_text="bumped on every lease acquisition")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_logon_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    fatal = models.BooleanField(default=False, help_text="stopped on an error a reconnect would repeat")
    stopped = models.BooleanField(default=False, help_text="disconnected by an operator; stays down until reconnect")
    requested_action = models.CharField(max_length=12, choices=Action.choices, blank=True, default="")
    requested_sender_seq = models.PositiveIntegerField(null=True, blank=True)
    requested_target_seq = models.PositiveIntegerField(null=True, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    requested_reason = models.TextField(blank=True, help_text="why the operator asked (also on the audit trail)")
    # The scheduled session the sequence numbers belong to (its start, UTC): a logon in
    # a later session resets them first. Null: no schedule, or not logged on yet.
    session_started_at = models.DateTimeField(null=True, blank=True)
    # Since when new orders could not go out (logged off, or the holder's lease ran
    # out); null while logged on. Orders wait for the session up to
    # OMS_ROUTE_WAIT_SECONDS, then are rejected naming this time.
    unavailable_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "FIX session"
        # Middle office operates sessions (with a reason, audited) without the right to
        # edit the row itself.
        permissions = [("operate_venuesession", "Can reset, reconnect and disconnect a FIX session")]

    def __str__(self) -> str:
        return f"{self.venue_id} {self.status}"


class FixMessageLog(models.Model):
    """Every raw FIX message in and out. Outbound ones are the message store that
    answers ResendRequests (unique per sender epoch and MsgSeqNum)."""

    class Direction(models.TextChoices):
        IN = "in", "In"
        OUT = "out", "Out"

    venue = models.ForeignKey(Venue, on_delete=models.PROTECT, related_name="fix_messages")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    epoch = models.PositiveIntegerField()
    msg_seq_num = models.PositiveIntegerField(null=True, blank=True)
    msg_type = models.CharField(max_length=4, blank=True)
    raw = models.TextField()
    poss_dup = models.BooleanField(default=False, help_text="a resend (PossDupFlag=Y) of a stored message")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "FIX message"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["venue", "epoch", "msg_seq_num"],
                condition=models.Q(direction="out", poss_dup=False),
                name="fix_outbound_unique_per_epoch_seq",
            )
        ]
        indexes = [models.Index(fields=["venue", "direction", "epoch", "msg_seq_num"])]

    def __str__(self) -> str:
        return f"{self.venue_id} {self.direction} {self.msg_seq_num} {self.msg_type}"


class InboundMessage(models.Model):
    """The inbox: each inbound application message, stored in the same transaction
    that advances the expected MsgSeqNum, then applied by a task in MsgSeqNum order."""

    venue = models.ForeignKey(Venue, on_delete=models.PROTECT, related_name="inbound_messages")
    epoch = models.PositiveIntegerField()
    msg_seq_num = models.PositiveIntegerField()
    msg_type = models.CharField(max_length=4)
    fields = models.JSONField(help_text="the whole message as [[tag, value], ...]")
    raw = models.TextField()
    poss_dup = models.BooleanField(default=False)
    received_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, blank=True)
    error = models.TextField(blank=True, help_text="why applying failed; the message is kept for review")

    class Meta:
        verbose_name = "inbound message (inbox)"
        verbose_name_plural = "inbound messages (inbox)"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["venue", "epoch", "msg_seq_num"], name="inbox_unique_per_epoch_seq")
        ]
        indexes = [
            models.Index(
                fields=["venue", "epoch", "msg_seq_num"],
                condition=models.Q(applied_at__isnull=True, error=""),
                name="inbox_unapplied",
            )
        ]

    def __str__(self) -> str:
        return f"{self.venue_id} #{self.epoch}/{self.msg_seq_num} {self.msg_type}"
