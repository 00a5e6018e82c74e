"""The venue's inbox: stored inbound messages applied in the order the venue sent
them, one worker per venue at a time; and reconciliation after a logon (a status
request for every order still working there)."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from audit.services import audit_event_record
from oms_site.errors import InvalidInput
from routing import selectors as routing_selectors
from routing import services as routing_services
from routing.fix import codec
from routing.models import Venue

from ..models import LIVE_STATUSES, Order, OrderFlag
from .execution_reports import execution_report_apply, order_flag, order_id_for_report

logger = logging.getLogger(__name__)

INBOX_BATCH = 100


def inbox_apply(*, venue_code: str, batch_size: int = INBOX_BATCH) -> int:
    """Apply the venue's inbox: every stored, not yet applied inbound message, in the
    order the venue sent it (MsgSeqNum within its sequence generation).

    Workers are serialised per venue (an advisory lock held for the batch), so
    whichever task gets the lock applies everything and the others find nothing left.
    Each message is marked applied in the same transaction as its effect; one that
    fails is marked with its error and flagged (never lost) and the rest go on.
    Batches of ``batch_size`` messages commit one by one. Returns how many messages
    were taken (applied or failed)."""
    venue = Venue.objects.filter(code=venue_code).first()
    if venue is None:
        raise InvalidInput("Unknown venue.", details={"venue": [venue_code]})
    taken = 0
    while True:
        with transaction.atomic():
            routing_services.venue_lock_for_inbox(venue_id=venue.pk)
            messages = routing_selectors.inbox_unapplied(venue_id=venue.pk, limit=batch_size)
            for message in messages:
                _inbox_message_apply(venue, message)
        taken += len(messages)
        if len(messages) < batch_size:
            return taken


def _inbox_message_apply(venue: Venue, message) -> None:
    tags = codec.tags_from_fields(message.fields)
    order_id = None
    try:
        with transaction.atomic():  # a savepoint: a failure undoes this message only
            if message.msg_type in ("8", "9"):
                result = execution_report_apply(venue_code=venue.code, message=tags, received_at=message.received_at)
                outcome, order_id = result.outcome, result.order_id
            elif message.msg_type == "j":
                outcome = _business_reject_apply(venue, message)
            else:
                outcome = "ignored"
            routing_services.inbox_mark_applied(message=message, outcome=outcome)
    except (OperationalError, InterfaceError):
        raise  # transient: the task retries the whole batch
    except Exception as exc:
        logger.exception("inbox %s #%s/%s could not be applied", venue.code, message.epoch, message.msg_seq_num)
        error = getattr(exc, "message", None) or repr(exc)
        routing_services.inbox_mark_failed(message=message, error=str(error))
        order_id = order_id_for_report(venue, tags) if message.msg_type in ("8", "9") else None
        order_flag(
            Order.objects.filter(pk=order_id).first() if order_id else None,
            venue=venue,
            kind=OrderFlag.Kind.UNEXPECTED_MESSAGE,
            message=f"Inbound message {message.msg_seq_num} ({message.msg_type}) could not be applied: {error}",
            details={"inbound_message_id": message.pk, "epoch": message.epoch, "msg_seq_num": message.msg_seq_num},
        )
        outcome = "failed"
    # The raw message, against its order, in the batch's transaction (kept when the
    # apply failed and its savepoint rolled back).
    audit_event_record(
        actor=f"venue:{venue.code}",
        action="fix.received",
        object_type="order" if order_id else "fix_session",
        object_id=order_id or venue.code,
        details={
            "venue": venue.code,
            "epoch": message.epoch,
            "seq": message.msg_seq_num,
            "msg_type": message.msg_type,
            "message": message.raw.replace("\x01", "|"),
            "inbound_message_id": message.pk,
            "outcome": outcome,
        },
    )


def _business_reject_apply(venue: Venue, message) -> str:
    """BusinessMessageReject (j): audited against the message (and order) it names;
    the order is flagged for a person to look at, not changed."""
    order_id = routing_services.session_reject_record(venue_id=venue.pk, msg_type="j", fields=message.fields)
    order = Order.objects.filter(pk=order_id).first() if order_id else None
    if order is not None:
        tags = codec.tags_from_fields(message.fields)
        order_flag(
            order,
            venue=venue,
            kind=OrderFlag.Kind.UNEXPECTED_MESSAGE,
            message=f"Venue rejected our {tags.get(372, '?')} message: {tags.get(58, '') or tags.get(380, '')}",
            details={"ref_seq_num": tags.get(45, ""), "business_reject_reason": tags.get(380, "")},
        )
    return "recorded"


def venue_reconcile(*, venue_code: str) -> list[int]:
    """After a logon: queue an OrderStatusRequest (35=H) for every order still working
    (or awaiting an answer) at the venue, so whatever happened while we were away comes
    back as ExecutionReports (ExecType I) through the inbox. Orders whose message is
    still in the outbox are skipped: that message goes out first anyway. Returns the
    ids of the orders asked about."""
    venue = Venue.objects.filter(code=venue_code).first()
    if venue is None:
        raise InvalidInput("Unknown venue.", details={"venue": [venue_code]})
    stamp = timezone.now().strftime("%Y%m%d%H%M%S%f")
    with transaction.atomic():
        queued = routing_selectors.outbox_pending_order_ids(venue_id=venue.pk)
        orders = (
            Order.objects.filter(venue=venue, status__in=LIVE_STATUSES)
            .exclude(pk__in=queued)
            .select_related("security")
            .order_by("id")
        )
        asked: list[int] = []
        for order in orders:
            cl_ord_id = order.cl_ord_id or order.client_order_id
            status_req_id = f"S{order.pk}-{stamp}"
            routing_services.outbox_message_enqueue(
                venue=venue,
                order_id=order.pk,
                # The status request's own id: the order's ClOrdID stays free for
                # outbox_message_withdraw, which looks for an unsent NewOrderSingle.
                cl_ord_id=status_req_id,
                msg_type=codec.MSG_ORDER_STATUS_REQUEST,
                fields=codec.order_status_request(
                    cl_ord_id=cl_ord_id,
                    venue_order_id=order.venue_order_id,
                    status_req_id=status_req_id,
                    symbol=order.security.symbol,
                    side=order.side,
                ),
            )
            asked.append(order.pk)
        audit_event_record(
            actor=f"system:reconcile:{venue.code}",
            action="venue.reconcile_requested",
            object_type="venue",
            object_id=venue.code,
            details={"order_ids": asked},
        )
    return asked
