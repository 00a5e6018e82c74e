"""The venue simulator's order book: what it knows of each order (``SimOrder``, its
``Fill``s and a cancel/replace request it has acknowledged but not yet done), the checks
of a request's fields (``Rejected`` with the OrdRejReason), and how an order is written to
and read back from the simulator's store (``order_record``, ``order_from_record``: plain
JSON values, prices as decimal strings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

# OrdStatus (39)
OS_NEW, OS_PARTIAL, OS_FILLED, OS_CANCELED = "0", "1", "2", "4"
OS_PENDING_CANCEL, OS_REJECTED, OS_PENDING_REPLACE = "6", "8", "E"
# OrdRejReason (103) of the field checks
ORD_REJ_INCORRECT_QUANTITY = 13
ORD_REJ_OTHER = 99
AVG_PX_PLACES = Decimal("1e-8")

STATUS_NAMES = {
    OS_NEW: "new",
    OS_PARTIAL: "partially filled",
    OS_FILLED: "filled",
    OS_CANCELED: "canceled",
    OS_PENDING_CANCEL: "pending cancel",
    OS_REJECTED: "rejected",
    OS_PENDING_REPLACE: "pending replace",
}


@dataclass
class Fill:
    exec_id: str
    quantity: int
    price: Decimal
    cl_ord_id: str
    busted: bool = False


@dataclass
class PendingRequest:
    kind: str  # "F" cancel or "G" cancel/replace
    cl_ord_id: str
    orig_cl_ord_id: str
    order_qty: int | None = None
    price: Decimal | None = None
    ord_type: str | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None


@dataclass
class SimOrder:
    """One order as the venue sees it; quantities are cumulative over all versions."""

    order_id: str
    session_key: tuple[str, str]
    cl_ord_id: str
    orig_cl_ord_id: str | None
    account: str | None
    symbol: str
    side: str
    ord_type: str
    order_qty: int
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: str | None
    currency: str | None
    fills: list[Fill] = field(default_factory=list)
    canceled: bool = False
    rejected: bool = False
    reject_reason: str = ""
    # A cancel/replace request acknowledged (Pending Cancel/Replace) but not yet done.
    pending: PendingRequest | None = None
    fill_parts_remaining: int = 0
    fill_timer: int = 0  # token of the scheduled fill chain; a new chain voids older ones
    cl_ord_ids: list[str] = field(default_factory=list)  # every ClOrdID of this order, oldest first
    # The ClOrdIDs of the cancel/replace requests accepted (used, whether or not they
    # took effect): a later request or order reusing one is a duplicate.
    request_ids: list[str] = field(default_factory=list)
    requests: list[tuple[str, list[tuple[int, str]]]] = field(default_factory=list)

    @property
    def cum_qty(self) -> int:
        return sum(f.quantity for f in self.fills if not f.busted)

    @property
    def avg_px(self) -> Decimal:
        """Exact quantity-weighted average of the fills in effect (8 places)."""
        live = [f for f in self.fills if not f.busted]
        quantity = sum(f.quantity for f in live)
        if quantity == 0:
            return Decimal(0)
        notional = sum((f.price * f.quantity for f in live), Decimal(0))
        return (notional / quantity).quantize(AVG_PX_PLACES, rounding=ROUND_HALF_EVEN).normalize()

    @property
    def is_done(self) -> bool:
        """No further executions expected: canceled, rejected or filled."""
        return self.canceled or self.rejected or self.cum_qty >= self.order_qty

    @property
    def leaves_qty(self) -> int:
        if self.canceled or self.rejected:
            return 0
        return max(self.order_qty - self.cum_qty, 0)

    @property
    def base_status(self) -> str:
        """OrdStatus without the pending states: Filled > Canceled > Partially Filled > New."""
        if self.rejected:
            return OS_REJECTED
        if self.cum_qty >= self.order_qty:
            return OS_FILLED
        if self.canceled:
            return OS_CANCELED
        return OS_PARTIAL if self.cum_qty > 0 else OS_NEW

    @property
    def status(self) -> str:
        """OrdStatus to report: Pending Cancel > Pending Replace > the rest (FIX 4.4 precedence)."""
        if self.pending is not None:
            return OS_PENDING_CANCEL if self.pending.kind == "F" else OS_PENDING_REPLACE
        return self.base_status

    @property
    def used_cl_ord_ids(self) -> set[str]:
        """Every ClOrdID this order consumed: its versions and the requests accepted."""
        return {*self.cl_ord_ids, *self.request_ids}


class Rejected(Exception):
    """A request refused with an application-level answer (OrdRejReason or CxlRejReason)."""

    def __init__(self, reason: int, text: str):
        super().__init__(text)
        self.reason = reason
        self.text = text


def positive_int(text: str | None, name: str) -> int:
    if text is None or not text.isdigit() or int(text) <= 0:
        raise Rejected(ORD_REJ_INCORRECT_QUANTITY, f"{name} must be a positive whole number, got {text!r}")
    return int(text)


def positive_price(text: str | None, name: str) -> Decimal:
    try:
        value = Decimal(text) if text is not None else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0:
        raise Rejected(ORD_REJ_OTHER, f"{name} must be a positive price, got {text!r}")
    return value


# ------------------------------------------------------------------ persistence
def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def order_record(order: SimOrder) -> dict[str, Any]:
    """The order as JSON values (the fill timer is not kept: a restart rearranges fills)."""
    pending = order.pending
    return {
        "order_id": order.order_id,
        "session_key": list(order.session_key),
        "cl_ord_id": order.cl_ord_id,
        "orig_cl_ord_id": order.orig_cl_ord_id,
        "account": order.account,
        "symbol": order.symbol,
        "side": order.side,
        "ord_type": order.ord_type,
        "order_qty": order.order_qty,
        "price": _text(order.price),
        "stop_price": _text(order.stop_price),
        "time_in_force": order.time_in_force,
        "currency": order.currency,
        "fills": [[f.exec_id, f.quantity, str(f.price), f.cl_ord_id, f.busted] for f in order.fills],
        "canceled": order.canceled,
        "rejected": order.rejected,
        "reject_reason": order.reject_reason,
        "pending": None
        if pending is None
        else {
            "kind": pending.kind,
            "cl_ord_id": pending.cl_ord_id,
            "orig_cl_ord_id": pending.orig_cl_ord_id,
            "order_qty": pending.order_qty,
            "price": _text(pending.price),
            "ord_type": pending.ord_type,
            "stop_price": _text(pending.stop_price),
            "time_in_force": pending.time_in_force,
        },
        "fill_parts_remaining": order.fill_parts_remaining,
        "cl_ord_ids": list(order.cl_ord_ids),
        "request_ids": list(order.request_ids),
        "requests": [[kind, [list(pair) for pair in tags]] for kind, tags in order.requests],
    }


def order_from_record(record: dict[str, Any]) -> SimOrder:
    """The order ``order_record`` wrote (raises KeyError/ValueError on a malformed one)."""
    pending = record["pending"]
    our_id, their_id = record["session_key"]
    return SimOrder(
        order_id=record["order_id"],
        session_key=(our_id, their_id),
        cl_ord_id=record["cl_ord_id"],
        orig_cl_ord_id=record["orig_cl_ord_id"],
        account=record["account"],
        symbol=record["symbol"],
        side=record["side"],
        ord_type=record["ord_type"],
        order_qty=int(record["order_qty"]),
        price=_decimal(record["price"]),
        stop_price=_decimal(record["stop_price"]),
        time_in_force=record["time_in_force"],
        currency=record["currency"],
        fills=[
            Fill(exec_id, int(quantity), Decimal(price), cl_ord_id, bool(busted))
            for exec_id, quantity, price, cl_ord_id, busted in record["fills"]
        ],
        canceled=bool(record["canceled"]),
        rejected=bool(record["rejected"]),
        reject_reason=record["reject_reason"],
        pending=None
        if pending is None
        else PendingRequest(
            kind=pending["kind"],
            cl_ord_id=pending["cl_ord_id"],
            orig_cl_ord_id=pending["orig_cl_ord_id"],
            order_qty=pending["order_qty"],
            price=_decimal(pending["price"]),
            ord_type=pending["ord_type"],
            stop_price=_decimal(pending["stop_price"]),
            time_in_force=pending["time_in_force"],
        ),
        fill_parts_remaining=int(record["fill_parts_remaining"]),
        cl_ord_ids=list(record["cl_ord_ids"]),
        request_ids=list(record["request_ids"]),
        requests=[(kind, [(int(tag), value) for tag, value in tags]) for kind, tags in record["requests"]],
    )


__all__ = [
    "STATUS_NAMES",
    "Fill",
    "PendingRequest",
    "Rejected",
    "SimOrder",
    "positive_int",
    "positive_price",
    "order_from_record",
    "order_record",
]
