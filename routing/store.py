"""``DbStore``: the FIX ``SessionStore`` on PostgreSQL, for the worker holding a
venue's lease.

Every write is fenced: it changes the session row only while this worker's holder id
and fencing token are on it and the lease has not expired, and raises ``LeaseLost``
otherwise, so a worker that lost the venue cannot stamp, store or advance anything.
Every such write also extends the lease (``lease_ttl``), so a holder busy with a long
burst keeps the venue while it makes progress. Sequence numbers are cached in memory
(the fenced holder is their only writer) and reloaded after a rolled-back transaction
(``reload``).

Every message stored here is also an audit event (``fix.sent``) in the same
transaction: an application message against its order (found through the outbox row
being stamped in the enclosing transaction), a session-level one against the session
(``fix_session``, the venue code).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.models.functions import Now

from audit.services import audit_event_record

from .fix.session import ADMIN_TYPES
from .fix.stores import InboundRecord, inbound_batch_target
from .models import FixMessageLog, InboundMessage, OutboundMessage, Venue, VenueSession
from .services import lease_extension, session_fenced_update

# Tags whose values never go into the audit trail (Logon credentials).
SECRET_TAGS = frozenset({b"554", b"925", b"96"})
# Where an application message names the outbox row it was stamped from: ClOrdID (11),
# or the status request's own id (790) for an OrderStatusRequest.
OUTBOX_ID_TAGS = (b"11", b"790")


def fix_audit_text(raw: bytes) -> str:
    """A raw FIX message for the audit trail: SOH shown as ``|``, credentials masked."""
    parts = []
    for part in raw.split(b"\x01"):
        tag, sep, _ = part.partition(b"=")
        parts.append(tag + b"=***" if sep and tag in SECRET_TAGS else part)
    return b"|".join(parts).decode("latin-1")


def _tag_values(raw: bytes, tags: tuple[bytes, ...]) -> list[str]:
    values = []
    for part in raw.split(b"\x01"):
        tag, sep, value = part.partition(b"=")
        if sep and tag in tags:
            values.append(value.decode("latin-1"))
    return values


class DbStore:
    def __init__(self, *, venue_id: int, holder: str, token: int, lease_ttl: float | None = None) -> None:
        self.venue_id = venue_id
        self.holder = holder
        self.token = token
        self.lease_ttl = lease_ttl
        self.venue_code = Venue.objects.filter(pk=venue_id).values_list("code", flat=True).first() or str(venue_id)
        self.reload()

    # ------------------------------------------------------------------ helpers
    def reload(self) -> None:
        row = VenueSession.objects.get(venue_id=self.venue_id)
        self._sender_seq = row.next_sender_seq
        self._target_seq = row.next_target_seq
        self.sender_epoch = row.sender_epoch
        self.target_epoch = row.target_epoch

    def _update(self, **values) -> None:
        if self.lease_ttl:
            values["lease_expires_at"] = lease_extension(self.lease_ttl)
        session_fenced_update(venue_id=self.venue_id, holder=self.holder, token=self.token, **values)

    # ----------------------------------------------------------- SessionStore API
    def next_sender_seq(self) -> int:
        return self._sender_seq

    def next_target_seq(self) -> int:
        return self._target_seq

    def set_next_sender_seq(self, seq: int) -> None:
        if seq == self._sender_seq:
            return
        # Going back reuses numbers: a new generation keeps the stored ones apart.
        epoch = self.sender_epoch + 1 if seq < self._sender_seq else self.sender_epoch
        self._update(next_sender_seq=seq, sender_epoch=epoch)
        self._sender_seq, self.sender_epoch = seq, epoch

    def set_next_target_seq(self, seq: int) -> None:
        if seq == self._target_seq:
            return
        epoch = self.target_epoch + 1 if seq < self._target_seq else self.target_epoch
        self._update(next_target_seq=seq, target_epoch=epoch)
        self._target_seq, self.target_epoch = seq, epoch

    def save_outbound(self, seq: int, msg_type: str, raw: bytes) -> None:
        """Store the message and advance the sender number past it, atomically."""
        epoch = self.sender_epoch
        if seq < self._sender_seq:
            epoch += 1
        with transaction.atomic():
            self._update(next_sender_seq=seq + 1, sender_epoch=epoch, last_message_at=Now())
            FixMessageLog.objects.create(
                venue_id=self.venue_id,
                direction=FixMessageLog.Direction.OUT,
                epoch=epoch,
                msg_seq_num=seq,
                msg_type=msg_type,
                raw=raw.decode("latin-1"),
            )
            self._audit_sent(epoch=epoch, seq=seq, msg_type=msg_type, raw=raw)
        self._sender_seq, self.sender_epoch = seq + 1, epoch

    def _audit_sent(self, *, epoch: int, seq: int, msg_type: str, raw: bytes) -> None:
        """``fix.sent`` with the raw message, in the transaction that stores it. An
        application message is stamped from an outbox row the enclosing transaction
        holds locked (``outbox_message_stamp``) and still pending: that row names the
        order."""
        details = {
            "venue": self.venue_code,
            "epoch": epoch,
            "seq": seq,
            "msg_type": msg_type,
            "message": fix_audit_text(raw),
        }
        outbox = None
        if msg_type not in ADMIN_TYPES:
            ids = _tag_values(raw, OUTBOX_ID_TAGS)
            if ids:
                outbox = (
                    OutboundMessage.objects.filter(
                        venue_id=self.venue_id,
                        state=OutboundMessage.State.PENDING,
                        msg_type=msg_type,
                        cl_ord_id__in=ids,
                    )
                    .order_by("id")
                    .only("id", "order_id", "cl_ord_id")
                    .first()
                )
        if outbox is not None:
            details.update(outbound_message_id=outbox.pk, cl_ord_id=outbox.cl_ord_id)
        audit_event_record(
            actor=f"system:fix-host:{self.holder}",
            action="fix.sent",
            object_type="order" if outbox is not None else "fix_session",
            object_id=outbox.order_id if outbox is not None else self.venue_code,
            details=details,
        )

    def outbound_range(self, begin: int, end: int) -> list[tuple[int, str, bytes]]:
        rows = FixMessageLog.objects.filter(
            venue_id=self.venue_id,
            direction=FixMessageLog.Direction.OUT,
            poss_dup=False,
            epoch=self.sender_epoch,
            msg_seq_num__gte=begin,
            msg_seq_num__lte=end,
        ).order_by("msg_seq_num")
        return [(r.msg_seq_num, r.msg_type, r.raw.encode("latin-1")) for r in rows]

    def accept_inbound(self, seq: int, msg_type: str, fields: list[tuple[int, str]], raw: bytes) -> None:
        """One message: a batch of one."""
        self.accept_inbound_batch([InboundRecord(seq, msg_type, fields, raw)])

    def accept_inbound_batch(self, messages: Sequence[InboundRecord], *, next_target_seq: int | None = None) -> None:
        """The inbox rule (DESIGN §4.3), per received chunk: the messages are stored in
        the transaction that advances the expected sequence number past them (to
        ``next_target_seq`` when admin messages after the last one consumed numbers
        too), so none is lost nor taken twice. Two statements whatever the count: the
        fenced update of the session row first (a worker that lost the lease raises
        ``LeaseLost`` before writing anything; the row lock orders concurrent writers),
        then one multi-row insert."""
        target = inbound_batch_target(messages, next_target_seq)
        epoch = self.target_epoch
        if messages[0].seq < self._target_seq:
            epoch += 1  # going back reuses numbers: a new generation
        rows = [
            InboundMessage(
                venue_id=self.venue_id,
                epoch=epoch,
                msg_seq_num=message.seq,
                msg_type=message.msg_type,
                fields=[[tag, value] for tag, value in message.fields],
                raw=message.raw.decode("latin-1"),
                poss_dup=any(tag == 43 and value == "Y" for tag, value in message.fields),
            )
            for message in messages
        ]
        with transaction.atomic():
            self._update(next_target_seq=target, target_epoch=epoch, last_message_at=Now())
            InboundMessage.objects.bulk_create(rows)
        self._target_seq, self.target_epoch = target, epoch

    def reset(self) -> None:
        """ResetSeqNumFlag: both numbers back to 1, in new generations."""
        sender_epoch, target_epoch = self.sender_epoch + 1, self.target_epoch + 1
        self._update(next_sender_seq=1, next_target_seq=1, sender_epoch=sender_epoch, target_epoch=target_epoch)
        self._sender_seq = self._target_seq = 1
        self.sender_epoch, self.target_epoch = sender_epoch, target_epoch
