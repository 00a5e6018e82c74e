from __future__ import annotations

from collections.abc import Iterable

from .models import OutboundMessage, Venue


def outbox_message_enqueue(
    *, venue: Venue, order_id: int, cl_ord_id: str, msg_type: str, fields: Iterable[tuple[int, str]]
) -> OutboundMessage:
    """Queue an application message for the venue's session; call inside the order's
    transaction so the message exists exactly when the order change committed."""
    return OutboundMessage.objects.create(
        venue=venue,
        order_id=order_id,
        cl_ord_id=cl_ord_id,
        msg_type=msg_type,
        fields=[[tag, value] for tag, value in fields],
    )


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
