"""The FIX 4.4 Order State Change Matrices (Vol. 4, formerly Appendix D), fed row by row.

Sources. Groups A, B, C, E and J: /work/shared/FIX44-ORDER-STATES.md (transcribed from
the FIX 4.4 specification). Group D: the OnixS FIX dictionary's renderings of the same
matrices (onixs.biz/fix-dictionary: 5.0.sp2.ep272/app_dD.1.a, 5.0.sp2.ep289/app_dD.1.b,
4.2/app_d15 = D.1.c, 4.3/app_d21 = D.2.d; quantities are identical across versions).
Groups I and K: the matrix tables themselves could not be retrieved; those tests follow
the rules the specification states for them -- a Fill-or-Kill / Immediate-or-Cancel
order is killed with ExecType=Canceled (Appendix D preamble), a halt cancel carries
ExecRestatementReason 6 "Cancel on Trading Halt" (tag 378) -- and say so.

How a matrix is played. Buy-side rows go through the services: the order is submitted
(``submit``; status ``pending_new``, ClOrdID X), a Cancel Request is ``order_cancel``, a
Replace Request ``order_amend``; the new request's ClOrdID is the Y (or Z) the venue
answers with. Sell-side rows are execution reports (35=8) or Order Cancel Rejects
(35=9) given to ``execution_report_apply`` exactly as a venue would send them, with
ClOrdID/OrigClOrdID as the matrix prints them. After every row the order's status,
filled, leaves and quantity and its average price are asserted, as is the outcome of
applying the report and the flags it raised; after every execution report the OMS's
filled quantity must equal the venue's CumQty (else a cum_qty_mismatch flag appears).
Where the matrix gives no LastPx the prices are ours, chosen so that every average is
an exact decimal; the expected averages below were worked out by hand.

Rows that share a time in the matrix and are alternatives (*alt*: the reject path) are
played as separate paths: the main path skips every alt row, and each alt path is the
main path up to that time followed by the alt row. Crossing rows (*cross*) are played
buy side first: the OMS marks its own request pending as it sends it, so where the
matrix prints the venue's OrdStatus (New / Partially Filled) on a report that crossed
our request, the OMS shows pending_cancel / pending_amend -- the precedence rule
applied to what the buy side knows.

Status mapping: New -> open (pending_new before the ack), Partially Filled ->
partially_filled, Filled -> filled, Pending Cancel -> pending_cancel, Pending Replace ->
pending_amend, Canceled -> cancelled, Rejected -> rejected, Expired -> expired, Done for
Day -> done_for_day.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from oms_site.errors import InvalidStateTransition
from orders.models import Order, OrderFlag, OrderRequest
from orders.services import execution_report_apply, order_amend, order_cancel
from routing.models import OutboundMessage

pytestmark = pytest.mark.django_db

PN, OPEN, PF, FILLED = "pending_new", "open", "partially_filled", "filled"
PC, PR, CXL, REJ, DFD = "pending_cancel", "pending_amend", "cancelled", "rejected", "done_for_day"

EXEC_TYPE = {
    "New": "0",
    "Done for Day": "3",
    "Canceled": "4",
    "Replace": "5",
    "Pending Cancel": "6",
    "Rejected": "8",
    "Restated": "D",
    "Pending Replace": "E",
    "Trade": "F",
    "Trade Correct": "G",
    "Trade Cancel": "H",
}
ORD_STATUS = {
    "New": "0",
    "Partially Filled": "1",
    "Filled": "2",
    "Done for Day": "3",
    "Canceled": "4",
    "Pending Cancel": "6",
    "Rejected": "8",
    "Pending Replace": "E",
}
VENUE = "SIM"
_exec_ids = itertools.count(1)


@dataclass(frozen=True)
class Expect:
    status: str
    filled: int
    leaves: int
    quantity: int
    avg: Decimal | None = None


def E(status: str, filled: int, leaves: int, quantity: int, avg: str | None = None) -> Expect:  # noqa: N802
    return Expect(status, filled, leaves, quantity, Decimal(avg) if avg is not None else None)


@dataclass
class Play:
    """One path through a matrix: the orders and ClOrdIDs it made, by the matrix's names."""

    matrix: str
    submit: Callable[..., Order]
    trader: Any
    ids: dict[str, str] = field(default_factory=dict)  # X, Y, Z, A, B -> ClOrdID
    exec_ids: dict[str, str] = field(default_factory=dict)  # matrix ExecID -> ours
    order: Order | None = None
    order_id_tag: str | None = None  # OrderID (37) of a venue-originated order

    def venue_order_id(self) -> str:
        return self.order_id_tag or f"SIM-{self.order.pk}"

    def exec_id(self, name: str | None) -> str:
        if name is None:
            return f"EX{next(_exec_ids)}"
        return self.exec_ids.setdefault(name, f"{self.order.pk}-{name}")


def _on_the_wire(order: Order) -> None:
    """The FIX session has sent what the service queued (as routing's session layer
    does), so a cancel can no longer withdraw the NewOrderSingle from the outbox."""
    OutboundMessage.objects.filter(order_id=order.pk, state=OutboundMessage.State.PENDING).update(
        state=OutboundMessage.State.SENT, sent_at=dt.datetime.now(dt.UTC)
    )


def _pair(ids: str) -> tuple[str | None, str | None]:
    """'Y,X' -> ('Y', 'X'); 'X' -> ('X', None); '' -> (None, None)."""
    names = [n.strip() for n in ids.split(",") if n.strip()]
    return (names[0] if names else None, names[1] if len(names) > 1 else None)


# ------------------------------------------------------------------------------ rows
@dataclass(frozen=True)
class Row:
    t: str  # the matrix's time column
    text: str  # what the matrix row says
    expect: Expect
    alt: bool = False
    outcome: str = "applied"
    flags: tuple[str, ...] = ()

    def run(self, play: Play) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class NewOrder(Row):
    name: str = "X"
    terms: dict[str, Any] = field(default_factory=dict)

    def run(self, play: Play) -> Any:
        play.order = play.submit(**self.terms)
        assert play.order.status == PN, f"{play.matrix} row {self.t}: submit gave {play.order.status}"
        play.ids[self.name] = play.order.cl_ord_id
        _on_the_wire(play.order)


@dataclass(frozen=True)
class CancelRequest(Row):
    ids: str = "Y,X"

    def run(self, play: Play) -> Any:
        new, orig = _pair(self.ids)
        order_cancel(user=play.trader, order_id=play.order.pk)
        request = play.order.requests.latest("id")
        assert request.kind == OrderRequest.Kind.CANCEL
        # OrigClOrdID: the last non-rejected ClOrdID (optimistic chaining).
        assert request.orig_cl_ord_id == play.ids[orig], f"{play.matrix} row {self.t}: OrigClOrdID"
        play.ids[new] = request.cl_ord_id
        _on_the_wire(play.order)


@dataclass(frozen=True)
class ReplaceRequest(Row):
    ids: str = "Y,X"
    quantity: int | None = None
    limit_price: Decimal | None = None

    def run(self, play: Play) -> Any:
        new, orig = _pair(self.ids)
        order_amend(user=play.trader, order_id=play.order.pk, quantity=self.quantity, limit_price=self.limit_price)
        request = play.order.requests.latest("id")
        assert request.kind == OrderRequest.Kind.REPLACE
        assert request.orig_cl_ord_id == play.ids[orig], f"{play.matrix} row {self.t}: OrigClOrdID"
        if self.quantity is not None:
            assert request.quantity == self.quantity
        play.ids[new] = request.cl_ord_id
        _on_the_wire(play.order)


@dataclass(frozen=True)
class RefusedReplace(Row):
    """A Replace Request the OMS does not send: it allows one outstanding request."""

    quantity: int | None = None

    def run(self, play: Play) -> Any:
        requests = play.order.requests.count()
        outbox = OutboundMessage.objects.filter(order_id=play.order.pk).count()
        with pytest.raises(InvalidStateTransition):
            order_amend(user=play.trader, order_id=play.order.pk, quantity=self.quantity)
        assert play.order.requests.count() == requests, "no request recorded"
        assert OutboundMessage.objects.filter(order_id=play.order.pk).count() == outbox, "nothing sent"


@dataclass(frozen=True)
class Exec(Row):
    """An Execution Report (35=8) as the matrix prints it."""

    ids: str = "X"
    exec_type: str = ""
    ord_status: str = ""
    order_qty: int = 0
    cum_qty: int = 0
    leaves_qty: int = 0
    last_qty: int = 0
    last_px: str | None = None
    exec_id: str | None = None
    exec_ref_id: str | None = None
    tags: dict[int, str] = field(default_factory=dict)

    def message(self, play: Play) -> dict[int, str]:
        cl, orig = _pair(self.ids)
        msg = {
            35: "8",
            37: play.venue_order_id(),
            17: play.exec_id(self.exec_id),
            150: EXEC_TYPE[self.exec_type],
            39: ORD_STATUS[self.ord_status],
            55: "AAPL",
            54: "1",
            38: str(self.order_qty),
            14: str(self.cum_qty),
            151: str(self.leaves_qty),
            32: str(self.last_qty),
        }
        if cl:
            msg[11] = play.ids[cl]
        if orig:
            msg[41] = play.ids[orig]
        if self.last_px is not None:
            msg[31] = self.last_px
        if self.exec_ref_id is not None:
            msg[19] = play.exec_ids[self.exec_ref_id]
        msg.update(self.tags)
        return msg

    def run(self, play: Play) -> Any:
        return execution_report_apply(venue_code=VENUE, message=self.message(play))


@dataclass(frozen=True)
class CancelReject(Row):
    """An Order Cancel Reject (35=9): ClOrdID = the request, OrigClOrdID = the order."""

    ids: str = "Y,X"
    ord_status: str = ""
    reason: str = "0"  # CxlRejReason (102): 0 too late, 1 unknown order, 2 broker option
    response_to: str = "1"  # CxlRejResponseTo (434): 1 cancel, 2 cancel/replace
    order_id: str | None = None

    def run(self, play: Play) -> Any:
        cl, orig = _pair(self.ids)
        message = {
            35: "9",
            37: self.order_id or play.venue_order_id(),
            11: play.ids[cl],
            41: play.ids[orig],
            39: ORD_STATUS[self.ord_status],
            102: self.reason,
            434: self.response_to,
        }
        return execution_report_apply(venue_code=VENUE, message=message)


@dataclass(frozen=True)
class Telephoned(Row):
    """E.1.a row 2: a New for an order the OMS never sent -- no ClOrdID; the service
    books it from OrderID, Account, Symbol, Side and OrderQty."""

    venue_order_id: str = "PHONE-1"
    account: str = "ACC-1"
    order_qty: int = 10000
    leaves_qty: int = 0

    def run(self, play: Play) -> Any:
        message = {
            35: "8",
            37: self.venue_order_id,
            17: play.exec_id(None),
            150: "0",
            39: "0",
            1: self.account,
            55: "AAPL",
            54: "1",
            38: str(self.order_qty),
            14: "0",
            151: str(self.leaves_qty),
            32: "0",
        }
        result = execution_report_apply(venue_code=VENUE, message=message)
        play.order = Order.objects.get(venue_order_id=self.venue_order_id)
        play.order_id_tag = self.venue_order_id
        return result


def buy(t: str, text: str, expect: Expect, row: type[Row] = NewOrder, **kwargs) -> Row:
    return row(t=t, text=text, expect=expect, **kwargs)


def er(
    t: str, ids: str, exec_type: str, ord_status: str, qty: int, cum: int, leaves: int, last: int, expect: Expect, **kw
):
    """One Execution row, in the matrix's column order."""
    text = kw.pop("text", f"Execution({ids}) {exec_type}/{ord_status} {qty} {cum} {leaves} {last}")
    return Exec(
        t=t,
        text=text,
        expect=expect,
        ids=ids,
        exec_type=exec_type,
        ord_status=ord_status,
        order_qty=qty,
        cum_qty=cum,
        leaves_qty=leaves,
        last_qty=last,
        **kw,
    )


def rej(t: str, ids: str, ord_status: str, expect: Expect, **kw) -> CancelReject:
    text = kw.pop("text", f"Cancel Reject ({ids}) {ord_status}")
    return CancelReject(t=t, text=text, expect=expect, ids=ids, ord_status=ord_status, **kw)


# --------------------------------------------------------------------------- playing
def paths(rows: list[Row]) -> list[Any]:
    """The main path and one path per alternative (reject) row, as pytest params."""
    main = [r for r in rows if not r.alt]
    result = [pytest.param(main, id="main")]
    for i, row in enumerate(rows):
        if row.alt:
            before = [r for r in rows[:i] if not r.alt]
            result.append(pytest.param([*before, row], id=f"alt-row-{row.t}"))
    return result


@pytest.fixture
def play_matrix(submit, trader, venue):
    def _play(matrix: str, rows: list[Row]) -> Play:
        assert not any(r.alt for r in rows[:-1]), "an alternative row ends its path"
        play = Play(matrix=matrix, submit=submit, trader=trader)
        for row in rows:
            where = f"{matrix} row {row.t} ({row.text})"
            last_flag = OrderFlag.objects.order_by("-id").values_list("id", flat=True).first() or 0
            result = row.run(play)
            order = play.order
            order.refresh_from_db()
            if result is not None:
                assert result.outcome == row.outcome, f"{where}: outcome {result.outcome}"
            new_flags = sorted(OrderFlag.objects.filter(id__gt=last_flag).values_list("kind", flat=True))
            assert new_flags == sorted(row.flags), f"{where}: flags {new_flags}"
            got = Expect(
                order.status, order.filled_quantity, order.leaves_quantity, order.quantity, order.avg_fill_price
            )
            assert got == row.expect, f"{where}: got {got}, expected {row.expect}"
        return play

    return _play


def vanilla(prefix_alt: bool = True) -> list[Row]:
    """Rows 1-2 of most matrices: New Order(X) 10000, its reject alternative, the ack."""
    rows: list[Row] = [buy("1", "New Order(X) 10000", E(PN, 0, 10000, 10000))]
    if prefix_alt:
        rows.append(er("2", "X", "Rejected", "Rejected", 10000, 0, 0, 0, E(REJ, 0, 0, 10000), alt=True))
    rows.append(er("2", "X", "New", "New", 10000, 0, 10000, 0, E(OPEN, 0, 10000, 10000)))
    return rows


# The matrices are tables: kept one row a line, as the specification prints them.
# fmt: off
# ------------------------------------------------------------------------ A: vanilla
A_1_a = [
    *vanilla(),
    er("3", "X", "Rejected", "Rejected", 10000, 0, 0, 0, E(REJ, 0, 0, 10000), alt=True),  # New -> Rejected after the ack
    er("3", "X", "Trade", "Partially Filled", 10000, 2000, 8000, 2000, E(PF, 2000, 8000, 10000, "100"), last_px="100"),
    er("4", "X", "Trade", "Partially Filled", 10000, 3000, 7000, 1000, E(PF, 3000, 7000, 10000, "101"), last_px="103"),
    er("5", "X", "Trade", "Filled", 10000, 10000, 0, 7000, E(FILLED, 10000, 0, 10000, "101.7"), last_px="102"),
]


@pytest.mark.parametrize("rows", paths(A_1_a))
def test_A_1_a_filled_order(play_matrix, rows):
    play_matrix("A.1.a", rows)


A_1_b = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 2000, 8000, 2000, E(PF, 2000, 8000, 10000, "100"), last_px="100"),
    er("4", "X", "Trade", "Partially Filled", 10000, 3000, 7000, 1000, E(PF, 3000, 7000, 10000, "101"), last_px="103"),
    # A day order done for the day: LeavesQty 0 (the OrderQty = CumQty + LeavesQty exception).
    er("5", "X", "Done for Day", "Done for Day", 10000, 3000, 0, 0, E(DFD, 3000, 0, 10000, "101")),
]


@pytest.mark.parametrize("rows", paths(A_1_b))
def test_A_1_b_part_filled_day_order_done_for_day(play_matrix, rows):
    play_matrix("A.1.b", rows)


# -------------------------------------------------------------------------- B: cancel
B_1_a = [
    *vanilla(),
    buy("3", "Cancel Request(Y,X)", E(PC, 0, 10000, 10000), CancelRequest),
    rej("4", "Y,X", "New", E(OPEN, 0, 10000, 10000), alt=True, text="Cancel Reject: rejected by salesperson"),
    er("4", "Y,X", "Pending Cancel", "Pending Cancel", 10000, 0, 10000, 0, E(PC, 0, 10000, 10000)),
    rej("5", "Y,X", "New", E(OPEN, 0, 10000, 10000), alt=True, text="Cancel Reject: rejected by trader/exchange"),
    er("5", "Y,X", "Canceled", "Canceled", 10000, 0, 0, 0, E(CXL, 0, 0, 10000)),
]


@pytest.mark.parametrize("rows", paths(B_1_a))
def test_B_1_a_cancel_request_zero_filled_order(play_matrix, rows):
    play_matrix("B.1.a", rows)


B_1_b = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 2000, 8000, 2000, E(PF, 2000, 8000, 10000, "50"), last_px="50"),
    buy("4", "Cancel Request(Y,X) (cross)", E(PC, 2000, 8000, 10000, "50"), CancelRequest),
    # Crossed our cancel on the wire: the venue prints Partially Filled, the OMS knows
    # its cancel is out -- pending cancel takes precedence.
    er("4", "X", "Trade", "Partially Filled", 10000, 5000, 5000, 3000, E(PC, 5000, 5000, 10000, "50.6"), last_px="51"),
    rej("5", "Y,X", "Partially Filled", E(PF, 5000, 5000, 10000, "50.6"), alt=True),
    er("5", "Y,X", "Pending Cancel", "Pending Cancel", 10000, 5000, 5000, 0, E(PC, 5000, 5000, 10000, "50.6")),
    er("6", "X", "Trade", "Pending Cancel", 10000, 6000, 4000, 1000, E(PC, 6000, 4000, 10000, "51.5"), last_px="56"),
    rej("7", "Y,X", "Partially Filled", E(PF, 6000, 4000, 10000, "51.5"), alt=True),
    er("7", "Y,X", "Canceled", "Canceled", 10000, 6000, 0, 0, E(CXL, 6000, 0, 10000, "51.5")),
]


@pytest.mark.parametrize("rows", paths(B_1_b))
def test_B_1_b_cancel_part_filled_order_executions_while_pending(play_matrix, rows):
    play_matrix("B.1.b", rows)


B_1_c = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 2000, 8000, 2000, E(PF, 2000, 8000, 10000, "50"), last_px="50"),
    buy("4", "Cancel Request(Y,X) (cross)", E(PC, 2000, 8000, 10000, "50"), CancelRequest),
    er("4", "X", "Trade", "Partially Filled", 10000, 5000, 5000, 3000, E(PC, 5000, 5000, 10000, "50.6"), last_px="51"),
    rej("5", "Y,X", "Partially Filled", E(PF, 5000, 5000, 10000, "50.6"), alt=True),
    er("5", "Y,X", "Pending Cancel", "Pending Cancel", 10000, 5000, 5000, 0, E(PC, 5000, 5000, 10000, "50.6")),
    # Completely filled while pending cancel: still Pending Cancel (precedence over Filled).
    er("6", "X", "Trade", "Pending Cancel", 10000, 10000, 0, 5000, E(PC, 10000, 0, 10000, "51.3"), last_px="52"),
    rej("7", "Y,X", "Filled", E(FILLED, 10000, 0, 10000, "51.3"), text="Cancel Reject: too late to cancel"),
]


@pytest.mark.parametrize("rows", paths(B_1_c))
def test_B_1_c_cancel_request_order_filled_before_accepted(play_matrix, rows):
    play_matrix("B.1.c", rows)


B_1_d = [
    buy("1", "New Order(X) 10000", E(PN, 0, 10000, 10000)),
    buy("2", "Cancel Request(Y,X) at once", E(PC, 0, 10000, 10000), CancelRequest),
    er("3", "Y,X", "Pending Cancel", "Pending Cancel", 10000, 0, 10000, 0, E(PC, 0, 10000, 10000)),
    # The ack arrives after Pending Cancel: acknowledged, still pending cancel.
    er("4", "X", "New", "New", 10000, 0, 10000, 0, E(PC, 0, 10000, 10000)),
    er("5", "Y,X", "Canceled", "Canceled", 10000, 0, 0, 0, E(CXL, 0, 0, 10000)),
    buy("6", "New Order(A) 5000", E(PN, 0, 5000, 5000), name="A", terms={"quantity": 5000}),
    buy("7", "Cancel Request(B,A) at once", E(PC, 0, 5000, 5000), CancelRequest, ids="B,A"),
    er("8", "B,A", "Pending Cancel", "Pending Cancel", 5000, 0, 5000, 0, E(PC, 0, 5000, 5000)),
    # Canceled before it was ever acknowledged.
    er("9", "B,A", "Canceled", "Canceled", 5000, 0, 0, 0, E(CXL, 0, 0, 5000)),
]


def test_B_1_d_cancel_request_order_not_yet_acknowledged(play_matrix):
    play_matrix("B.1.d", B_1_d)


B_1_e = [
    buy("1", "New Order(X) 10000", E(PN, 0, 10000, 10000)),
    buy("2", "Cancel Request(Y,X) (cross)", E(PC, 0, 10000, 10000), CancelRequest),
    er("2", "X", "New", "New", 10000, 0, 10000, 0, E(PC, 0, 10000, 10000), text="Execution(X) New crossing the cancel"),
    er("3", "Y,X", "Pending Cancel", "Pending Cancel", 10000, 0, 10000, 0, E(PC, 0, 10000, 10000)),
    er("4", "Y,X", "Canceled", "Canceled", 10000, 0, 0, 0, E(CXL, 0, 0, 10000)),
]


def test_B_1_e_cancel_request_crosses_the_acknowledgement(play_matrix):
    play_matrix("B.1.e", B_1_e)


# B.1.f from the buy side: the OMS sent X and a cancel for it; the venue does not know
# X. The cancel reject says OrdStatus Rejected / CxlRejReason 1 / OrderID NONE. The
# OMS does not reject the order on a cancel reject (DESIGN §6): the request is rejected,
# the order returns to what its quantities say (not acknowledged: pending_new) and is
# flagged for a person to find out where X went.
B_1_f = [
    buy("0", "New Order(X) 10000 (never reached the venue)", E(PN, 0, 10000, 10000)),
    buy("1", "Cancel Request(Y,X)", E(PC, 0, 10000, 10000), CancelRequest),
    rej("2", "Y,X", "Rejected", E(PN, 0, 10000, 10000), reason="1", order_id="NONE", flags=("venue_unknown_order",)),
]


def test_B_1_f_cancel_request_unknown_order(play_matrix):
    play = play_matrix("B.1.f", B_1_f)
    order = play.order
    assert order.needs_review
    assert order.requests.get(cl_ord_id=play.ids["Y"]).state == OrderRequest.State.REJECTED
    assert order.requests.get(cl_ord_id=play.ids["X"]).state == OrderRequest.State.PENDING


# ---------------------------------------------------- C: cancel/replace quantity changes
C_1_a = [
    *vanilla(),
    buy("3", "Replace Request(Y,X) 11000", E(PR, 0, 10000, 10000), ReplaceRequest, quantity=11000),
    rej("4", "Y,X", "New", E(OPEN, 0, 10000, 10000), alt=True, response_to="2", text="rejected by salesperson"),
    er("4", "Y,X", "Pending Replace", "Pending Replace", 10000, 0, 10000, 0, E(PR, 0, 10000, 10000)),
    rej("5", "Y,X", "New", E(OPEN, 0, 10000, 10000), alt=True, response_to="2", text="rejected by trader/exchange"),
    er("5", "Y,X", "Replace", "New", 11000, 0, 11000, 0, E(OPEN, 0, 11000, 11000)),
    er("6", "Y", "Trade", "Partially Filled", 11000, 1000, 10000, 1000, E(PF, 1000, 10000, 11000, "20"), last_px="20"),
    er("7", "Y", "Trade", "Partially Filled", 11000, 3000, 8000, 2000, E(PF, 3000, 8000, 11000, "22"), last_px="23"),
]


@pytest.mark.parametrize("rows", paths(C_1_a))
def test_C_1_a_zero_filled_order_replace_to_increase_qty(play_matrix, rows):
    play = play_matrix("C.1.a", rows)
    if rows[-1].t == "7":
        assert play.order.cl_ord_id == play.ids["Y"]  # the replace took effect on the chain


C_1_b = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    buy("4", "Replace Request(Y,X) 12000", E(PR, 1000, 9000, 10000, "10"), ReplaceRequest, quantity=12000),
    rej("5", "Y,X", "Partially Filled", E(PF, 1000, 9000, 10000, "10"), alt=True, response_to="2"),
    er("5", "Y,X", "Pending Replace", "Pending Replace", 10000, 1000, 9000, 0, E(PR, 1000, 9000, 10000, "10")),
    # A fill before the replace is dealt with: on X, with the old OrderQty.
    er("6", "X", "Trade", "Pending Replace", 10000, 1100, 8900, 100, E(PR, 1100, 8900, 10000, "11"), last_px="21"),
    rej("7", "Y,X", "Partially Filled", E(PF, 1100, 8900, 10000, "11"), alt=True, response_to="2"),
    er("7", "Y,X", "Replace", "Partially Filled", 12000, 1100, 10900, 0, E(PF, 1100, 10900, 12000, "11")),
    er("8", "Y", "Trade", "Filled", 12000, 12000, 0, 10900, E(FILLED, 12000, 0, 12000, "13.725"), last_px="14"),
]


@pytest.mark.parametrize("rows", paths(C_1_b))
def test_C_1_b_part_filled_order_replace_to_increase_qty_fill_while_pending(play_matrix, rows):
    play_matrix("C.1.b", rows)


C_1_c = [
    *vanilla(),
    er("3", "X", "Trade", "Filled", 10000, 10000, 0, 10000, E(FILLED, 10000, 0, 10000, "30"), last_px="30"),
    buy("4", "Replace Request(Y,X) 12000", E(PR, 10000, 0, 10000, "30"), ReplaceRequest, quantity=12000),
    rej("5", "Y,X", "Filled", E(FILLED, 10000, 0, 10000, "30"), alt=True, response_to="2"),
    er("5", "Y,X", "Pending Replace", "Pending Replace", 10000, 10000, 0, 0, E(PR, 10000, 0, 10000, "30")),
    rej("6", "Y,X", "Filled", E(FILLED, 10000, 0, 10000, "30"), alt=True, response_to="2"),
    # A filled order goes back to partially filled on an accepted increase.
    er("6", "Y,X", "Replace", "Partially Filled", 12000, 10000, 2000, 0, E(PF, 10000, 2000, 12000, "30")),
    er("7", "Y", "Trade", "Filled", 12000, 12000, 0, 2000, E(FILLED, 12000, 0, 12000, "31"), last_px="36"),
]


@pytest.mark.parametrize("rows", paths(C_1_c))
def test_C_1_c_filled_order_replace_to_increase_qty(play_matrix, rows):
    play_matrix("C.1.c", rows)


def test_C_1_c_a_filled_order_takes_no_price_change_or_decrease(submit, trader, venue):
    """The other side of C.1.c: only a quantity increase is sent for a filled order
    ("Requests to change price on a filled order will be rejected")."""
    order = submit()
    _on_the_wire(order)
    execution_report_apply(venue_code=VENUE, message={35: "8", 11: order.cl_ord_id, 17: "f1", 150: "0", 39: "0"})
    execution_report_apply(
        venue_code=VENUE,
        message={35: "8", 11: order.cl_ord_id, 17: "f2", 150: "F", 39: "2", 32: "10000", 31: "30", 14: "10000"},
    )
    order.refresh_from_db()
    assert order.status == FILLED
    for change in ({"limit_price": Decimal("170")}, {"quantity": 9000}):
        with pytest.raises(InvalidStateTransition):
            order_amend(user=trader, order_id=order.pk, **change)
    order.refresh_from_db()
    assert (order.status, order.quantity, order.requests.count()) == (FILLED, 10000, 1)
    assert not OutboundMessage.objects.filter(order_id=order.pk, msg_type="G").exists()


C_2_a = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    buy(
        "4",
        "Replace Request(Y,X) new limit price (cross)",
        E(PR, 1000, 9000, 10000, "10"),
        ReplaceRequest,
        limit_price=Decimal("175.00"),
    ),
    er("4", "X", "Trade", "Filled", 10000, 10000, 0, 9000, E(PR, 10000, 0, 10000, "10.9"), last_px="11"),
    rej("5", "Y,X", "Filled", E(FILLED, 10000, 0, 10000, "10.9"), response_to="2", text="too late to cancel"),
]


@pytest.mark.parametrize("rows", paths(C_2_a))
def test_C_2_a_replace_not_for_qty_rejected_as_fill_occurred(play_matrix, rows):
    play = play_matrix("C.2.a", rows)
    assert play.order.limit_price == Decimal("175.50")  # the rejected replace changed nothing


C_3_a = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    buy("4", "Replace Request(Y,X) 8000 (cross)", E(PR, 1000, 9000, 10000, "10"), ReplaceRequest, quantity=8000),
    er("4", "X", "Trade", "Partially Filled", 10000, 1500, 8500, 500, E(PR, 1500, 8500, 10000, "11"), last_px="13"),
    rej("5", "Y,X", "Partially Filled", E(PF, 1500, 8500, 10000, "11"), alt=True, response_to="2"),
    er("5", "Y,X", "Pending Replace", "Pending Replace", 10000, 1500, 8500, 0, E(PR, 1500, 8500, 10000, "11")),
    er("6", "X", "Trade", "Pending Replace", 10000, 1600, 8400, 100, E(PR, 1600, 8400, 10000, "12"), last_px="27"),
    rej("7", "Y,X", "Partially Filled", E(PF, 1600, 8400, 10000, "12"), alt=True, response_to="2"),
    er("7", "Y,X", "Replace", "Partially Filled", 8000, 1600, 6400, 0, E(PF, 1600, 6400, 8000, "12")),
    er("8", "Y", "Trade", "Filled", 8000, 8000, 0, 6400, E(FILLED, 8000, 0, 8000, "12.8"), last_px="13"),
]


@pytest.mark.parametrize("rows", paths(C_3_a))
def test_C_3_a_replace_to_decrease_qty_above_cum_qty(play_matrix, rows):
    play_matrix("C.3.a", rows)


C_3_b = [
    *vanilla(),
    buy("3", "Replace Request(Y,X) 7000 (cross)", E(PR, 0, 10000, 10000), ReplaceRequest, quantity=7000),
    er("3", "X", "Trade", "Partially Filled", 10000, 7000, 3000, 7000, E(PR, 7000, 3000, 10000, "40"), last_px="40"),
    # Replaced to exactly CumQty: Filled takes precedence over the canceled balance.
    er("4", "Y,X", "Replace", "Filled", 7000, 7000, 0, 0, E(FILLED, 7000, 0, 7000, "40")),
]


@pytest.mark.parametrize("rows", paths(C_3_b))
def test_C_3_b_replace_to_decrease_qty_equal_to_cum_qty(play_matrix, rows):
    play_matrix("C.3.b", rows)


C_3_c = [
    *vanilla(),
    buy("3", "Replace Request(Y,X) 7000 (cross)", E(PR, 0, 10000, 10000), ReplaceRequest, quantity=7000),
    er("3", "X", "Trade", "Partially Filled", 10000, 8000, 2000, 8000, E(PR, 8000, 2000, 10000, "40"), last_px="40"),
    # Requested 7000 < CumQty 8000: OrderQty is amended to CumQty, not to 7000.
    er("4", "Y,X", "Replace", "Filled", 8000, 8000, 0, 0, E(FILLED, 8000, 0, 8000, "40")),
]


@pytest.mark.parametrize("rows", paths(C_3_c))
def test_C_3_c_replace_to_decrease_qty_below_cum_qty(play_matrix, rows):
    play_matrix("C.3.c", rows)


def test_C_3_c_venue_confirming_the_requested_qty_below_cum_qty(play_matrix):
    """A venue that echoes the requested 7000 on the Replace: the quantity never falls
    below what is filled."""
    rows = [r for r in C_3_c if not r.alt][:-1] + [
        er("4", "Y,X", "Replace", "Filled", 7000, 8000, 0, 0, E(FILLED, 8000, 0, 8000, "40"))
    ]
    play_matrix("C.3.c (OrderQty 7000 echoed)", rows)


# --------------------------------------------------- D: cancel/replace sequencing/chaining
D_1_a = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    buy("4", "Replace Request(Y,X) 8000", E(PR, 1000, 9000, 10000, "10"), ReplaceRequest, quantity=8000),
    er("5", "Y,X", "Pending Replace", "Pending Replace", 10000, 1000, 9000, 0, E(PR, 1000, 9000, 10000, "10")),
    er("6", "X", "Trade", "Pending Replace", 10000, 1500, 8500, 500, E(PR, 1500, 8500, 10000, "11"), last_px="13"),
    er("7", "Y,X", "Replace", "Partially Filled", 8000, 1500, 6500, 0, E(PF, 1500, 6500, 8000, "11")),
    er("8", "Y", "Trade", "Partially Filled", 8000, 3500, 4500, 2000, E(PF, 3500, 4500, 8000, "15"), last_px="18"),
    buy("9", "Replace Request(Z,Y) 6000", E(PR, 3500, 4500, 8000, "15"), ReplaceRequest, ids="Z,Y", quantity=6000),
    er("10", "Z,Y", "Pending Replace", "Pending Replace", 8000, 3500, 4500, 0, E(PR, 3500, 4500, 8000, "15")),
    er("11", "Y", "Trade", "Pending Replace", 8000, 4000, 4000, 500, E(PR, 4000, 4000, 8000, "15.625"), last_px="20"),
    er("12", "Z,Y", "Replace", "Partially Filled", 6000, 4000, 2000, 0, E(PF, 4000, 2000, 6000, "15.625")),
    er("13", "Z", "Trade", "Filled", 6000, 6000, 0, 2000, E(FILLED, 6000, 0, 6000, "15.75"), last_px="16"),
]


@pytest.mark.parametrize("rows", paths(D_1_a))
def test_D_1_a_replace_accepted_then_another_accepted(play_matrix, rows):
    play = play_matrix("D.1.a", rows)
    if rows[-1].t == "13":
        assert play.order.cl_ord_id == play.ids["Z"]


D_1_b = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    buy("4", "Replace Request(Y,X) 8000", E(PR, 1000, 9000, 10000, "10"), ReplaceRequest, quantity=8000),
    rej("5", "Y,X", "Partially Filled", E(PF, 1000, 9000, 10000, "10"), response_to="2", text="rejected before pending"),
    er("6", "X", "Trade", "Partially Filled", 10000, 1500, 8500, 500, E(PF, 1500, 8500, 10000, "11"), last_px="13"),
    er("7", "X", "Trade", "Partially Filled", 10000, 3500, 6500, 2000, E(PF, 3500, 6500, 10000, "15"), last_px="18"),
    # OrigClOrdID = X: the last non-rejected ClOrdID (ReplaceRequest asserts it).
    buy("8", "Replace Request(Z,X) 6000", E(PR, 3500, 6500, 10000, "15"), ReplaceRequest, ids="Z,X", quantity=6000),
    er("9", "Z,X", "Pending Replace", "Pending Replace", 10000, 3500, 6500, 0, E(PR, 3500, 6500, 10000, "15")),
    er("10", "Z,X", "Replace", "Partially Filled", 6000, 3500, 2500, 0, E(PF, 3500, 2500, 6000, "15")),
    er("11", "Z", "Trade", "Partially Filled", 6000, 5000, 1000, 1500, E(PF, 5000, 1000, 6000, "15.3"), last_px="16"),
]


@pytest.mark.parametrize("rows", paths(D_1_b))
def test_D_1_b_replace_rejected_before_pending_then_another_accepted(play_matrix, rows):
    play_matrix("D.1.b", rows)


D_1_c = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    buy("4", "Replace Request(Y,X) 8000", E(PR, 1000, 9000, 10000, "10"), ReplaceRequest, quantity=8000),
    er("5", "Y,X", "Pending Replace", "Pending Replace", 10000, 1000, 9000, 0, E(PR, 1000, 9000, 10000, "10")),
    er("6", "X", "Trade", "Pending Replace", 10000, 1500, 8500, 500, E(PR, 1500, 8500, 10000, "11"), last_px="13"),
    rej("7", "Y,X", "Partially Filled", E(PF, 1500, 8500, 10000, "11"), response_to="2", text="rejected after pending"),
    er("8", "X", "Trade", "Partially Filled", 10000, 3500, 6500, 2000, E(PF, 3500, 6500, 10000, "15"), last_px="18"),
    buy("9", "Replace Request(Z,X) 6000", E(PR, 3500, 6500, 10000, "15"), ReplaceRequest, ids="Z,X", quantity=6000),
    er("10", "Z,X", "Pending Replace", "Pending Replace", 10000, 3500, 6500, 0, E(PR, 3500, 6500, 10000, "15")),
    er("11", "Z,X", "Replace", "Partially Filled", 6000, 3500, 2500, 0, E(PF, 3500, 2500, 6000, "15")),
    er("12", "Z", "Trade", "Partially Filled", 6000, 5000, 1000, 1500, E(PF, 5000, 1000, 6000, "15.3"), last_px="16"),
]


@pytest.mark.parametrize("rows", paths(D_1_c))
def test_D_1_c_replace_rejected_after_pending_then_another_accepted(play_matrix, rows):
    play_matrix("D.1.c", rows)


# D.2.d: Replace(Z,Y) is sent while Y is pending; the broker rejects Z (CxlRejReason 3,
# "already in pending replace") and goes on with Y. This OMS keeps one request
# outstanding: it refuses Z itself (409, nothing sent), which leaves the order exactly
# where the broker's reject of row 7 leaves it. D.2.a-c need the second replace on the
# wire, which this OMS never sends.
D_2_d = [
    *vanilla(prefix_alt=False),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    buy("4", "Replace Request(Y,X) 8000", E(PR, 1000, 9000, 10000, "10"), ReplaceRequest, quantity=8000),
    buy("5", "Replace Request(Z,Y) 7000 -- refused", E(PR, 1000, 9000, 10000, "10"), RefusedReplace, quantity=7000),
    er("6", "Y,X", "Pending Replace", "Pending Replace", 10000, 1000, 9000, 0, E(PR, 1000, 9000, 10000, "10")),
    er("8", "Y,X", "Replace", "Partially Filled", 8000, 1000, 7000, 0, E(PF, 1000, 7000, 8000, "10")),
    er("9", "Y", "Trade", "Partially Filled", 8000, 3000, 5000, 2000, E(PF, 3000, 5000, 8000, "11"), last_px="11.5"),
]


def test_D_2_d_second_replace_while_first_pending(play_matrix):
    play_matrix("D.2.d", D_2_d)


# ------------------------------------------------------------ E: unsolicited/reinstatement
E_1_a = [
    # The spec prints LeavesQty 0 on this New (a known misprint: it contradicts
    # OrderQty = CumQty + LeavesQty); the venue sends what is printed, the OMS reports
    # leaves 10000 for a working order with nothing filled.
    Telephoned(t="2", text="Execution New for an order phoned to the broker", expect=E(OPEN, 0, 10000, 10000), flags=("unknown_order",)),
    er("3", "", "Trade", "Partially Filled", 10000, 2000, 8000, 2000, E(PF, 2000, 8000, 10000, "100"), last_px="100"),
    er("4", "", "Trade", "Partially Filled", 10000, 3000, 7000, 1000, E(PF, 3000, 7000, 10000, "101"), last_px="103"),
    er("5", "", "Trade", "Filled", 10000, 10000, 0, 7000, E(FILLED, 10000, 0, 10000, "101.7"), last_px="102"),
]


def test_E_1_a_telephoned_order(play_matrix, account, aapl):
    play = play_matrix("E.1.a", E_1_a)
    order = Order.objects.get(venue_order_id="PHONE-1")
    assert order.pk == play.order.pk
    assert (order.origin, order.account.code, order.security.symbol, order.side) == ("venue", "ACC-1", "AAPL", "BUY")
    assert order.cl_ord_id == "" and order.needs_review


E_1_b = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    # Broker verbally agrees to cancel; unsolicited Canceled on X.
    er("5", "X", "Canceled", "Canceled", 10000, 1000, 0, 0, E(CXL, 1000, 0, 10000, "10"), tags={378: "2"}),
]


@pytest.mark.parametrize("rows", paths(E_1_b))
def test_E_1_b_unsolicited_cancel_of_part_filled_order(play_matrix, rows):
    play_matrix("E.1.b", rows)


E_1_c = [
    *vanilla(),
    er("4", "X", "Restated", "New", 11000, 0, 11000, 0, E(OPEN, 0, 11000, 11000), tags={378: "2"}),
    er("5", "X", "Trade", "Partially Filled", 11000, 1000, 10000, 1000, E(PF, 1000, 10000, 11000, "10"), last_px="10"),
    er("7", "X", "Restated", "Partially Filled", 12000, 1000, 11000, 0, E(PF, 1000, 11000, 12000, "10"), tags={378: "2"}),
]


@pytest.mark.parametrize("rows", paths(E_1_c))
def test_E_1_c_unsolicited_replacement_of_part_filled_order(play_matrix, rows):
    play_matrix("E.1.c", rows)


E_1_d = [
    *vanilla(),
    # ExecRestatementReason 5: partial decline of OrderQty.
    er("3", "X", "Restated", "New", 9000, 0, 9000, 0, E(OPEN, 0, 9000, 9000), tags={378: "5"}),
    er("4", "X", "Trade", "Filled", 9000, 9000, 0, 9000, E(FILLED, 9000, 0, 9000, "10"), last_px="10"),
]


@pytest.mark.parametrize("rows", paths(E_1_d))
def test_E_1_d_unsolicited_reduction_of_order_qty(play_matrix, rows):
    play_matrix("E.1.d", rows)


E_1_e = [
    buy("1", "New Order(X) 10000 @ 56, ExecInst Z", E(PN, 0, 10000, 10000), terms={"limit_price": Decimal("56")}),
    er("2", "X", "Rejected", "Rejected", 10000, 0, 0, 0, E(REJ, 0, 0, 10000), alt=True, tags={44: "56"}),
    er("2", "X", "New", "New", 10000, 0, 10000, 0, E(OPEN, 0, 10000, 10000), tags={44: "56"}),
    # Book moved: no longer best, canceled (ExecRestatementReason 9 "Canceled, not best").
    er("3", "X", "Canceled", "Canceled", 10000, 0, 0, 0, E(CXL, 0, 0, 10000), tags={44: "56", 378: "9"}),
]


@pytest.mark.parametrize("rows", paths(E_1_e))
def test_E_1_e_unsolicited_cancel_of_cancel_if_not_best_order(play_matrix, rows):
    play = play_matrix("E.1.e", rows)
    assert play.order.limit_price == Decimal("56")


# ------------------------------------------------------------------- I: time in force
# The I matrices' tables were not retrievable; these follow the specification's rule
# that an unfillable FOK, or the unfilled rest of an IOC, is killed with an Execution
# Report ExecType = Canceled.
I_1_a = [
    buy("1", "New Order(X) 10000 TimeInForce FOK", E(PN, 0, 10000, 10000), terms={"time_in_force": "FOK"}),
    er("2", "X", "Rejected", "Rejected", 10000, 0, 0, 0, E(REJ, 0, 0, 10000), alt=True),
    er("2", "X", "New", "New", 10000, 0, 10000, 0, E(OPEN, 0, 10000, 10000)),
    er("3", "X", "Canceled", "Canceled", 10000, 0, 0, 0, E(CXL, 0, 0, 10000), text="FOK cannot be filled: killed"),
]


@pytest.mark.parametrize("rows", paths(I_1_a))
def test_I_1_a_fill_or_kill_order_cannot_be_filled(play_matrix, rows):
    play_matrix("I.1.a", rows)


I_1_b = [
    buy("1", "New Order(X) 10000 TimeInForce IOC", E(PN, 0, 10000, 10000), terms={"time_in_force": "IOC"}),
    er("2", "X", "Rejected", "Rejected", 10000, 0, 0, 0, E(REJ, 0, 0, 10000), alt=True),
    er("2", "X", "New", "New", 10000, 0, 10000, 0, E(OPEN, 0, 10000, 10000)),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    er("4", "X", "Canceled", "Canceled", 10000, 1000, 0, 0, E(CXL, 1000, 0, 10000, "10"), text="IOC rest killed"),
]


@pytest.mark.parametrize("rows", paths(I_1_b))
def test_I_1_b_immediate_or_cancel_order_partly_hit(play_matrix, rows):
    play_matrix("I.1.b", rows)


# ------------------------------------------------------- J: execution cancels/corrects
J_1_a = [
    buy("1", "New Order(X) 10000", E(PN, 0, 10000, 10000)),
    er("2", "X", "Rejected", "Rejected", 10000, 0, 0, 0, E(REJ, 0, 0, 10000), alt=True, exec_id="A"),
    er("2", "X", "New", "New", 10000, 0, 10000, 0, E(OPEN, 0, 10000, 10000), exec_id="B"),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "100"), last_px="100", exec_id="C"),
    er("4", "X", "Trade", "Filled", 10000, 10000, 0, 9000, E(FILLED, 10000, 0, 10000, "109"), last_px="110", exec_id="D"),
    # Bust of C: AvgPx of what remains, 110.
    er("5", "X", "Trade Cancel", "Partially Filled", 10000, 9000, 1000, 0, E(PF, 9000, 1000, 10000, "110"), last_px="0", exec_id="E", exec_ref_id="C"),
    er("6", "X", "Trade Correct", "Partially Filled", 10000, 9000, 1000, 9000, E(PF, 9000, 1000, 10000, "100"), last_px="100", exec_id="F", exec_ref_id="D"),
    er("7", "X", "Trade", "Filled", 10000, 10000, 0, 1000, E(FILLED, 10000, 0, 10000, "102"), last_px="120", exec_id="G"),
    er("8", "X", "Trade Correct", "Filled", 10000, 10000, 0, 9000, E(FILLED, 10000, 0, 10000, "120"), last_px="120", exec_id="H", exec_ref_id="F"),
    buy("9", "Replace Request(Y,X) 12000", E(PR, 10000, 0, 10000, "120"), ReplaceRequest, quantity=12000),
    er("10", "Y,X", "Pending Replace", "Pending Replace", 10000, 10000, 0, 0, E(PR, 10000, 0, 10000, "120"), exec_id="I"),
    er("11", "Y,X", "Replace", "Partially Filled", 12000, 10000, 2000, 0, E(PF, 10000, 2000, 12000, "120"), exec_id="J"),
    er("12", "Y", "Trade Correct", "Partially Filled", 12000, 10500, 1500, 9500, E(PF, 10500, 1500, 12000, "120"), last_px="120", exec_id="K", exec_ref_id="H"),
]


@pytest.mark.parametrize("rows", paths(J_1_a))
def test_J_1_a_filled_order_corrections_and_cancels_of_executions(play_matrix, rows):
    play = play_matrix("J.1.a", rows)
    if rows[-1].t == "12":
        in_effect = sorted(play.order.executions.filter(in_effect=True).values_list("exec_id", flat=True))
        assert in_effect == sorted(play.exec_ids[n] for n in ("G", "K"))


J_1_b = [
    buy("1", "New Order(X) 10000", E(PN, 0, 10000, 10000)),
    er("2", "X", "New", "New", 10000, 0, 10000, 0, E(OPEN, 0, 10000, 10000), exec_id="A"),
    er("3", "X", "Trade", "Partially Filled", 10000, 5000, 5000, 5000, E(PF, 5000, 5000, 10000, "50"), last_px="50", exec_id="B"),
    buy("4", "Cancel Request(Y,X)", E(PC, 5000, 5000, 10000, "50"), CancelRequest),
    er("5", "Y,X", "Pending Cancel", "Pending Cancel", 10000, 5000, 5000, 0, E(PC, 5000, 5000, 10000, "50"), exec_id="C"),
    er("6", "Y,X", "Canceled", "Canceled", 10000, 5000, 0, 0, E(CXL, 5000, 0, 10000, "50"), exec_id="D"),
    # Bust and new fill after the cancel: applied, status stays Canceled, flagged.
    er("7", "X", "Trade Cancel", "Canceled", 10000, 0, 0, 0, E(CXL, 0, 0, 10000), exec_id="E", exec_ref_id="B", flags=("late_execution",)),
    er("8", "X", "Trade", "Canceled", 10000, 4000, 0, 4000, E(CXL, 4000, 0, 10000, "51"), last_px="51", exec_id="F", flags=("late_execution",)),
]


def test_J_1_b_canceled_order_busted_execution_and_new_execution(play_matrix):
    play = play_matrix("J.1.b", J_1_b)
    assert play.order.needs_review


J_1_c = [
    buy("Day 1,1", "New Order(X) 10000 GTC", E(PN, 0, 10000, 10000), terms={"time_in_force": "GTC"}),
    er("Day 1,2", "X", "New", "New", 10000, 0, 10000, 0, E(OPEN, 0, 10000, 10000), exec_id="A"),
    er("Day 1,3", "X", "Trade", "Partially Filled", 10000, 2000, 8000, 2000, E(PF, 2000, 8000, 10000, "100"), last_px="100", exec_id="B"),
    # The venue prints LeavesQty 8000 on a GT order's Done for Day; the OMS reports 0
    # leaves while done for the day (DESIGN §5) and the quantity comes back next day.
    er("Day 1,4", "X", "Done for Day", "Done for Day", 10000, 2000, 8000, 0, E(DFD, 2000, 0, 10000, "100"), exec_id="C"),
    er("Day 2,1", "X", "Restated", "Partially Filled", 10000, 2000, 8000, 0, E(PF, 2000, 8000, 10000, "100"), exec_id="D", tags={378: "1"}),
    er("Day 2,2", "X", "Trade", "Partially Filled", 10000, 3000, 7000, 1000, E(PF, 3000, 7000, 10000, "101"), last_px="103", exec_id="E"),
    er("Day 2,3", "X", "Trade Correct", "Partially Filled", 10000, 2500, 7500, 1500, E(PF, 2500, 7500, 10000, "101.2"), last_px="100", exec_id="F", exec_ref_id="B"),
    er("Day 2,4", "X", "Trade Correct", "Partially Filled", 10000, 2000, 8000, 500, E(PF, 2000, 8000, 10000, "100.75"), last_px="103", exec_id="G", exec_ref_id="E"),
]


def test_J_1_c_gtc_order_restated_and_executions_corrected(play_matrix):
    play_matrix("J.1.c", J_1_c)


J_1_d = [
    buy("1", "New Order(X) 10000", E(PN, 0, 10000, 10000)),
    er("2", "X", "New", "New", 10000, 0, 10000, 0, E(OPEN, 0, 10000, 10000), exec_id="A"),
    er("3", "X", "Trade", "Partially Filled", 10000, 5000, 5000, 5000, E(PF, 5000, 5000, 10000, "50"), last_px="50", exec_id="B"),
    er("4", "X", "Done for Day", "Done for Day", 10000, 5000, 0, 0, E(DFD, 5000, 0, 10000, "50"), exec_id="C"),
    er("5", "X", "Trade Correct", "Done for Day", 10000, 4000, 0, 4000, E(DFD, 4000, 0, 10000, "50"), last_px="50", exec_id="D", exec_ref_id="B", flags=("late_execution",)),
    er("6", "X", "Trade Cancel", "Done for Day", 10000, 0, 0, 0, E(DFD, 0, 0, 10000), exec_id="E", exec_ref_id="D", flags=("late_execution",)),
]


def test_J_1_d_done_for_day_order_trade_correction_and_bust(play_matrix):
    play_matrix("J.1.d", J_1_d)


# ------------------------------------------------------------------ K: trading halt
# The K matrices' tables were not retrievable. K.1.b here: an order with ExecInst
# "cancel on trading halt" is canceled by the venue when the halt starts,
# ExecRestatementReason 6; K.1.a: an order the venue reinstates after the halt stays
# working -- no report is owed for the halt itself, and executions simply resume.
K_1_a = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    er("5", "X", "Trade", "Partially Filled", 10000, 3000, 7000, 2000, E(PF, 3000, 7000, 10000, "11"), last_px="11.5", text="after the halt is lifted"),
]


@pytest.mark.parametrize("rows", paths(K_1_a))
def test_K_1_a_trading_halt_reinstate(play_matrix, rows):
    play_matrix("K.1.a", rows)


K_1_b = [
    *vanilla(),
    er("3", "X", "Trade", "Partially Filled", 10000, 1000, 9000, 1000, E(PF, 1000, 9000, 10000, "10"), last_px="10"),
    er("4", "X", "Canceled", "Canceled", 10000, 1000, 0, 0, E(CXL, 1000, 0, 10000, "10"), tags={378: "6"}, text="halt: canceled"),
]


@pytest.mark.parametrize("rows", paths(K_1_b))
def test_K_1_b_trading_halt_cancel(play_matrix, rows):
    play_matrix("K.1.b", rows)
# fmt: on
