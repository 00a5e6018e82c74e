"""FIX 4.4 application message bodies built from plain order terms.

The outbox stores bodies as ``[[tag, value], ...]``; the session layer adds the header
(BeginString, MsgSeqNum, SenderCompID, TargetCompID, SendingTime) and trailer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from oms_site.errors import InvalidInput

SIDE = {"BUY": "1", "SELL": "2", "SELL_SHORT": "5"}
SIDE_SELL_SHORT_EXEMPT = "6"
ORD_TYPE = {"MARKET": "1", "LIMIT": "2", "STOP": "3", "STOP_LIMIT": "4"}
TIME_IN_FORCE = {"DAY": "0", "GTC": "1", "IOC": "3", "FOK": "4", "GTD": "6"}

MSG_NEW_ORDER_SINGLE = "D"
MSG_ORDER_CANCEL_REQUEST = "F"
MSG_ORDER_CANCEL_REPLACE_REQUEST = "G"
MSG_ORDER_STATUS_REQUEST = "H"
MSG_ALLOCATION_INSTRUCTION = "J"
MSG_ALLOCATION_INSTRUCTION_ACK = "P"
# Names of the MsgTypes an order's trail carries, for people reading it.
MSG_TYPE_NAMES = {
    MSG_NEW_ORDER_SINGLE: "NewOrderSingle",
    MSG_ORDER_CANCEL_REQUEST: "OrderCancelRequest",
    MSG_ORDER_CANCEL_REPLACE_REQUEST: "OrderCancelReplaceRequest",
    MSG_ORDER_STATUS_REQUEST: "OrderStatusRequest",
    MSG_ALLOCATION_INSTRUCTION: "AllocationInstruction",
    MSG_ALLOCATION_INSTRUCTION_ACK: "AllocationInstructionAck",
    "8": "ExecutionReport",
    "9": "OrderCancelReject",
    "j": "BusinessMessageReject",
    "3": "Reject",
}


def utc_timestamp(value: dt.datetime) -> str:
    """UTCTimestamp with milliseconds, the precision every FIX 4.4 engine accepts."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y%m%d-%H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def fix_price(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _order_terms(
    *,
    side: str,
    symbol: str,
    quantity: int,
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    time_in_force: str,
    expire_at: dt.datetime | None,
    short_exempt: bool = False,
) -> list[tuple[int, str]]:
    fields: list[tuple[int, str]] = [
        (21, "1"),  # HandlInst: automated, no broker intervention
        (55, symbol),
        (54, SIDE_SELL_SHORT_EXEMPT if short_exempt and side == "SELL_SHORT" else SIDE[side]),
        (38, str(quantity)),
        (40, ORD_TYPE[order_type]),
    ]
    if order_type in ("LIMIT", "STOP_LIMIT") and limit_price is not None:
        fields.append((44, fix_price(limit_price)))
    if order_type in ("STOP", "STOP_LIMIT") and stop_price is not None:
        fields.append((99, fix_price(stop_price)))
    fields.append((59, TIME_IN_FORCE[time_in_force]))
    if time_in_force == "GTD" and expire_at is not None:
        fields.append((126, utc_timestamp(expire_at)))
    return fields


def new_order_single(
    *,
    cl_ord_id: str,
    account: str,
    currency: str,
    transact_time: dt.datetime,
    **terms,
) -> list[tuple[int, str]]:
    return [(11, cl_ord_id), (1, account), *_order_terms(**terms), (15, currency), (60, utc_timestamp(transact_time))]


def order_cancel_request(
    *,
    cl_ord_id: str,
    orig_cl_ord_id: str,
    venue_order_id: str,
    account: str,
    symbol: str,
    side: str,
    quantity: int,
    transact_time: dt.datetime,
) -> list[tuple[int, str]]:
    fields = [(41, orig_cl_ord_id), (11, cl_ord_id)]
    if venue_order_id:
        fields.append((37, venue_order_id))
    fields += [
        (1, account),
        (55, symbol),
        (54, SIDE[side]),
        (60, utc_timestamp(transact_time)),
        (38, str(quantity)),
    ]
    return fields


def order_cancel_replace_request(
    *,
    cl_ord_id: str,
    orig_cl_ord_id: str,
    venue_order_id: str,
    account: str,
    currency: str,
    transact_time: dt.datetime,
    **terms,
) -> list[tuple[int, str]]:
    fields = [(41, orig_cl_ord_id), (11, cl_ord_id)]
    if venue_order_id:
        fields.append((37, venue_order_id))
    return [*fields, (1, account), *_order_terms(**terms), (15, currency), (60, utc_timestamp(transact_time))]


# AllocTransType (71), AllocType (626), AllocStatus (87), AllocRejCode (88)
ALLOC_TRANS_TYPE = {"NEW": "0", "REPLACE": "1", "CANCEL": "2"}
ALLOC_TYPE = {"CALCULATED": "1", "PRELIMINARY": "2", "READY_TO_BOOK": "5"}
ALLOC_STATUS_ACCEPTED, ALLOC_STATUS_BLOCK_REJECT, ALLOC_STATUS_ACCOUNT_REJECT = "0", "1", "2"
ALLOC_STATUS_RECEIVED, ALLOC_STATUS_INCOMPLETE, ALLOC_STATUS_REJECTED_BY_INTERMEDIARY = "3", "4", "5"
ALLOC_STATUSES = frozenset("0 1 2 3 4 5".split())
ALLOC_REJ_INCORRECT_ALLOCATED_QUANTITY = "8"
ALLOC_NO_ORDERS_EXPLICIT = "1"  # AllocNoOrdersType: the NoOrders group lists the blocks


def allocation_instruction(
    *,
    alloc_id: str,
    trans_type: str,
    alloc_type: str,
    side: str,
    symbol: str,
    quantity: int,
    avg_px: Decimal,
    trade_date: dt.date,
    transact_time: dt.datetime,
    orders: Iterable[tuple[str, str]],
    allocs: Iterable[tuple[str, int]],
    ref_alloc_id: str | None = None,
) -> list[tuple[int, str]]:
    """AllocationInstruction (35=J), fields in FIX 4.4 order: ``trans_type`` NEW,
    REPLACE or CANCEL (REPLACE and CANCEL name the allocation replaced in
    ``ref_alloc_id``), ``alloc_type`` a key of ALLOC_TYPE, ``orders`` the block's
    (ClOrdID, OrderID) pairs (NoOrders 73), ``allocs`` one (account, quantity) per fund
    (NoAllocs 78, AllocAccount first)."""
    orders, allocs = list(orders), list(allocs)
    if trans_type != "NEW" and not ref_alloc_id:
        raise ValueError(f"RefAllocID is required to {trans_type.lower()} an allocation")
    if not allocs:
        raise ValueError("an allocation instruction needs at least one NoAllocs entry")
    fields: list[tuple[int, str]] = [(70, alloc_id), (71, ALLOC_TRANS_TYPE[trans_type]), (626, ALLOC_TYPE[alloc_type])]
    if ref_alloc_id:
        fields.append((72, ref_alloc_id))
    fields.append((857, ALLOC_NO_ORDERS_EXPLICIT if orders else "0"))
    if orders:
        fields.append((73, str(len(orders))))
        for cl_ord_id, order_id in orders:
            fields.append((11, cl_ord_id))
            if order_id:
                fields.append((37, order_id))
    fields += [
        (54, SIDE[side]),
        (55, symbol),
        (53, str(quantity)),
        (6, fix_price(avg_px)),
        (75, trade_date.strftime("%Y%m%d")),
        (60, utc_timestamp(transact_time)),
        (78, str(len(allocs))),
    ]
    for account, alloc_qty in allocs:
        fields += [(79, account), (80, str(alloc_qty))]
    return fields


def allocation_instruction_ack(
    *,
    alloc_id: str,
    status: str,
    transact_time: dt.datetime,
    trade_date: dt.date | str | None = None,
    rej_code: str | None = None,
    text: str = "",
) -> list[tuple[int, str]]:
    """AllocationInstructionAck (35=P), as a broker (the simulator) sends it;
    ``trade_date`` a date or the TradeDate text echoed from the instruction."""
    fields: list[tuple[int, str]] = [(70, alloc_id)]
    if trade_date:
        fields.append((75, trade_date if isinstance(trade_date, str) else trade_date.strftime("%Y%m%d")))
    fields += [(60, utc_timestamp(transact_time)), (87, status)]
    if rej_code is not None:
        fields.append((88, rej_code))
    if text:
        fields.append((58, text[:200]))
    return fields


def groups(
    fields: Iterable[tuple[int, str]], count_tag: int, first_tag: int, member_tags: Iterable[int]
) -> list[dict[int, str]]:
    """The entries of a repeating group: ``count_tag`` then entries, each starting with
    ``first_tag`` (the delimiter) and holding tags of ``member_tags``. InvalidMessage
    when the count does not match the entries or an entry does not start right."""
    members = frozenset(member_tags) | {first_tag}
    entries: list[dict[int, str]] = []
    declared: int | None = None
    inside = False
    for tag, value in fields:
        if tag == count_tag and declared is None:
            if not value.isdigit():
                raise InvalidMessage(6, f"Incorrect data format for value: {tag}={value}", tag)
            declared, inside = int(value), True
            continue
        if not inside:
            continue
        if tag == first_tag:
            entries.append({tag: value})
        elif tag in members and entries and tag not in entries[-1]:
            entries[-1][tag] = value
        elif tag in members:
            raise InvalidMessage(15, f"Repeating group fields out of order: {tag}", tag)
        else:
            inside = False  # the group ended
    if declared is not None and declared != len(entries):
        raise InvalidMessage(16, f"Incorrect NumInGroup count for repeating group: {count_tag}={declared}", count_tag)
    return entries


# ---------------------------------------------------------------- inbound validation
class InvalidMessage(Exception):
    """Fails the FIX 4.4 data dictionary: answered with a session Reject (35=3)."""

    def __init__(self, reason: int, text: str, ref_tag: int | None = None):
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.ref_tag = ref_tag


class UnsupportedMessage(Exception):
    """A valid FIX message type we do not take: answered with BusinessMessageReject."""

    def __init__(self, text: str, reason: int = 3):
        super().__init__(text)
        self.reason = reason  # BusinessRejectReason 3: unsupported message type
        self.text = text


# Every FIX 4.4 MsgType (35); anything else is an invalid MsgType (SessionRejectReason 11).
FIX44_MSG_TYPES = frozenset(
    "0 1 2 3 4 5 6 7 8 9 A B C D E F G H J K L M N P Q R S T V W X Y Z "
    "a b c d e f g h i j k l m n o p q r s t u v w x y z "
    "AA AB AC AD AE AF AG AH AI AJ AK AL AM AN AO AP AQ AR AS AT AU AV AW AX AY AZ "
    "BA BB BC BD BE BF BG BH".split()
)

EXEC_TYPES = frozenset("0 3 4 5 6 7 8 9 A B C D E F G H I".split())
EXEC_TYPES_42 = EXEC_TYPES | {"1", "2"}
ORD_STATUSES = frozenset("0 1 2 3 4 5 6 7 8 9 A B C D E".split())
SIDES = frozenset("1 2 3 4 5 6 7 8 9 A B C D E F G".split())
ORD_TYPES_IN = frozenset(ORD_TYPE.values())
TIFS_IN = frozenset(TIME_IN_FORCE.values()) | {"2", "5", "7"}

_QTY, _PRICE, _TIME, _INT = "qty", "price", "time", "int"
_FORMATS = {
    14: _QTY,
    151: _QTY,
    32: _QTY,
    38: _QTY,
    6: _PRICE,
    31: _PRICE,
    44: _PRICE,
    99: _PRICE,
    60: _TIME,
    126: _TIME,
    53: _QTY,
    80: _QTY,
    45: _INT,
    102: _INT,
    103: _INT,
    380: _INT,
    434: _INT,
}
_ENUMS = {
    39: ORD_STATUSES,
    54: SIDES,
    40: ORD_TYPES_IN,
    59: TIFS_IN,
    434: frozenset({"1", "2"}),
    71: frozenset(ALLOC_TRANS_TYPE.values()),
    87: ALLOC_STATUSES,
}

REQUIRED = {
    # FIX 4.4 ExecutionReport: OrderID, ExecID, ExecType, OrdStatus, Instrument
    # (Symbol), Side, LeavesQty, CumQty, AvgPx.
    "8": (37, 17, 150, 39, 55, 54, 151, 14, 6),
    "9": (37, 11, 41, 39, 434),
    "j": (372, 380),
    "D": (11, 55, 54, 60, 38, 40),
    "F": (41, 11, 55, 54, 60),
    "G": (41, 11, 55, 54, 60, 38, 40),
    "H": (11, 55, 54),
    # AllocationInstruction: AllocID, AllocTransType, AllocType, AllocNoOrdersType,
    # Side, Symbol, Quantity, AvgPx, TradeDate; AllocationInstructionAck: AllocID,
    # TransactTime, AllocStatus.
    "J": (70, 71, 626, 857, 54, 55, 53, 6, 75),
    "P": (70, 60, 87),
}


def _well_formed(kind: str, value: str) -> bool:
    if kind == _INT:
        return value.isdigit()
    if kind in (_QTY, _PRICE):
        try:
            number = Decimal(value)
        except Exception:
            return False
        return number.is_finite() and (kind == _PRICE or number >= 0)
    if kind == _TIME:
        for fmt in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
            try:
                dt.datetime.strptime(value, fmt)
                return True
            except ValueError:
                continue
        return False
    return True


def validate_inbound(msg_type: str, fields: list[tuple[int, str]], begin_string: str, accepts: frozenset[str]) -> None:
    """Check an application message against the FIX 4.4 dictionary for the fields this
    OMS relies on; raise InvalidMessage or UnsupportedMessage."""
    if msg_type not in FIX44_MSG_TYPES:
        raise InvalidMessage(11, f"Invalid MsgType {msg_type!r}", 35)
    if msg_type not in accepts:
        raise UnsupportedMessage(f"Unsupported message type {msg_type}")
    values: dict[int, str] = {}
    for tag, value in fields:
        if value == "":
            raise InvalidMessage(4, f"Tag {tag} specified without a value", tag)
        values.setdefault(tag, value)
    required = list(REQUIRED.get(msg_type, ()))
    if msg_type == "8":
        exec_type = values.get(150, "")
        if begin_string == "FIX.4.2":
            required.append(20)  # ExecTransType
        if exec_type in ("F", "G", "1", "2"):
            required += [32, 31]
        if exec_type in ("G", "H"):
            required.append(19)
    if msg_type == "J" and values.get(71) in ("1", "2"):
        required.append(72)  # RefAllocID names the allocation replaced or cancelled
    if msg_type in ("D", "G"):
        ord_type = values.get(40)
        if ord_type in ("2", "4"):
            required.append(44)
        if ord_type in ("3", "4"):
            required.append(99)
    for tag in required:
        if tag not in values:
            raise InvalidMessage(1, f"Required tag missing: {tag}", tag)
    if msg_type == "8":
        allowed = EXEC_TYPES_42 if begin_string == "FIX.4.2" else EXEC_TYPES
        if values[150] not in allowed:
            raise InvalidMessage(5, f"Value is incorrect (out of range) for this tag: 150={values[150]}", 150)
    for tag, value in values.items():
        kind = _FORMATS.get(tag)
        if kind and not _well_formed(kind, value):
            raise InvalidMessage(6, f"Incorrect data format for value: {tag}={value}", tag)
        allowed_values = _ENUMS.get(tag)
        if allowed_values and value not in allowed_values:
            raise InvalidMessage(5, f"Value is incorrect (out of range) for this tag: {tag}={value}", tag)
    if msg_type == "J":
        groups(fields, 73, 11, (37,))
        groups(fields, 78, 79, (80,))


def order_status_request(
    *, cl_ord_id: str, venue_order_id: str, status_req_id: str, symbol: str, side: str
) -> list[tuple[int, str]]:
    """OrderStatusRequest (35=H): the venue answers with an ExecutionReport, ExecType I."""
    fields: list[tuple[int, str]] = []
    if venue_order_id:
        fields.append((37, venue_order_id))
    return [*fields, (11, cl_ord_id), (790, status_req_id), (55, symbol), (54, SIDE[side])]


# ------------------------------------------------------------- reading received tags
def tags_from_message(message: Mapping[Any, Any]) -> dict[int, str]:
    """A received message given as a mapping (tag -> value, keys as numbers or text)
    as tag numbers to text. InvalidInput when a key is not a tag number."""
    tags: dict[int, str] = {}
    for key, value in message.items():
        try:
            tag = int(key)
        except (TypeError, ValueError):
            raise InvalidInput("Message tags must be FIX tag numbers.", details={"tag": [str(key)]}) from None
        tags[tag] = value.decode() if isinstance(value, bytes) else str(value)
    return tags


def tag_int(tags: dict[int, str], tag: int) -> int | None:
    """A whole-number tag (a quantity); None when absent or empty."""
    number = tag_decimal(tags, tag)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise InvalidInput(f"Tag {tag} must be a whole quantity.", details={str(tag): [tags[tag]]})
    return int(number)


def tag_decimal(tags: dict[int, str], tag: int) -> Decimal | None:
    """A finite decimal tag (a price); None when absent or empty."""
    value = tags.get(tag)
    if value in (None, ""):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"Tag {tag} is not a number.", details={str(tag): [value]}) from None
    if not number.is_finite():
        raise InvalidInput(f"Tag {tag} is not a number.", details={str(tag): [value]})
    return number


def tag_time(tags: dict[int, str], tag: int) -> dt.datetime | None:
    """A UTCTimestamp tag as an aware UTC time; None when absent or unreadable."""
    value = tags.get(tag)
    if not value:
        return None
    for fmt in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def tags_from_fields(fields: Iterable[tuple[Any, Any]]) -> dict[int, str]:
    """Stored ``[[tag, value], ...]`` as tag numbers to text; a repeated tag keeps its
    first occurrence (the messages applied to orders use no repeating groups)."""
    tags: dict[int, str] = {}
    for tag, value in fields:
        tags.setdefault(int(tag), str(value))
    return tags
