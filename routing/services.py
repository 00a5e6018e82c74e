"""Routing use cases: the outbox written by order services, and the FIX session rows
the hosting workers keep (lease, sequence numbers, inbox, operator requests).

Time that decides who holds a lease is the database's (``Now()``), never a worker's
clock: workers on several machines compare against one clock."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from audit.reference import reference_save
from audit.services import audit_event_record
from oms_site.db import rows_insert
from oms_site.errors import InvalidInput

from .models import FixMessageLog, InboundMessage, OutboundMessage, Venue, VenueSession

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This worker no longer holds the venue's lease (expired, or taken over): it must
    stop sending at once."""


def lease_extension(seconds: float):
    """The database's now + ``seconds``, as an expression for an UPDATE."""
    return ExpressionWrapper(Now() + dt.timedelta(seconds=seconds), output_field=DateTimeField())


# ---------------------------------------------------------------------------- outbox
def outbox_message_enqueue(
    *, venue: Venue, order_id: int, cl_ord_id: str, msg_type: str, fields: Iterable[tuple[int, str]]
) -> OutboundMessage:
    """Queue an application message for the venue's session; call inside the order's
    transaction so the message exists exactly when the order change committed."""
    message = outbox_message_build(
        venue=venue, order_id=order_id, cl_ord_id=cl_ord_id, msg_type=msg_type, fields=fields
    )
    message.save()
    return message


def outbox_message_build(
    *, venue: Venue, order_id: int, cl_ord_id: str, msg_type: str, fields: Iterable[tuple[int, str]]
) -> OutboundMessage:
    """A message for ``outbox_messages_enqueue``, not yet stored."""
    return OutboundMessage(
        venue=venue,
        order_id=order_id,
        cl_ord_id=cl_ord_id,
        msg_type=msg_type,
        fields=[[tag, value] for tag, value in fields],
    )


def outbox_messages_enqueue(*, messages: list[OutboundMessage]) -> None:
    """Queue many built messages with bulk inserts, in list order (the session drains
    a venue's outbox in id order), inside the orders' transaction."""
    rows_insert(OutboundMessage, messages, ids=False)


def outbox_message_withdraw(*, order_id: int, cl_ord_id: str) -> bool:
    """Withdraw a message that has not been sent yet. A compare-and-swap on the state:
    True only if this call moved it from pending to void, so a message the session has
    already claimed for sending is never reported as withdrawn."""
    return (
        OutboundMessage.objects.filter(
            order_id=order_id, cl_ord_id=cl_ord_id, state=OutboundMessage.State.PENDING
        ).update(state=OutboundMessage.State.VOID)
        == 1
    )


def outbox_messages_withdraw_for_order(*, order_id: int) -> list[str]:
    """Withdraw every message for the order that has not been sent yet (an order
    closed locally): each through ``outbox_message_withdraw``'s compare-and-swap, so a
    message the session has claimed meanwhile is not counted. Returns the ClOrdIDs
    withdrawn."""
    pending = OutboundMessage.objects.filter(order_id=order_id, state=OutboundMessage.State.PENDING)
    cl_ord_ids = list(dict.fromkeys(pending.order_by("id").values_list("cl_ord_id", flat=True)))
    return [cl_ord_id for cl_ord_id in cl_ord_ids if outbox_message_withdraw(order_id=order_id, cl_ord_id=cl_ord_id)]


# ----------------------------------------------------------------------------- lease
def _fenced(*, venue_id: int, holder: str, token: int):
    """The session row, only while ``holder`` holds the lease with ``token``."""
    return VenueSession.objects.filter(
        venue_id=venue_id, holder=holder, fencing_token=token, lease_expires_at__gt=Now()
    )


def venue_session_ensure(*, venue_id: int) -> None:
    # Insert-or-fetch: the unique venue decides.
    VenueSession.objects.bulk_create([VenueSession(venue_id=venue_id)], ignore_conflicts=True)


def session_lease_acquire(*, venue_id: int, holder: str, ttl: float) -> int | None:
    """Take the venue's lease if nobody holds a live one; returns the new fencing
    token, or None. Every acquisition bumps the token, so anything a former holder
    still tries to write is refused."""
    venue_session_ensure(venue_id=venue_id)
    with transaction.atomic():
        updated = (
            VenueSession.objects.filter(venue_id=venue_id)
            .filter(Q(holder="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=Now()))
            .update(
                holder=holder,
                fencing_token=F("fencing_token") + 1,
                lease_expires_at=lease_extension(ttl),
                status=VenueSession.Status.DISCONNECTED,
                # Down since the old holder's lease ran out (it died), or since now.
                unavailable_since=Coalesce(F("unavailable_since"), F("lease_expires_at"), Now()),
                updated_at=Now(),
            )
        )
        if not updated:
            return None
        session = VenueSession.objects.get(venue_id=venue_id)
        logger.info("FIX session %s: lease taken by %s (token %s)", venue_id, holder, session.fencing_token)
        return session.fencing_token


def session_lease_renew(*, venue_id: int, holder: str, token: int, ttl: float) -> None:
    if not _fenced(venue_id=venue_id, holder=holder, token=token).update(lease_expires_at=lease_extension(ttl)):
        raise LeaseLost(f"venue {venue_id}: lease lost by {holder}")


def session_lease_release(*, venue_id: int, holder: str, token: int) -> None:
    """Give the lease up on a clean stop, so another worker takes over at once."""
    VenueSession.objects.filter(venue_id=venue_id, holder=holder, fencing_token=token).update(
        holder="",
        lease_expires_at=None,
        status=VenueSession.Status.DISCONNECTED,
        unavailable_since=Coalesce(F("unavailable_since"), Now()),
    )


def session_lease_check(*, venue_id: int, holder: str, token: int) -> VenueSession:
    """Inside the caller's transaction: lock the session row and make sure the lease is
    still ours (holder, token, not expired) before anything is sent."""
    session = _fenced(venue_id=venue_id, holder=holder, token=token).select_for_update().first()
    if session is None:
        raise LeaseLost(f"venue {venue_id}: lease lost by {holder}")
    return session


def session_fenced_update(*, venue_id: int, holder: str, token: int, **values: Any) -> None:
    """Update the session row only while the lease is ours."""
    if not _fenced(venue_id=venue_id, holder=holder, token=token).update(**values):
        raise LeaseLost(f"venue {venue_id}: lease lost by {holder}")


# -------------------------------------------------------------------- session status
def session_status_set(
    *, venue_id: int, holder: str, token: int, status: str, error: str | None = None, logon: bool = False
) -> None:
    values: dict[str, Any] = {"status": status}
    if logon:
        values.update(last_logon_at=timezone.now(), unavailable_since=None)
    elif status != VenueSession.Status.CONNECTED:
        values["unavailable_since"] = Coalesce(F("unavailable_since"), Now())
    if error:
        values.update(last_error=error[:2000], last_error_at=timezone.now())
    VenueSession.objects.filter(venue_id=venue_id, holder=holder, fencing_token=token).update(**values)


def session_error_record(*, venue_id: int, holder: str, token: int | None, error: str) -> None:
    """A connection problem (refused, dropped): recorded on the row, nothing more."""
    qs = VenueSession.objects.filter(venue_id=venue_id, holder=holder)
    if token is not None:
        qs = qs.filter(fencing_token=token)
    qs.update(last_error=error[:2000], last_error_at=timezone.now(), status=VenueSession.Status.DISCONNECTED)


def session_fatal_mark(*, venue_id: int, holder: str, token: int, reason: str) -> None:
    """An error a reconnect would only repeat (MsgSeqNum too low): stop reconnecting
    until an operator asks for it, and alert."""
    with transaction.atomic():
        session = VenueSession.objects.select_for_update().select_related("venue").get(venue_id=venue_id)
        session.fatal = True
        session.status = VenueSession.Status.DISCONNECTED
        session.last_error = reason[:2000]
        session.last_error_at = timezone.now()
        session.save(update_fields=["fatal", "status", "last_error", "last_error_at", "updated_at"])
        audit_event_record(
            actor=f"system:fix-host:{holder}",
            action="venue.session_fatal",
            object_type="venue",
            object_id=session.venue.code,
            details={"reason": reason, "fencing_token": token},
        )
    logger.error("FIX session %s: FATAL, not reconnecting until an operator does: %s", session.venue.code, reason)


SEQUENCE_ACTIONS = frozenset({VenueSession.Action.SET_SEQUENCE, VenueSession.Action.RESET_SEQUENCE})
SESSION_ACTIONS = frozenset({VenueSession.Action.DISCONNECT, VenueSession.Action.RECONNECT, *SEQUENCE_ACTIONS})


def session_action_request(
    *,
    venue: Venue,
    action: str,
    actor: str,
    reason: str,
    sender_seq: int | None = None,
    target_seq: int | None = None,
    reconnect: bool = False,
) -> VenueSession:
    """An operator's request (admin), with the reason, audited with who and why in the
    same transaction: the worker holding the session carries it out, because only it
    holds the socket.

    - ``disconnect``: log out and stay down until a reconnect;
    - ``reconnect``: log out if connected and log on again; clears a fatal stop and a
      disconnect, so a new holder connects even if the old one is gone;
    - ``reset``: both sequence numbers back to 1 in new generations (a FIX sequence
      reset; a running session logs out first), e.g. after the venue lost its state;
    - ``set_sequence``: the next sender and/or target number as given.

    ``reconnect=True`` with a sequence change also clears a fatal stop or a
    disconnect, so the session logs on with the new numbers. There is one request slot
    per session: a new request replaces a pending one, except that a reconnect filed
    while a sequence change waits keeps it (the numbers change, then the session logs
    on), so "reset, then reconnect" never loses the reset."""
    reason = (reason or "").strip()
    if action not in SESSION_ACTIONS:
        raise InvalidInput(f"Unknown session action {action!r}.", details={"action": [action]})
    if not reason:
        raise InvalidInput("Give the reason for the request.", details={"reason": ["This field is required."]})
    if action == VenueSession.Action.SET_SEQUENCE:
        if not (sender_seq or target_seq):
            raise InvalidInput(
                "Give the next sender and/or target sequence number.",
                details={"non_field_errors": ["Give a next sender and/or target sequence number of at least 1."]},
            )
        if any(seq is not None and seq < 1 for seq in (sender_seq, target_seq)):
            raise InvalidInput("Sequence numbers start at 1.", details={"non_field_errors": ["Must be at least 1."]})
    venue_session_ensure(venue_id=venue.pk)
    with transaction.atomic():
        session = VenueSession.objects.select_for_update().get(venue=venue)
        before = _session_snapshot(session)
        keeps_pending = action == VenueSession.Action.RECONNECT and session.requested_action in SEQUENCE_ACTIONS
        if not keeps_pending:
            session.requested_action = action
            session.requested_sender_seq = sender_seq if action == VenueSession.Action.SET_SEQUENCE else None
            session.requested_target_seq = target_seq if action == VenueSession.Action.SET_SEQUENCE else None
            session.requested_by = actor
            session.requested_at = timezone.now()
            session.requested_reason = reason
        if action == VenueSession.Action.RECONNECT or (action in SEQUENCE_ACTIONS and reconnect):
            session.fatal = False
            session.stopped = False
        elif action == VenueSession.Action.DISCONNECT:
            session.stopped = True
        session.save()
        details: dict[str, Any] = {"reason": reason, "error": before["last_error"]}
        if action in SEQUENCE_ACTIONS:
            details["reconnect"] = reconnect
        if action == VenueSession.Action.SET_SEQUENCE:
            details.update(sender_seq=sender_seq, target_seq=target_seq)
        if keeps_pending:
            details["kept_pending"] = before["requested_action"]
        elif before["requested_action"]:
            details["replaced_pending"] = before["requested_action"]
        audit_event_record(
            actor=actor,
            action=f"venue.session_{action}_requested",
            object_type="venue",
            object_id=venue.code,
            before=before,
            after=_session_snapshot(session),
            details=details,
        )
    logger.info("FIX %s: %s requested by %s: %s", venue.code, action, actor, reason)
    return session


def session_error_clear(*, venue_id: int, holder: str, token: int) -> bool:
    """The session logged on: it is healthy again, so the error shown on it (and a
    fatal mark) is cleared. The error stays on record: the audit event
    "venue.session_recovered" keeps its text and time, in the same transaction.
    Returns whether there was anything to clear."""
    with transaction.atomic():
        session = _fenced(venue_id=venue_id, holder=holder, token=token).select_for_update().first()
        if session is None:
            raise LeaseLost(f"venue {venue_id}: lease lost by {holder}")
        if not (session.last_error or session.last_error_at or session.fatal):
            return False
        code = Venue.objects.filter(pk=venue_id).values_list("code", flat=True).get()
        audit_event_record(
            actor=f"system:fix-host:{holder}",
            action="venue.session_recovered",
            object_type="venue",
            object_id=code,
            details={
                "cleared_error": session.last_error,
                "error_at": session.last_error_at,
                "was_fatal": session.fatal,
                "fencing_token": token,
            },
        )
        session.last_error, session.last_error_at, session.fatal = "", None, False
        session.save(update_fields=["last_error", "last_error_at", "fatal", "updated_at"])
    logger.info("FIX %s: logged on; the session's error is cleared", code)
    return True


def session_action_pending(*, venue_id: int, holder: str, token: int) -> VenueSession | None:
    """The pending operator request (if any), for the holder to carry out.

    The request stays pending until ``session_action_done``: an operator who sees it
    cleared sees it carried out, and a holder that dies half-way leaves it for the next.
    """
    session = _fenced(venue_id=venue_id, holder=holder, token=token).first()
    if session is None:
        raise LeaseLost(f"venue {venue_id}: lease lost by {holder}")
    return session if session.requested_action else None


def session_action_done(*, venue_id: int, holder: str, token: int, taken: VenueSession) -> None:
    """Clear the request the holder carried out, unless the operator has filed another since."""
    with transaction.atomic():
        session = _fenced(venue_id=venue_id, holder=holder, token=token).select_for_update().first()
        if session is None:
            raise LeaseLost(f"venue {venue_id}: lease lost by {holder}")
        if (session.requested_action, session.requested_at) != (taken.requested_action, taken.requested_at):
            return
        session.requested_action = ""
        session.requested_sender_seq = None
        session.requested_target_seq = None
        session.save(update_fields=["requested_action", "requested_sender_seq", "requested_target_seq", "updated_at"])


def _session_snapshot(session: VenueSession) -> dict[str, Any]:
    return {
        "status": session.status,
        "next_sender_seq": session.next_sender_seq,
        "next_target_seq": session.next_target_seq,
        "holder": session.holder,
        "fatal": session.fatal,
        "stopped": session.stopped,
        "requested_action": session.requested_action,
        "requested_sender_seq": session.requested_sender_seq,
        "requested_target_seq": session.requested_target_seq,
        "last_error": session.last_error,
    }


def session_reject_record(*, venue_id: int, msg_type: str, fields: list[tuple[int, str]]) -> int | None:
    """A session Reject (3) or BusinessMessageReject (j) of something we sent: audit it,
    naming the outbound message (and so the order) its RefSeqNum (45) points at.
    Returns that order's id, if any."""
    tags = {int(tag): str(value) for tag, value in fields}
    venue = Venue.objects.get(pk=venue_id)
    ref_seq = tags.get(45, "")
    ref = None
    if ref_seq.isdigit():
        ref = (
            OutboundMessage.objects.filter(venue_id=venue_id, msg_seq_num=int(ref_seq), state="sent")
            .order_by("-sent_at", "-id")
            .first()
        )
    details = {
        "msg_type": msg_type,
        "ref_seq_num": ref_seq,
        "ref_msg_type": tags.get(372, ""),
        "ref_tag": tags.get(371, ""),
        "reason": tags.get(373 if msg_type == "3" else 380, ""),
        "text": tags.get(58, ""),
        "outbound_message_id": ref.pk if ref else None,
        "order_id": ref.order_id if ref else None,
        "cl_ord_id": ref.cl_ord_id if ref else None,
    }
    logger.error("FIX %s rejected our message %s: %s", venue.code, ref_seq, details)
    audit_event_record(
        actor=f"venue:{venue.code}",
        action="venue.session_reject" if msg_type == "3" else "venue.business_reject",
        object_type="order" if ref else "venue",
        object_id=ref.order_id if ref else venue.code,
        details=details,
    )
    return ref.order_id if ref else None


# ----------------------------------------------------------------------------- inbox
def inbox_messages_mark_applied(*, outcomes: Mapping[int, str]) -> None:
    """Messages (id -> outcome) marked applied inside the caller's transaction, together
    with their effects: one UPDATE per distinct outcome."""
    by_outcome: dict[str, list[int]] = {}
    for message_id, outcome in outcomes.items():
        by_outcome.setdefault(outcome[:20], []).append(message_id)
    now = timezone.now()
    for outcome, message_ids in by_outcome.items():
        InboundMessage.objects.filter(pk__in=message_ids).update(applied_at=now, outcome=outcome, error="")


def inbox_mark_failed(*, message: InboundMessage, error: str) -> None:
    """The message could not be applied: kept, with the reason, for review; the ones
    after it still apply."""
    InboundMessage.objects.filter(pk=message.pk).update(outcome="failed", error=error[:4000] or "failed")


def inbox_retry(*, message_id: int, actor: str) -> None:
    """An operator sends a failed inbox message back to be applied again."""
    with transaction.atomic():
        message = InboundMessage.objects.select_for_update().select_related("venue").get(pk=message_id)
        if message.applied_at is not None or not message.error:
            return
        audit_event_record(
            actor=actor,
            action="venue.inbox_retry",
            object_type="venue",
            object_id=message.venue.code,
            details={"inbound_message_id": message.pk, "msg_seq_num": message.msg_seq_num, "error": message.error},
        )
        InboundMessage.objects.filter(pk=message.pk).update(error="", outcome="")


def venue_lock_for_inbox(*, venue_id: int, wait: bool = True) -> bool:
    """Serialise applying a venue's inbox (MsgSeqNum order) across workers, for the rest
    of the caller's transaction. An advisory lock, not the session row: the FIX session
    keeps writing that row while reports are applied. With ``wait=False`` it does not
    queue: False when another transaction holds it (a worker applying the inbox now)."""
    if connection.vendor != "postgresql":
        return True
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [INBOX_LOCK_CLASS, venue_id])
        return wait or bool(cursor.fetchone()[0])


INBOX_LOCK_CLASS = 0x0F1C  # advisory lock namespace of the inbox


# ---------------------------------------------------------------- venue configuration
VENUE_CONFIG_FIELDS = (
    "host",
    "port",
    "sender_comp_id",
    "target_comp_id",
    "fix_version",
    "heartbeat_interval",
    "reset_on_logon",
    "reset_on_logout",
    "reset_on_disconnect",
    "session_start",
    "session_end",
    "session_time_zone",
    "trading_days",
    "enabled",
)


def venue_save(
    *, code: str, values: Mapping[str, Any], actor: str, via: str, new_defaults: Mapping[str, Any] | None = None
) -> tuple[Venue, bool]:
    """Create the venue ``code`` or change the given fields of it; returns (venue,
    created). The write path for venues outside the admin (``configure_venue``,
    ``seed_demo``): locked, validated, audited as "venue.created" / "venue.changed" with
    the same snapshots as an edit in the admin, ``via`` saying where it came from.
    Changing nothing writes nothing."""
    return reference_save(
        model=Venue, key_field="code", key=code, values=values, new_defaults=new_defaults, actor=actor, via=via
    )


def venue_configure(*, code: str, actor: str, always_open: bool = False, **values: Any) -> tuple[Venue, bool]:
    """Create or update a venue's connection settings (the ``configure_venue``
    command): only the settings given (not None) change, and ``always_open`` clears the
    session schedule; a new venue needs its address and CompIDs and is named by its
    code."""
    unknown = set(values) - set(VENUE_CONFIG_FIELDS)
    if unknown:
        raise ValueError(f"unknown venue settings: {', '.join(sorted(unknown))}")
    given = {field: value for field, value in values.items() if value is not None}
    if always_open:
        given.update(session_start=None, session_end=None)
    with transaction.atomic():
        if not Venue.objects.select_for_update().filter(code=code).exists():
            missing = [f for f in ("host", "port", "sender_comp_id", "target_comp_id") if f not in given]
            if missing:
                raise ValidationError({f: ["required for a new venue"] for f in missing})
        return venue_save(code=code, values=given, new_defaults={"name": code}, actor=actor, via="command")


def outbox_message_stamp(*, venue_id: int, holder: str, token: int, message_id: int, prepare) -> bytes | None:
    """Claim one outbox message for sending, in ONE transaction: check the lease (row
    lock on the session), stamp MsgSeqNum and store the message (``prepare``, the FIX
    session's ``prepare_app``), mark the outbox row sent with its number. Returns the
    bytes to write after the commit, or None if the message was withdrawn meanwhile.

    A crash after this commit and before the write is healed by FIX itself: the venue
    sees the gap and asks for a resend, answered from the store with PossDupFlag=Y.
    Not so on a venue that resets sequence numbers at every logon: there is no gap to
    see, and only the reconciliation after logon (OrderStatusRequest) finds the order
    unknown to the venue."""
    with transaction.atomic():
        session_lease_check(venue_id=venue_id, holder=holder, token=token)
        message = (
            OutboundMessage.objects.select_for_update()
            .filter(pk=message_id, venue_id=venue_id, state=OutboundMessage.State.PENDING)
            .first()
        )
        if message is None:
            return None
        seq, raw = prepare(message.msg_type, [(int(tag), str(value)) for tag, value in message.fields])
        message.state = OutboundMessage.State.SENT
        message.msg_seq_num = seq
        message.sent_at = timezone.now()
        message.save(update_fields=["state", "msg_seq_num", "sent_at"])
        return raw


def fix_messages_log_inbound(*, venue_id: int, epoch: int, frames: list[tuple[int | None, str, bytes]]) -> None:
    """Keep every raw inbound message (admin ones too) for operations and the audit:
    one COPY per received chunk."""
    rows_insert(
        FixMessageLog,
        [
            FixMessageLog(
                venue_id=venue_id,
                direction=FixMessageLog.Direction.IN,
                epoch=epoch,
                msg_seq_num=seq,
                msg_type=msg_type,
                raw=raw.decode("latin-1"),
            )
            for seq, msg_type, raw in frames
        ],
        ids=False,
    )


def fix_message_log_resend(*, venue_id: int, epoch: int, seq: int | None, msg_type: str, raw: bytes) -> None:
    """A PossDup resend or gap fill we wrote (not part of the message store)."""
    FixMessageLog.objects.create(
        venue_id=venue_id,
        direction=FixMessageLog.Direction.OUT,
        epoch=epoch,
        msg_seq_num=seq,
        msg_type=msg_type,
        raw=raw.decode("latin-1"),
        poss_dup=True,
    )
