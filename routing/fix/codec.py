"""FIX 4.4 application message bodies built from plain order terms.

The outbox stores bodies as ``[[tag, value], ...]``; the session layer adds the header
(BeginString, MsgSeqNum, SenderCompID, TargetCompID, SendingTime) and trailer.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

SIDE = {"BUY": "1", "SELL": "2", "SELL_SHORT": "5"}
ORD_TYPE = {"MARKET": "1", "LIMIT": "2", "STOP": "3", "STOP_LIMIT": "4"}
TIME_IN_FORCE = {"DAY": "0", "GTC": "1", "IOC": "3", "FOK": "4", "GTD": "6"}

MSG_NEW_ORDER_SINGLE = "D"
MSG_ORDER_CANCEL_REQUEST = "F"
MSG_ORDER_CANCEL_REPLACE_REQUEST = "G"
MSG_ORDER_STATUS_REQUEST = "H"


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
) -> list[tuple[int, str]]:
    fields: list[tuple[int, str]] = [
        (21, "1"),  # HandlInst: automated, no broker intervention
        (55, symbol),
        (54, SIDE[side]),
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
