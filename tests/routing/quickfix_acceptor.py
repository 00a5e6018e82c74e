"""QuickFIX (the C++ engine, ``quickfix-py``) as a FIX 4.4 acceptor with its data
dictionary validation on: an independent judge of what the OMS sends.

``QuickFixVenue`` runs a ``quickfix.SocketAcceptor`` (SenderCompID SIM, TargetCompID
OMS) whose application answers NewOrderSingle (New, then a partial and a full fill,
or just New, or a reject, per ``on_new``), OrderCancelRequest (Pending Cancel, then
Canceled), OrderCancelReplaceRequest (Pending Replace, then Replaced with the new
OrderQty) and OrderStatusRequest (ExecType I), and on request cancels unsolicited or
busts a trade. Every message is built with the ``quickfix44`` classes and sent by
QuickFIX itself.

It records what reached ``fromApp`` and every sign that QuickFIX refused something:
each Reject (35=3), BusinessMessageReject (35=j) or Logout with a text it sends, and
any error inside its callbacks (``problems``). What the OMS sends must leave
``problems`` empty.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import sysconfig
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

try:
    import quickfix as fix
    import quickfix44 as fix44
except ImportError as exc:  # the test fails (not skips) on this: CI installs requirements
    fix = fix44 = None
    IMPORT_ERROR: ImportError | None = exc
else:
    IMPORT_ERROR = None

SOH = "\x01"


def require_quickfix() -> Path:
    """The FIX 4.4 data dictionary shipped with quickfix-py; raises RuntimeError with a
    clear message when the bindings or the dictionary are missing."""
    if IMPORT_ERROR is not None:
        raise RuntimeError(
            f"quickfix-py is not importable ({IMPORT_ERROR!r}): install requirements.txt (quickfix-py==0.0.3)"
        )
    candidates = []
    for base in (sys.prefix, sysconfig.get_path("data"), sys.exec_prefix, sys.base_prefix):
        if base:
            candidates.append(Path(base) / "share" / "quickfix" / "FIX44.xml")
    # Beside the bindings, for layouts that put data next to site-packages.
    candidates.append(Path(fix.__file__).resolve().parents[3] / "share" / "quickfix" / "FIX44.xml")
    for path in candidates:
        if path.is_file():
            return path
    raise RuntimeError(
        "QuickFIX FIX44.xml data dictionary not found; looked in: " + ", ".join(str(p) for p in candidates)
    )


def parse(raw: str) -> list[tuple[int, str]]:
    pairs = []
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            pairs.append((int(tag), value))
    return pairs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class VenueOrder:
    order_id: str
    cl_ord_id: str
    symbol: str
    side: str
    quantity: int
    price: str
    cum_qty: int = 0
    notional: Decimal = Decimal(0)
    status: str = "0"
    fills: list[tuple[str, int, Decimal]] = field(default_factory=list)  # (ExecID, qty, px) in effect

    @property
    def leaves(self) -> int:
        return 0 if self.status in ("2", "4", "8", "C") else self.quantity - self.cum_qty

    @property
    def avg_px(self) -> Decimal:
        return (self.notional / self.cum_qty).quantize(Decimal("0.0001")) if self.cum_qty else Decimal(0)


class _Application(fix.Application if fix is not None else object):
    def __init__(self, venue: QuickFixVenue) -> None:
        super().__init__()
        self.venue = venue

    def onCreate(self, session_id):  # noqa: N802 (QuickFIX's names)
        pass

    def onLogon(self, session_id):  # noqa: N802
        with self.venue.lock:
            self.venue.session_id = session_id
            self.venue.logons += 1

    def onLogout(self, session_id):  # noqa: N802
        with self.venue.lock:
            self.venue.logouts += 1

    def toAdmin(self, message, session_id):  # noqa: N802
        self.venue._outgoing(message)

    def toApp(self, message, session_id):  # noqa: N802
        self.venue._outgoing(message)

    def fromAdmin(self, message, session_id):  # noqa: N802
        self.venue._record_in("admin", message)

    def fromApp(self, message, session_id):  # noqa: N802
        # Only messages that passed QuickFIX's session and dictionary checks get here.
        # An exception must not cross into C++: record it as a problem instead.
        try:
            self.venue._record_in("app", message)
            self.venue._on_app(message, session_id)
        except Exception as exc:
            self.venue.problems.append(f"fromApp error: {exc!r} on {message.toString()!r}")


class QuickFixVenue:
    def __init__(self, workdir: Path, *, sender_comp_id: str = "SIM", target_comp_id: str = "OMS") -> None:
        self.dictionary = require_quickfix()
        self.workdir = Path(workdir)
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id
        self.lock = threading.RLock()
        self.on_new = "fill"  # "fill": New, partial, full; "ack": New only; "reject"
        self.fill_prices = (Decimal("175.40"), Decimal("175.46"))
        self.session_id = None
        self.logons = 0
        self.logouts = 0
        self.received: list[tuple[str, list[tuple[int, str]]]] = []  # fromApp: (MsgType, fields)
        self.admin_received: list[tuple[str, list[tuple[int, str]]]] = []
        self.sent: list[tuple[str, list[tuple[int, str]]]] = []
        self.problems: list[str] = []
        self.orders: dict[str, VenueOrder] = {}  # OrderID -> order
        self.by_cl_ord_id: dict[str, VenueOrder] = {}
        self._ids = itertools.count(1)
        self._tag = os.urandom(3).hex()
        self.port = 0
        self.acceptor = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._calls: list = []
        self.application = _Application(self)

    # ------------------------------------------------------------------ lifecycle
    def settings_text(self, port: int) -> str:
        store = self.workdir / "store"
        logs = self.workdir / "log"
        store.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        return "\n".join(
            [
                "[DEFAULT]",
                "ConnectionType=acceptor",
                f"SocketAcceptPort={port}",
                "SocketReuseAddress=Y",
                "StartTime=00:00:00",
                "EndTime=00:00:00",
                f"FileStorePath={store}",
                f"FileLogPath={logs}",
                "UseDataDictionary=Y",
                f"DataDictionary={self.dictionary}",
                "ValidateFieldsOutOfOrder=Y",
                "ValidateFieldsHaveValues=Y",
                "ValidateUserDefinedFields=Y",
                "AllowUnknownMsgFields=N",
                "CheckLatency=N",
                "CheckCompID=Y",
                "",
                "[SESSION]",
                "BeginString=FIX.4.4",
                f"SenderCompID={self.sender_comp_id}",
                f"TargetCompID={self.target_comp_id}",
                "",
            ]
        )

    def start(self) -> QuickFixVenue:
        """Bind and serve. QuickFIX is driven with ``poll()`` from one thread of ours,
        which also stops it: with ``SocketAcceptor.start()`` its own thread and
        ``stop()`` both close the socket server, a race that crashes this build
        (SIGSEGV in SocketServer::close) now and then."""
        last_error = None
        for _ in range(5):  # the free port may be taken between probe and bind
            port = free_port()
            config = self.workdir / "acceptor.cfg"
            config.write_text(self.settings_text(port))
            settings = fix.SessionSettings(str(config))
            # FileStore, not MemoryStore: MemoryStore answers a ResendRequest whose
            # BeginSeqNo it never stored with a gap fill over everything after it.
            acceptor = fix.SocketAcceptor(
                self.application, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
            )
            try:
                acceptor.poll()  # the first poll configures and binds
            except Exception as exc:  # RuntimeError from a bind failure
                last_error = exc
                continue
            self.acceptor, self.port = acceptor, port
            self._thread = threading.Thread(target=self._serve, name="quickfix-acceptor", daemon=True)
            self._thread.start()
            return self
        raise RuntimeError(f"QuickFIX acceptor did not start: {last_error!r}")

    def _serve(self) -> None:
        acceptor = self.acceptor
        try:
            while not self._stopping.is_set():
                self._run_calls()
                if not acceptor.poll():  # non-blocking: reads, writes, timers
                    break
                self._stopping.wait(0.002)
            self._run_calls()
        except Exception as exc:
            self.problems.append(f"QuickFIX acceptor loop failed: {exc!r}")
        finally:
            acceptor.stop(True)

    def _run_calls(self) -> None:
        while self._calls:
            call, done = self._calls.pop(0)
            try:
                call()
            except Exception as exc:
                self.problems.append(f"acceptor call {call!r} failed: {exc!r}")
            done.set()

    def call(self, function, timeout: float = 10.0) -> None:
        """Run ``function`` on the acceptor's thread (nothing touches QuickFIX from two
        threads at once) and wait for it."""
        done = threading.Event()
        self._calls.append((function, done))
        if not done.wait(timeout):
            raise AssertionError(f"the QuickFIX acceptor did not run {function!r} within {timeout}s")

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(15)
            self._thread = None
        self.acceptor = None

    def is_logged_on(self) -> bool:
        with self.lock:
            return self.logons > self.logouts

    def event_log(self) -> str:
        """QuickFIX's own event log (session problems it noticed), for messages."""
        return "\n".join(p.read_text(errors="replace") for p in (self.workdir / "log").glob("*.event.log"))

    def logged_from_counterparty(self, msg_type: str) -> list[dict[int, str]]:
        """Messages of one type QuickFIX received, from its message log (which has
        admin messages it does not pass to fromAdmin, such as SequenceReset)."""
        found = []
        for path in (self.workdir / "log").glob("*.messages.current.log"):
            for line in path.read_text(errors="replace").splitlines():
                values = dict(parse(line.partition(" : ")[2]))
                if values.get(35) == msg_type and values.get(49) == self.target_comp_id:
                    found.append(values)
        return found

    # ------------------------------------------------------------------ recording
    def _outgoing(self, message) -> None:
        fields = parse(message.toString())
        msg_type = dict(fields).get(35, "")
        with self.lock:
            self.sent.append((msg_type, fields))
            values = dict(fields)
            if msg_type in ("3", "j"):
                self.problems.append(f"QuickFIX sent {msg_type}: {message.toString().replace(SOH, '|')}")
            elif msg_type == "5" and values.get(58):
                self.problems.append(f"QuickFIX logged out with a reason: {values[58]}")

    def _record_in(self, kind: str, message) -> None:
        fields = parse(message.toString())
        msg_type = dict(fields).get(35, "")
        with self.lock:
            (self.received if kind == "app" else self.admin_received).append((msg_type, fields))
            if msg_type in ("3", "j"):
                # The OMS refused something QuickFIX sent: also a failed interop.
                self.problems.append(f"OMS sent {msg_type}: {message.toString().replace(SOH, '|')}")

    def app_messages(self, msg_type: str | None = None) -> list[dict[int, str]]:
        with self.lock:
            return [dict(f) for t, f in self.received if msg_type is None or t == msg_type]

    def sent_messages(self, msg_type: str) -> list[dict[int, str]]:
        with self.lock:
            return [dict(f) for t, f in self.sent if t == msg_type]

    # ---------------------------------------------------------------- application
    def _on_app(self, message, session_id) -> None:
        msg_type = message.getHeader().getField(35)
        values = dict(parse(message.toString()))
        if msg_type == "D":
            self._new_order(values, session_id)
        elif msg_type == "F":
            self._cancel(values, session_id)
        elif msg_type == "G":
            self._replace(values, session_id)
        elif msg_type == "H":
            self._status(values, session_id)
        else:
            raise fix.UnsupportedMessageType()

    def _find(self, values: dict[int, str]) -> VenueOrder | None:
        with self.lock:
            if values.get(37) in self.orders:
                return self.orders[values[37]]
            return self.by_cl_ord_id.get(values.get(41) or values.get(11, ""))

    def _new_order(self, values: dict[int, str], session_id) -> None:
        with self.lock:
            order = VenueOrder(
                order_id=f"QF-{self._tag}-{next(self._ids)}",
                cl_ord_id=values[11],
                symbol=values[55],
                side=values[54],
                quantity=int(values[38]),
                price=values.get(44, "0"),
            )
            self.orders[order.order_id] = order
            self.by_cl_ord_id[order.cl_ord_id] = order
            mode = self.on_new
        if mode == "reject":
            order.status = "8"
            self.send_report(order, "8", session_id, text="Rejected by QuickFIX test venue", ord_rej_reason=0)
            return
        self.send_report(order, "0", session_id)
        if mode == "fill":
            first_qty = max(1, order.quantity // 3)
            self.fill(order, first_qty, self.fill_prices[0], session_id)
            self.fill(order, order.quantity - first_qty, self.fill_prices[1], session_id)

    def fill(self, order: VenueOrder, qty: int, px: Decimal, session_id=None) -> str:
        exec_id = self._exec_id()
        with self.lock:
            order.cum_qty += qty
            order.notional += px * qty
            order.fills.append((exec_id, qty, px))
            order.status = "2" if order.cum_qty >= order.quantity else "1"
        self.send_report(order, "F", session_id, exec_id=exec_id, last=(qty, px))
        return exec_id

    def _cancel(self, values: dict[int, str], session_id) -> None:
        order = self._find(values)
        if order is None:
            self._cancel_reject(values, "1", session_id)
            return
        new_id = values[11]
        order.status = "6"
        self.send_report(order, "6", session_id, cl_ord_id=new_id, orig_cl_ord_id=values[41])
        with self.lock:
            order.status = "4"
            order.cl_ord_id = new_id
            self.by_cl_ord_id[new_id] = order
        self.send_report(order, "4", session_id, orig_cl_ord_id=values[41])

    def _replace(self, values: dict[int, str], session_id) -> None:
        order = self._find(values)
        if order is None:
            self._cancel_reject(values, "2", session_id)
            return
        new_id = values[11]
        previous = order.status
        order.status = "E"
        self.send_report(order, "E", session_id, cl_ord_id=new_id, orig_cl_ord_id=values[41])
        with self.lock:
            order.quantity = int(values[38])
            order.price = values.get(44, order.price)
            order.cl_ord_id = new_id
            order.status = previous if order.cum_qty < order.quantity else "2"
            self.by_cl_ord_id[new_id] = order
        self.send_report(order, "5", session_id, orig_cl_ord_id=values[41])

    def _status(self, values: dict[int, str], session_id) -> None:
        order = self._find(values)
        if order is None:
            return
        self.send_report(order, "I", session_id, status_req_id=values.get(790))

    def _cancel_reject(self, values: dict[int, str], response_to: str, session_id) -> None:
        msg = fix44.OrderCancelReject()
        msg.setField(fix.OrderID(values.get(37, "NONE")))
        msg.setField(fix.ClOrdID(values[11]))
        msg.setField(fix.OrigClOrdID(values[41]))
        msg.setField(fix.OrdStatus("8"))
        msg.setField(fix.CxlRejResponseTo(response_to))
        msg.setField(fix.CxlRejReason(1))
        self._send(msg, session_id)

    # --------------------------------------------------- unsolicited, on request
    def unsolicited_cancel(self, cl_ord_id: str, text: str = "Cancelled by the venue") -> None:
        order = self.by_cl_ord_id[cl_ord_id]

        def cancel():
            order.status = "4"
            self.send_report(order, "4", None, text=text)

        self.call(cancel)

    def bust(self, cl_ord_id: str, exec_ref_id: str) -> None:
        """Trade Cancel (150=H) of an execution in effect."""
        order = self.by_cl_ord_id[cl_ord_id]

        def bust():
            with self.lock:
                busted = next(f for f in order.fills if f[0] == exec_ref_id)
                order.fills.remove(busted)
                order.cum_qty -= busted[1]
                order.notional -= busted[1] * busted[2]
                order.status = "1" if order.cum_qty else "0"
            self.send_report(order, "H", None, exec_ref_id=exec_ref_id, text="Trade busted")

        self.call(bust)

    def skip_sender_seq(self, count: int) -> None:
        """Leave a gap in QuickFIX's outbound numbers: its next message is too high for
        the OMS, which must ask for a resend."""

        def skip():
            session = fix.Session.lookupSession(self.session_id)
            session.setNextSenderMsgSeqNum(session.getExpectedSenderNum() + count)

        self.call(skip)

    # ------------------------------------------------------------------- building
    def _exec_id(self) -> str:
        return f"QX-{self._tag}-{next(self._ids)}"

    def send_report(
        self,
        order: VenueOrder,
        exec_type: str,
        session_id,
        *,
        exec_id: str | None = None,
        last: tuple[int, Decimal] | None = None,
        cl_ord_id: str | None = None,
        orig_cl_ord_id: str | None = None,
        exec_ref_id: str | None = None,
        status_req_id: str | None = None,
        text: str | None = None,
        ord_rej_reason: int | None = None,
    ) -> None:
        msg = fix44.ExecutionReport()
        msg.setField(fix.OrderID(order.order_id))
        msg.setField(fix.ClOrdID(cl_ord_id or order.cl_ord_id))
        if orig_cl_ord_id:
            msg.setField(fix.OrigClOrdID(orig_cl_ord_id))
        if status_req_id:
            msg.setField(fix.OrdStatusReqID(status_req_id))
        msg.setField(fix.ExecID("0" if exec_type == "I" else exec_id or self._exec_id()))
        if exec_ref_id:
            msg.setField(fix.ExecRefID(exec_ref_id))
        msg.setField(fix.ExecType(exec_type))
        msg.setField(fix.OrdStatus(order.status))
        if ord_rej_reason is not None:
            msg.setField(fix.OrdRejReason(ord_rej_reason))
        msg.setField(fix.Symbol(order.symbol))
        msg.setField(fix.Side(order.side))
        msg.setField(fix.OrderQty(order.quantity))
        msg.setField(fix.OrdType(fix.OrdType_LIMIT))
        msg.setField(44, order.price)  # Price as the order gave it, not via a float
        if last is not None:
            msg.setField(32, str(last[0]))
            msg.setField(31, str(last[1]))
        msg.setField(fix.LeavesQty(order.leaves))
        msg.setField(fix.CumQty(order.cum_qty))
        msg.setField(6, str(order.avg_px))
        msg.setField(fix.TransactTime())
        if text:
            msg.setField(fix.Text(text))
        self._send(msg, session_id)

    def _send(self, msg, session_id) -> None:
        session_id = session_id or self.session_id
        if not fix.Session.sendToTarget(msg, session_id):
            self.problems.append(f"QuickFIX could not send {msg.toString()!r}")
