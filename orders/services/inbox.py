"""The venue's inbox: stored inbound messages applied in the order the venue sent
them, one worker per venue at a time; and reconciliation after a logon (a status
request for every order still working there)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from audit.services import audit_event_record
from oms_site.errors import InvalidInput
from routing import selectors as routing_selectors
from routing import services as routing_services
from routing.fix import codec
from routing.models import Venue

from ..models import LIVE_STATUSES, Order, OrderFlag
from .allocations import allocation_ack_apply
from .execution_reports import ReportBatch, execution_report_apply, order_flag, order_id_for_report, report_validate
from .report_batch import Report

logger = logging.getLogger(__name__)

INBOX_BATCH = 500
# An applying transaction stays open about this long at most (DESIGN §4.4): each
# batch takes as many messages as the last one's pace says fit, and stops applying
# once half of it is spent, leaving the rest for the writes.
INBOX_TIME_BUDGET = 0.2
INBOX_BATCH_MIN = 10


def inbox_apply(
    *, venue_code: str, batch_size: int = INBOX_BATCH, time_budget: float = INBOX_TIME_BUDGET, wait: bool = True
) -> int:
    """Apply the venue's inbox: every stored, not yet applied inbound message, in the
    order the venue sent it (MsgSeqNum within its sequence generation).

    Workers are serialised per venue (an advisory lock held for the batch), so
    whichever task gets the lock applies everything and the others find nothing left.
    A batch (at most ``batch_size`` messages, ``time_budget`` seconds of work) is
    applied set-based in one transaction, the messages marked applied with their
    effects. A message that cannot be applied is marked with its error and flagged
    (never lost) and the rest go on; if the batch fails anyway it is applied again
    message by message, so one bad message never blocks the rest. Returns how many
    messages were taken (applied or failed).

    With ``wait=False`` (the task) a worker does not queue behind the one applying: it
    returns when the venue's lock is taken. Nothing is left behind: the holder, after
    the commit that releases the lock, looks for unapplied messages once more (outside
    the lock) and goes on if there are any, so a message stored after the holder's
    last read, whose worker found the lock taken, is applied by the holder."""
    venue = Venue.objects.filter(code=venue_code).first()
    if venue is None:
        raise InvalidInput("Unknown venue.", details={"venue": [venue_code]})
    taken = 0
    limit = batch_size
    while True:
        started = time.monotonic()
        with transaction.atomic():
            if not routing_services.venue_lock_for_inbox(venue_id=venue.pk, wait=wait):
                return taken  # the holder applies what is there (its re-check below)
            messages = routing_selectors.inbox_unapplied(venue_id=venue.pk, limit=limit)
            try:
                with transaction.atomic():
                    done = _inbox_batch_apply(venue, messages, time_budget=time_budget / 2)
            except (OperationalError, InterfaceError):
                raise  # transient: the task retries
            except Exception:
                logger.exception(
                    "inbox %s: a batch of %d failed; applying it message by message", venue.code, len(messages)
                )
                for message in messages:
                    _inbox_message_apply(venue, message)
                done = len(messages)
        taken += done
        if (
            done == len(messages)
            and len(messages) < limit
            and not routing_selectors.inbox_has_unapplied(venue_id=venue.pk)
        ):
            return taken
        # The next batch: as many messages as this one's pace fits in the budget.
        pace = (time.monotonic() - started) / max(done, 1)
        limit = max(INBOX_BATCH_MIN, min(batch_size, int(time_budget / pace)))


def _inbox_batch_apply(venue: Venue, messages: list, *, time_budget: float) -> int:
    """Apply messages in order, set-based; returns how many were taken (all of them,
    or fewer once ``time_budget`` seconds of applying, counted from when the batch's
    orders are locked and loaded, have passed)."""
    reports: dict[int, Report | InvalidInput] = {}
    for message in messages:
        if message.msg_type in ("8", "9"):
            try:
                reports[message.pk] = report_validate(codec.tags_from_fields(message.fields), message.received_at)
            except InvalidInput as exc:
                reports[message.pk] = exc
    batch = ReportBatch(venue, [r for r in reports.values() if isinstance(r, Report)])
    deadline = time.monotonic() + time_budget
    outcomes: dict[int, str] = {}
    failures: list[tuple[Any, str]] = []
    taken = 0
    for message in messages:
        if taken and time.monotonic() > deadline:
            break
        taken += 1
        order_id = None
        report = reports.get(message.pk)
        try:
            if isinstance(report, InvalidInput):
                raise report
            if report is not None:
                result = batch.apply(report)
                outcome, order_id = result.outcome, result.order_id
            elif message.msg_type == "j":
                batch.flush()  # what came before is written first, as one by one
                outcome = _business_reject_apply(venue, message, batch)
            elif message.msg_type == codec.MSG_ALLOCATION_INSTRUCTION_ACK:
                batch.flush()  # what came before is written first, as one by one
                outcome, order_id = allocation_ack_apply(
                    venue=venue, tags=codec.tags_from_fields(message.fields), received_at=message.received_at
                )
            else:
                outcome = "ignored"
            outcomes[message.pk] = outcome
        except InvalidInput as exc:
            if batch.spoiled:
                raise  # not undoable in memory: the batch goes message by message
            logger.warning(
                "inbox %s #%s/%s could not be applied: %s", venue.code, message.epoch, message.msg_seq_num, exc
            )
            tags = codec.tags_from_fields(message.fields)
            order_id = batch.order_id_for(tags) or (
                order_id_for_report(venue, tags) if message.msg_type in ("8", "9") else None
            )
            batch.flag(
                batch.order_locked(order_id) if order_id else None,
                **_failure_flag(message, exc.message),
            )
            failures.append((message, exc.message))
            outcome = "failed"
        batch.event(**_received_event(venue, message, order_id=order_id, outcome=outcome))
    batch.flush()
    routing_services.inbox_messages_mark_applied(outcomes=outcomes)
    for message, error in failures:
        routing_services.inbox_mark_failed(message=message, error=error)
    return taken


def _failure_flag(message, error: str) -> dict[str, Any]:
    return {
        "kind": OrderFlag.Kind.UNEXPECTED_MESSAGE,
        "message": f"Inbound message {message.msg_seq_num} ({message.msg_type}) could not be applied: {error}",
        "details": {"inbound_message_id": message.pk, "epoch": message.epoch, "msg_seq_num": message.msg_seq_num},
    }


def _received_event(venue: Venue, message, *, order_id: int | None, outcome: str) -> dict[str, Any]:
    """The raw message as received, against its order, in the applying transaction."""
    return {
        "actor": f"venue:{venue.code}",
        "action": "fix.received",
        "object_type": "order" if order_id else "fix_session",
        "object_id": order_id or venue.code,
        "details": {
            "venue": venue.code,
            "epoch": message.epoch,
            "seq": message.msg_seq_num,
            "msg_type": message.msg_type,
            "message": message.raw.replace("\x01", "|"),
            "inbound_message_id": message.pk,
            "outcome": outcome,
        },
    }


def _inbox_message_apply(venue: Venue, message) -> None:
    """One message alone, in a savepoint (after a batch failed): a failure undoes this
    message only."""
    tags = codec.tags_from_fields(message.fields)
    order_id = None
    try:
        with transaction.atomic():
            if message.msg_type in ("8", "9"):
                result = execution_report_apply(venue_code=venue.code, message=tags, received_at=message.received_at)
                outcome, order_id = result.outcome, result.order_id
            elif message.msg_type == "j":
                outcome = _business_reject_apply(venue, message)
            elif message.msg_type == codec.MSG_ALLOCATION_INSTRUCTION_ACK:
                outcome, order_id = allocation_ack_apply(venue=venue, tags=tags, received_at=message.received_at)
            else:
                outcome = "ignored"
            routing_services.inbox_messages_mark_applied(outcomes={message.pk: outcome})
    except (OperationalError, InterfaceError):
        raise  # transient: the task retries the whole batch
    except Exception as exc:
        logger.exception("inbox %s #%s/%s could not be applied", venue.code, message.epoch, message.msg_seq_num)
        error = str(getattr(exc, "message", None) or repr(exc))
        routing_services.inbox_mark_failed(message=message, error=error)
        order_id = order_id_for_report(venue, tags) if message.msg_type in ("8", "9") else None
        order_flag(
            Order.objects.filter(pk=order_id).first() if order_id else None,
            venue=venue,
            **_failure_flag(message, error),
        )
        outcome = "failed"
    # Kept when the apply failed and its savepoint rolled back.
    audit_event_record(**_received_event(venue, message, order_id=order_id, outcome=outcome))


def _business_reject_apply(venue: Venue, message, batch: ReportBatch | None = None) -> str:
    """BusinessMessageReject (j): audited against the message (and order) it names;
    the order is flagged for a person to look at, not changed. Inside a batch the flag
    goes through the batch, which holds the order and writes it last."""
    order_id = routing_services.session_reject_record(venue_id=venue.pk, msg_type="j", fields=message.fields)
    if not order_id:
        return "recorded"
    tags = codec.tags_from_fields(message.fields)
    flag = {
        "kind": OrderFlag.Kind.UNEXPECTED_MESSAGE,
        "message": f"Venue rejected our {tags.get(372, '?')} message: {tags.get(58, '') or tags.get(380, '')}",
        "details": {"ref_seq_num": tags.get(45, ""), "business_reject_reason": tags.get(380, "")},
    }
    if batch is not None:
        batch.flag(batch.order_locked(order_id), **flag)
    elif (order := Order.objects.filter(pk=order_id).first()) is not None:
        order_flag(order, venue=venue, **flag)
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
