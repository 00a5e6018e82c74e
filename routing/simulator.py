"""A FIX 4.4 venue simulator: an acceptor for demos and tests (DESIGN §7).

``SimulatorServer`` listens on TCP, runs one thread per connection and one scheduler
thread for timed events (partial fills, unsolicited cancels, delayed cancel/replace
confirmations), and hosts ``routing.fix.session.FixSession`` in the acceptor role. It
keeps an order book of what it received and answers like a sell side following the FIX
4.4 Order State Change Matrices: ExecType/OrdStatus with OrdStatus precedence, CumQty,
LeavesQty and an exact AvgPx on every report, Order Cancel Reject for requests it cannot
act on.

Session state (sequence numbers, the sent messages that answer a ResendRequest) and the
order book live per CompID pair for the life of the process, like a venue's day session:
a counterparty that reconnects continues its sequence numbers, and reports produced
while it was away are sequenced and stored, so its ResendRequest recovers them. With a
``store_dir`` they also outlive the process (``routing.simulator_store``): a restarted
simulator continues its numbers, answers resends and knows the orders placed before.
``reset_on_logon`` starts every connection's numbering afresh (ResetOnLogon). Fill prices
come from reference prices (``routing.simulator_prices``).

Everything the connections, the scheduler and the control hooks touch is guarded by one
lock: the session layer is not thread-safe, and a simulator does not need more.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import re
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.utils import timezone

from .fix import codec
from .fix.framing import Framer
from .fix.session import FixSession, MemoryStore, Role, SessionConfig
from .simulator_allocations import (
    ALLOC_ACCEPTED,
    ALLOC_CANCELLED,
    ALLOC_RECEIVED,
    ALLOC_REJECTED,
    ALLOC_REPLACED,
    TRANS_CANCEL,
    AllocationDecision,
    allocation_ack_body,
    allocation_decide,
)
from .simulator_book import (
    OS_REJECTED,
    STATUS_NAMES,
    Fill,
    PendingRequest,
    SimOrder,
    order_from_record,
    order_record,
)
from .simulator_book import Rejected as _Rejected
from .simulator_book import positive_int as _positive_int
from .simulator_book import positive_price as _price
from .simulator_prices import PriceBook
from .simulator_store import SimulatorStore, StoreError

logger = logging.getLogger(__name__)

FIX44 = "FIX.4.4"
ACCEPTED_MESSAGES = frozenset({"D", "F", "G", "H", codec.MSG_ALLOCATION_INSTRUCTION})

FILL_IMMEDIATE = "immediate"
FILL_PARTIAL = "partial"
FILL_NONE = "none"
FILL_MODES = (FILL_IMMEDIATE, FILL_PARTIAL, FILL_NONE)

# ExecType (150)
ET_NEW, ET_CANCELED, ET_REPLACED, ET_PENDING_CANCEL = "0", "4", "5", "6"
ET_REJECTED, ET_RESTATED, ET_PENDING_REPLACE = "8", "D", "E"
ET_TRADE, ET_TRADE_CANCEL, ET_ORDER_STATUS = "F", "H", "I"
# OrdRejReason (103)
ORD_REJ_UNKNOWN_SYMBOL = 1
ORD_REJ_UNKNOWN_ORDER = 5
ORD_REJ_DUPLICATE = 6
ORD_REJ_UNSUPPORTED = 11
# CxlRejReason (102) and CxlRejResponseTo (434)
CXL_REJ_TOO_LATE = 0
CXL_REJ_UNKNOWN_ORDER = 1
CXL_REJ_ALREADY_PENDING = 3
CXL_REJ_DUPLICATE_CL_ORD_ID = 6
CXL_REJ_OTHER = 99
RESPONSE_TO_CANCEL = "1"
RESPONSE_TO_REPLACE = "2"
# ExecRestatementReason (378)
RESTATE_VERBAL_CHANGE = 2
RESTATE_PARTIAL_DECLINE = 5
RESTATE_MARKET_OPTION = 8
RESTATE_OTHER = 99

SUPPORTED_SIDES = frozenset({"1", "2", "5", "6"})  # buy, sell, sell short, sell short exempt
TIF_IOC, TIF_FOK = "3", "4"
PRICED_ORD_TYPES = frozenset({"2", "4"})  # LIMIT, STOP_LIMIT: filled at their limit or better


def fix_text(raw: bytes) -> str:
    """A FIX message (or several) as a readable line: SOH shown as ``|``."""
    return raw.decode("latin-1").replace("\x01", "|")


def _split_messages(data: bytes) -> list[bytes]:
    return [part for part in re.split(rb"(?<=\x01)(?=8=FIX)", data) if part]


# --------------------------------------------------------------------------- order book
# ---------------------------------------------------------------------------- transport
class _SocketTransport:
    """What FixSession writes through: a connected socket, logging every message."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        for message in _split_messages(data):
            logger.info("SIM OUT %s %s", self.peer, fix_text(message))
        try:
            self.sock.sendall(data)
        except OSError as exc:
            # The message is stored; a ResendRequest after the reconnect recovers it.
            logger.warning("SIM %s: write failed (%s); closing the connection", self.peer, exc)
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already disconnected by the peer
        self.sock.close()


# ---------------------------------------------------------------------------- scheduler
class _Scheduler:
    """Runs callbacks at monotonic times on one thread."""

    def __init__(self, run_callback: Callable[[Callable[[], None]], None]) -> None:
        self._run_callback = run_callback
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="venue-sim-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._events, (time.monotonic() + max(delay, 0.0), next(self._counter), callback))
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    if self._events and self._events[0][0] <= now:
                        break
                    timeout = self._events[0][0] - now if self._events else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._events)
            self._run_callback(callback)


class _Refusal:
    """The application of a throwaway session that only refuses a stranger's Logon."""

    def on_logon(self, session: FixSession) -> None:
        session.disconnect("refused")

    def on_logout(self, session: FixSession, reason: str) -> None:
        logger.info("SIM refused a connection: %s", reason)

    def on_app_message(self, session: FixSession, seq: int, msg_type: str, fields: list[tuple[int, str]]) -> None:
        pass

    def on_reject(self, session: FixSession, fields: list[tuple[int, str]]) -> None:
        pass

    def on_fatal(self, session: FixSession, reason: str) -> None:
        pass


class _SimSession(FixSession):
    """The acceptor's session: ``announce_reset`` adds ResetSeqNumFlag=Y to the Logon it
    answers with next (ResetOnLogon, without the counterparty asking for the reset)."""

    announce_reset = False

    def send_admin(self, msg_type: str, body: list[tuple[int, str]], now: float) -> int:
        if msg_type == "A" and self.announce_reset:
            self.announce_reset = False
            if all(tag != 141 for tag, _ in body):
                body = [*body, (141, "Y")]
        return super().send_admin(msg_type, body, now)


# ------------------------------------------------------------------------------- server
class SimulatorServer:
    """A FIX 4.4 acceptor that acknowledges, fills, rejects and cancels orders.

    ``fill_mode``: ``immediate`` (one Trade for the whole quantity), ``partial``
    (``partial_fill_parts`` Trades spaced by ``fill_interval`` seconds) or ``none``
    (acknowledge only). ``pending_delay`` > 0 holds cancel and replace requests in
    Pending Cancel/Replace for that many seconds before they take effect (fills in the
    meantime report the pending OrdStatus); 0 confirms at once.

    Fills are priced from ``reference_prices`` ({symbol: price}; ``reference_price`` for
    the others) with up to ``slippage_bps`` of slippage (``simulator_prices``).
    ``store_dir``: keep the session state and the book in ``<store_dir>/<SENDER>-<TARGET>``
    and load them from there (``simulator_store``); None keeps them in memory only.
    ``reset_on_logon``: each connection starts our numbering at 1, takes the
    counterparty's from its Logon and answers with ResetSeqNumFlag=Y.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sender_comp_id: str = "SIM",
        target_comp_id: str = "OMS",
        fill_mode: str = FILL_IMMEDIATE,
        fill_interval: float = 1.0,
        partial_fill_parts: int = 4,
        reject_symbols: Iterable[str] = (),
        rest_symbols: Iterable[str] = (),
        reference_price: Decimal | str | int = Decimal(100),
        reference_prices: Mapping[str, Decimal | str] | None = None,
        slippage_bps: Decimal | str | int = 0,
        unsolicited_cancel_after: float | None = None,
        send_pending_cancel: bool = True,
        pending_delay: float = 0.0,
        heartbeat_interval: int = 30,
        logon_timeout: float = 10.0,
        poll_interval: float = 0.2,
        store_dir: str | Path | None = None,
        reset_on_logon: bool = False,
        fsync: bool = True,
    ) -> None:
        if fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {', '.join(FILL_MODES)}, not {fill_mode!r}")
        if fill_interval <= 0:
            raise ValueError("fill_interval must be positive")
        if partial_fill_parts < 2:
            raise ValueError("partial_fill_parts must be at least 2")
        self.prices = PriceBook(reference_price, slippage_bps=slippage_bps, prices=reference_prices)
        if unsolicited_cancel_after is not None and unsolicited_cancel_after <= 0:
            raise ValueError("unsolicited_cancel_after must be positive")
        if pending_delay < 0:
            raise ValueError("pending_delay must not be negative")
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive")
        self.host = host
        self.port = port
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id
        self.fill_mode = fill_mode
        self.fill_interval = fill_interval
        self.partial_fill_parts = partial_fill_parts
        self.reject_symbols = frozenset(s.strip().upper() for s in reject_symbols if s.strip())
        # Acknowledged and left working, never filled by the simulator on its own (an
        # order resting away from the market): for amending and cancelling by hand.
        self.rest_symbols = frozenset(s.strip().upper() for s in rest_symbols if s.strip())
        self.reference_price = self.prices.default
        self.reset_on_logon = reset_on_logon
        self.unsolicited_cancel_after = unsolicited_cancel_after
        self.send_pending_cancel = send_pending_cancel
        self.pending_delay = pending_delay
        self.heartbeat_interval = heartbeat_interval
        self.logon_timeout = logon_timeout
        self.poll_interval = poll_interval

        self._lock = threading.RLock()
        self._sessions: dict[tuple[str, str], FixSession] = {}
        self._orders: dict[str, SimOrder] = {}  # by OrderID, in arrival order
        self._by_cl_ord_id: dict[tuple[tuple[str, str], str], SimOrder] = {}
        self._used_cl_ord_ids: set[tuple[tuple[str, str], str]] = set()
        # Allocation instructions by session and AllocID: their state (in memory only:
        # a restarted simulator has forgotten them, the acks it sent are journaled).
        self._allocations: dict[tuple[str, str], dict[str, str]] = {}
        self._run_id = timezone.now().strftime("%H%M%S") + secrets.token_hex(2).upper()
        self._counters = {"order": 1, "exec": 1}  # the next OrderID and ExecID numbers
        self._fill_tokens = itertools.count(1)
        self.received: list[tuple[str, list[tuple[int, str]]]] = []  # every application message
        self.session_rejects: list[list[tuple[int, str]]] = []  # Rejects (35=3) of what we sent
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connection_threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._scheduler = _Scheduler(self._run_locked)
        self.store: SimulatorStore | None = None
        if store_dir is not None:
            self.store = SimulatorStore(Path(store_dir) / f"{sender_comp_id}-{target_comp_id}", fsync=fsync)
            self._restore(self.store)

    def _restore(self, store: SimulatorStore) -> None:
        """The book and the ID counters as the store kept them; the session of our CompID
        pair exists from the start (a restored order may report before the Logon)."""
        try:
            orders = [order_from_record(record) for record in store.orders.values()]
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            store.close(checkpoint=False)
            raise StoreError(f"{store.directory}: an order record is unreadable ({exc!r})") from None
        if store.run_id is None:
            store.run_id = self._run_id
            store.checkpoint()
        self._run_id = store.run_id
        self._counters.update(store.counters)
        for order in orders:
            self._orders[order.order_id] = order
            for cl_ord_id in order.cl_ord_ids:
                self._by_cl_ord_id[(order.session_key, cl_ord_id)] = order
            self._used_cl_ord_ids.update((order.session_key, used) for used in order.used_cl_ord_ids)
        key = (self.sender_comp_id, self.target_comp_id)
        self._sessions[key] = self._make_session(*key)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> SimulatorServer:
        """Listen and serve in background threads; returns once listening."""
        listener = socket.create_server((self.host, self.port), reuse_port=False)
        listener.settimeout(self.poll_interval)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._scheduler.start()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="venue-sim-accept", daemon=True)
        self._accept_thread.start()
        if self.store is not None:
            with self._lock:
                self._resume()
                self._commit()
        logger.info(
            "SIM listening on %s:%s as %s for %s (fill mode %s)",
            self.host,
            self.port,
            self.sender_comp_id,
            self.target_comp_id,
            self.fill_mode,
        )
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Log out every connected counterparty, close the connections, stop the threads."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        now = time.monotonic()
        with self._lock:
            for session in self._sessions.values():
                if session.is_active:
                    session.logout("Venue simulator shutting down", now)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(s.transport is None for s in self._sessions.values()):
                    break
            time.sleep(0.05)
        with self._lock:
            for session in self._sessions.values():
                if session.transport is not None:
                    session.disconnect("venue simulator stopped")
        self._scheduler.stop()
        for thread in [self._accept_thread, *list(self._connection_threads)]:
            if thread is not None and thread.is_alive():
                thread.join(timeout=timeout)
        with self._lock:
            if self.store is not None:
                self.store.close()
        logger.info("SIM stopped")

    def _resume(self) -> None:
        """After a restart, the timed work of the orders still working starts again."""
        for order in self._orders.values():
            if order.pending is not None:
                pending = order.pending
                self._scheduler.call_later(self.pending_delay, lambda o=order, p=pending: self._complete_pending(o, p))
            elif not order.is_done:
                if self.fill_mode == FILL_PARTIAL:
                    order.fill_parts_remaining = max(order.fill_parts_remaining, 1)
                self._arrange_fills(order)
                if self.unsolicited_cancel_after is not None:
                    self._scheduler.call_later(
                        self.unsolicited_cancel_after, lambda o=order: self._unsolicited_cancel_due(o)
                    )

    def _commit(self) -> None:
        if self.store is not None:
            self.store.commit()

    def set_reference_prices(self, prices: Mapping[str, Decimal | str]) -> None:
        """Replace the reference prices fills are priced from (e.g. reloaded from the
        security master)."""
        self.prices.update(prices)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------ introspection
    @property
    def orders(self) -> dict[str, SimOrder]:
        """A snapshot of the order book by OrderID, in arrival order."""
        with self._lock:
            return copy.deepcopy(self._orders)

    def order(self, *, cl_ord_id: str | None = None, order_id: str | None = None) -> SimOrder | None:
        """A snapshot of one order, by OrderID or by any of its ClOrdIDs."""
        with self._lock:
            if order_id is not None:
                found = self._orders.get(order_id)
            else:
                found = next((o for o in self._orders.values() if cl_ord_id in o.cl_ord_ids), None)
            return copy.deepcopy(found)

    @property
    def allocations(self) -> dict[str, str]:
        """A snapshot of the allocation instructions received: AllocID -> state."""
        with self._lock:
            return {alloc_id: state for known in self._allocations.values() for alloc_id, state in known.items()}

    def session_for(self, target_comp_id: str | None = None) -> FixSession | None:
        with self._lock:
            return self._sessions.get((self.sender_comp_id, target_comp_id or self.target_comp_id))

    # ------------------------------------------------------- control hooks (tests)
    def fill(self, order_id: str, quantity: int, price: Decimal | None = None) -> str:
        """Execute ``quantity`` of a working order now; returns the ExecID."""
        with self._lock:
            order = self._require(order_id)
            if order.canceled or order.rejected or quantity <= 0 or quantity > order.leaves_qty:
                raise ValueError(f"cannot fill {quantity} of order {order_id} (leaves {order.leaves_qty})")
            return self._execute(order, quantity, price if price is not None else self._fill_price(order))

    def bust(self, exec_id: str) -> str:
        """Cancel an execution (ExecType H, ExecRefID = exec_id); returns the new ExecID."""
        with self._lock:
            for order in self._orders.values():
                for fill in order.fills:
                    if fill.exec_id == exec_id:
                        if fill.busted:
                            raise ValueError(f"execution {exec_id} is already busted")
                        fill.busted = True
                        return self._send_er(
                            order,
                            ET_TRADE_CANCEL,
                            extra=[(19, exec_id)],
                            text=f"Trade {exec_id} busted ({fill.quantity} @ {codec.fix_price(fill.price)})",
                        )
            raise ValueError(f"no execution {exec_id}")

    def cancel_unsolicited(self, order_id: str, *, reason: int = RESTATE_OTHER, text: str = "") -> str:
        """Cancel a working order on the venue's own initiative; returns the ExecID."""
        with self._lock:
            order = self._require(order_id)
            if order.is_done:
                raise ValueError(f"order {order_id} is not working ({order.status})")
            return self._cancel_unsolicited(order, reason, text or "Canceled by the venue")

    def restate(self, order_id: str, new_qty: int, *, reason: int | None = None, text: str = "") -> str:
        """Change a working order's quantity unsolicited (ExecType D); returns the ExecID.

        A decrease is a partial decline of OrderQty (378=5, FIX E.1.d), an increase a
        verbal change (378=2, E.1.c); down to the CumQty the order becomes Filled.
        """
        with self._lock:
            order = self._require(order_id)
            if order.canceled or order.rejected:
                raise ValueError(f"order {order_id} is not working ({order.status})")
            if new_qty < order.cum_qty or new_qty <= 0:
                raise ValueError(f"new quantity {new_qty} is below the executed {order.cum_qty}")
            if reason is None:
                reason = RESTATE_PARTIAL_DECLINE if new_qty < order.order_qty else RESTATE_VERBAL_CHANGE
            order.order_qty = new_qty
            exec_id = self._send_er(
                order,
                ET_RESTATED,
                extra=[(378, str(reason))],
                text=text or f"Order quantity restated to {new_qty}",
            )
            self._arrange_fills(order)
            return exec_id

    # ------------------------------------------------------------------ network
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                logger.exception("SIM accept failed")
                time.sleep(self.poll_interval)
                continue
            thread = threading.Thread(
                target=self._serve_connection,
                args=(sock, f"{address[0]}:{address[1]}"),
                name=f"venue-sim-{address[0]}:{address[1]}",
                daemon=True,
            )
            self._connection_threads.add(thread)
            thread.start()

    def _serve_connection(self, sock: socket.socket, peer: str) -> None:
        logger.info("SIM connection from %s", peer)
        sock.settimeout(10.0)  # bounds sendall on a peer that stops reading
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = _SocketTransport(sock, peer)
        session: FixSession | None = None
        try:
            session = self._first_logon(sock, transport, peer)
            if session is not None:
                self._pump(sock, transport, session, peer)
        except Exception:
            logger.exception("SIM connection %s failed", peer)
        finally:
            with self._lock:
                if session is not None and session.transport is transport:
                    session.disconnect("connection closed")
                self._commit()
            transport.close()
            self._connection_threads.discard(threading.current_thread())
            logger.info("SIM connection from %s closed", peer)

    def _recv(self, sock: socket.socket) -> bytes | None:
        """What one recv returns, b"" at EOF, None when nothing arrived in a poll interval."""
        try:
            readable, _, _ = select.select([sock], [], [], self.poll_interval)
        except (OSError, ValueError):
            return b""  # the socket was closed under us
        if not readable:
            return None
        try:
            return sock.recv(65536)
        except OSError:
            return b""  # reset by the peer, or closed by stop()

    def _first_logon(self, sock: socket.socket, transport: _SocketTransport, peer: str) -> FixSession | None:
        """Read up to the first complete message, pick the session its CompIDs name and
        attach the connection to it; None when the connection is refused."""
        framer = Framer()
        received = b""
        deadline = time.monotonic() + self.logon_timeout
        while not self._stopping.is_set():
            if time.monotonic() > deadline:
                logger.warning("SIM %s: no Logon within %ss", peer, self.logon_timeout)
                return None
            data = self._recv(sock)
            if data is None or transport.closed:
                continue
            if not data:
                return None
            received += data
            for message in _split_messages(data):
                logger.info("SIM IN  %s %s", peer, fix_text(message))
            frame = next((f for f in framer.feed(data) if f.message is not None), None)
            if frame is None:
                continue
            their_id = (frame.message.get(49) or b"").decode("latin-1")
            our_id = (frame.message.get(56) or b"").decode("latin-1")
            key = (our_id, their_id)
            now = time.monotonic()
            with self._lock:
                if key != (self.sender_comp_id, self.target_comp_id):
                    # A throwaway session answers (Reject, Logout) without touching the
                    # sequence numbers of a real counterparty.
                    logger.warning("SIM %s: unknown CompIDs %s->%s, refusing", peer, their_id, our_id)
                    stranger = self._make_session(self.sender_comp_id, self.target_comp_id, app=_Refusal())
                    stranger.connection_made(transport, now)
                    stranger.data_received(received, now)
                    return None
                session = self._sessions.get(key)
                if session is None:
                    session = self._make_session(our_id, their_id)
                    self._sessions[key] = session
                elif session.transport is not None:
                    logger.warning("SIM %s: %s is already connected, refusing a second connection", peer, their_id)
                    return None
                session.connection_made(transport, now)
                if self.reset_on_logon:
                    self._reset_for_logon(session, frame.message)
                session.data_received(received, now)
                self._commit()
            return session
        return None

    def _pump(self, sock: socket.socket, transport: _SocketTransport, session: FixSession, peer: str) -> None:
        while session.transport is transport and not transport.closed:
            data = self._recv(sock)
            now = time.monotonic()
            with self._lock:
                if session.transport is not transport:
                    return
                if data == b"":
                    session.disconnect("connection closed by the counterparty")
                    return
                if data:
                    for message in _split_messages(data):
                        logger.info("SIM IN  %s %s", peer, fix_text(message))
                    session.data_received(data, now)
                if session.transport is transport:
                    session.tick(now)
                self._commit()

    def _reset_for_logon(self, session: FixSession, logon) -> None:
        """ResetOnLogon: our numbering starts at 1, the counterparty's continues from its
        Logon, and our Logon says ResetSeqNumFlag=Y (a Logon that asks for the reset
        itself, 141=Y, is the session's to handle)."""
        seq = (logon.get(34) or b"").decode("latin-1")
        if logon.get(35) != b"A" or logon.get(141) == b"Y" or not seq.isdigit():
            return
        session.store.reset()
        session.store.set_next_target_seq(int(seq))
        session.announce_reset = True

    def _make_session(self, our_id: str, their_id: str, app=None) -> FixSession:
        config = SessionConfig(
            begin_string=FIX44,
            sender_comp_id=our_id,
            target_comp_id=their_id,
            heartbeat_interval=self.heartbeat_interval,
            role=Role.ACCEPTOR,
            logon_timeout=self.logon_timeout,
            accepts=ACCEPTED_MESSAGES,
        )
        store = self.store if self.store is not None and app is None else MemoryStore()
        return _SimSession(config, store, app if app is not None else self)

    def _run_locked(self, callback: Callable[[], None]) -> None:
        with self._lock:
            try:
                callback()
                self._commit()
            except Exception:
                # A timed event must never stop the scheduler.
                logger.exception("SIM timed event failed")

    # ------------------------------------------------- Application (FixSession)
    def on_logon(self, session: FixSession) -> None:
        logger.info(
            "SIM %s logged on (next out %s, next in %s)",
            session.config.target_comp_id,
            session.store.next_sender_seq(),
            session.store.next_target_seq(),
        )

    def on_logout(self, session: FixSession, reason: str) -> None:
        logger.info("SIM %s logged out: %s", session.config.target_comp_id, reason)

    def on_reject(self, session: FixSession, fields: list[tuple[int, str]]) -> None:
        self.session_rejects.append(fields)

    def on_fatal(self, session: FixSession, reason: str) -> None:
        logger.error("SIM %s: fatal session error: %s", session.config.target_comp_id, reason)

    def on_app_message(self, session: FixSession, seq: int, msg_type: str, fields: list[tuple[int, str]]) -> None:
        if self.store is not None:
            self.store.processing(seq)
        self.received.append((msg_type, fields))
        handler = {
            "D": self._on_new_order,
            "F": self._on_cancel_request,
            "G": self._on_replace_request,
            "H": self._on_status_request,
            codec.MSG_ALLOCATION_INSTRUCTION: self._on_allocation_instruction,
        }.get(msg_type)
        if handler is None:  # the session only passes the types in ``accepts``
            return
        key = (session.config.sender_comp_id, session.config.target_comp_id)
        try:
            # Repeating groups (allocations) need the fields in order; the rest read tags.
            handler(key, fields if msg_type == codec.MSG_ALLOCATION_INSTRUCTION else dict(reversed(fields)))
        except Exception as exc:
            # A bug here must not take the session down: answer and keep serving.
            logger.exception("SIM failed to process %s seq %s", msg_type, seq)
            session.send_admin(
                "j", [(45, str(seq)), (372, msg_type), (380, "0"), (58, f"Venue error: {exc}"[:200])], time.monotonic()
            )

    # --------------------------------------------------------------- new orders
    def _on_new_order(self, key: tuple[str, str], tags: dict[int, str]) -> None:
        cl_ord_id = tags[11]
        existing = self._by_cl_ord_id.get((key, cl_ord_id))
        order = SimOrder(
            order_id=self._next_order_id(),
            session_key=key,
            cl_ord_id=cl_ord_id,
            orig_cl_ord_id=None,
            account=tags.get(1),
            symbol=tags[55],
            side=tags[54],
            ord_type=tags[40],
            order_qty=0,
            price=None,
            stop_price=None,
            time_in_force=tags.get(59),
            currency=tags.get(15),
            cl_ord_ids=[cl_ord_id],
            requests=[("D", sorted(tags.items()))],
        )
        try:
            order.order_qty = _positive_int(tags[38], "OrderQty (38)")
            order.price = _price(tags.get(44), "Price (44)") if order.ord_type in PRICED_ORD_TYPES else None
            order.stop_price = _price(tags.get(99), "StopPx (99)") if tags.get(99) else None
            if (key, cl_ord_id) in self._used_cl_ord_ids:
                raise _Rejected(ORD_REJ_DUPLICATE, f"Duplicate ClOrdID {cl_ord_id}")
            if order.side not in SUPPORTED_SIDES:
                raise _Rejected(ORD_REJ_UNSUPPORTED, f"Side {order.side} not supported")
            if order.symbol.upper() in self.reject_symbols:
                raise _Rejected(ORD_REJ_UNKNOWN_SYMBOL, f"Unknown symbol {order.symbol}")
        except _Rejected as rejection:
            order.rejected = True
            order.reject_reason = rejection.text
            if rejection.reason == ORD_REJ_DUPLICATE and existing is not None:
                # FIX F.1.a: the reject of a duplicate carries the existing order's
                # OrderID, quantities and OrdStatus; the book keeps only the original.
                self._send_er(
                    existing,
                    ET_REJECTED,
                    extra=[(103, str(rejection.reason))],
                    text=rejection.text,
                )
                return
            self._orders[order.order_id] = order
            self._by_cl_ord_id[(key, cl_ord_id)] = order
            self._used_cl_ord_ids.add((key, cl_ord_id))
            self._send_er(order, ET_REJECTED, extra=[(103, str(rejection.reason))], text=rejection.text)
            return
        self._orders[order.order_id] = order
        self._by_cl_ord_id[(key, cl_ord_id)] = order
        self._used_cl_ord_ids.add((key, cl_ord_id))
        self._send_er(order, ET_NEW)
        if order.time_in_force in (TIF_IOC, TIF_FOK):
            self._execute_immediate_or_cancel(order)
            return
        if self.fill_mode == FILL_PARTIAL:
            order.fill_parts_remaining = self.partial_fill_parts
        self._arrange_fills(order)
        if self.unsolicited_cancel_after is not None:
            self._scheduler.call_later(self.unsolicited_cancel_after, lambda: self._unsolicited_cancel_due(order))

    def _execute_immediate_or_cancel(self, order: SimOrder) -> None:
        """IOC executes what the fill mode gives at once (all, one part, nothing) and
        cancels the rest; FOK executes all at once unless the mode fills nothing."""
        if self._fills_nothing(order):
            quantity = 0
        elif self.fill_mode == FILL_PARTIAL and order.time_in_force == TIF_IOC:
            quantity = max(order.order_qty // self.partial_fill_parts, 1)
        else:
            quantity = order.order_qty
        if quantity:
            self._execute(order, quantity, self._fill_price(order))
        if not order.is_done:
            order.canceled = True
            kind = "IOC" if order.time_in_force == TIF_IOC else "FOK"
            self._send_er(order, ET_CANCELED, text=f"{kind}: {order.order_qty - order.cum_qty} not executed, canceled")

    def _unsolicited_cancel_due(self, order: SimOrder) -> None:
        if not order.is_done:
            self._cancel_unsolicited(
                order,
                RESTATE_MARKET_OPTION,
                f"Canceled by the venue after {self.unsolicited_cancel_after:g}s (unsolicited)",
            )

    def _cancel_unsolicited(self, order: SimOrder, reason: int, text: str) -> str:
        pending, order.pending = order.pending, None
        order.canceled = True
        order.fill_timer = 0
        exec_id = self._send_er(order, ET_CANCELED, extra=[(378, str(reason))], text=text)
        if pending is not None:
            # The request that was pending can no longer take effect.
            self._send_cancel_reject(
                order.session_key,
                order,
                {11: pending.cl_ord_id, 41: pending.orig_cl_ord_id},
                RESPONSE_TO_CANCEL if pending.kind == "F" else RESPONSE_TO_REPLACE,
                CXL_REJ_TOO_LATE,
                order.status,
                "Too late: the venue canceled the order",
            )
        return exec_id

    # ------------------------------------------------------------------- fills
    def _fill_price(self, order: SimOrder) -> Decimal:
        limit = order.price if order.ord_type in PRICED_ORD_TYPES else None
        return self.prices.fill_price(order.symbol, order.side, limit, f"{order.order_id}:{len(order.fills)}")

    def _fills_nothing(self, order: SimOrder) -> bool:
        return self.fill_mode == FILL_NONE or order.symbol.upper() in self.rest_symbols

    def _arrange_fills(self, order: SimOrder) -> None:
        """Start executing the open quantity the way the fill mode says."""
        if order.is_done or self._fills_nothing(order):
            return
        if self.fill_mode == FILL_IMMEDIATE:
            self._execute(order, order.leaves_qty, self._fill_price(order))
            return
        if order.fill_timer:
            return  # a chain is already running; it picks up the new quantity
        order.fill_parts_remaining = max(order.fill_parts_remaining, 1)
        self._schedule_fill(order)

    def _schedule_fill(self, order: SimOrder) -> None:
        token = next(self._fill_tokens)
        order.fill_timer = token
        self._scheduler.call_later(self.fill_interval, lambda: self._fill_due(order, token))

    def _fill_due(self, order: SimOrder, token: int) -> None:
        if order.fill_timer != token:
            return  # voided by a cancel
        order.fill_timer = 0
        if order.is_done:
            return
        parts = max(order.fill_parts_remaining, 1)
        quantity = order.leaves_qty if parts == 1 else max(order.leaves_qty // parts, 1)
        order.fill_parts_remaining = parts - 1
        self._execute(order, quantity, self._fill_price(order))
        if not order.is_done:
            order.fill_parts_remaining = max(order.fill_parts_remaining, 1)
            self._schedule_fill(order)

    def _execute(self, order: SimOrder, quantity: int, price: Decimal) -> str:
        # Fills while a request is pending stay on the current (original) ClOrdID.
        exec_id = self._next_exec_id()
        order.fills.append(Fill(exec_id, quantity, price, order.cl_ord_id))
        self._send_er(
            order,
            ET_TRADE,
            exec_id=exec_id,
            extra=[(32, str(quantity)), (31, codec.fix_price(price))],
        )
        return exec_id

    # ---------------------------------------------------- cancel and replace
    def _on_cancel_request(self, key: tuple[str, str], tags: dict[int, str]) -> None:
        self._on_change_request("F", key, tags)

    def _on_replace_request(self, key: tuple[str, str], tags: dict[int, str]) -> None:
        self._on_change_request("G", key, tags)

    def _on_change_request(self, kind: str, key: tuple[str, str], tags: dict[int, str]) -> None:
        cl_ord_id, orig_cl_ord_id = tags[11], tags[41]
        response_to = RESPONSE_TO_CANCEL if kind == "F" else RESPONSE_TO_REPLACE
        order = self._by_cl_ord_id.get((key, orig_cl_ord_id))
        if order is None:
            # FIX B.1.f: unknown order, OrdStatus Rejected, OrderID NONE; the
            # OrigClOrdID is not consumed.
            self._send_cancel_reject(
                key,
                None,
                tags,
                response_to,
                CXL_REJ_UNKNOWN_ORDER,
                OS_REJECTED,
                f"Unknown order {orig_cl_ord_id}",
            )
            return
        order.requests.append((kind, sorted(tags.items())))
        try:
            if (key, cl_ord_id) in self._used_cl_ord_ids:
                raise _Rejected(CXL_REJ_DUPLICATE_CL_ORD_ID, f"Duplicate ClOrdID {cl_ord_id}")
            if order.pending is not None:
                raise _Rejected(CXL_REJ_ALREADY_PENDING, "Order already has a cancel or replace request pending")
            pending = PendingRequest(kind, cl_ord_id, order.cl_ord_id)
            if kind == "F":
                if order.is_done:
                    raise _Rejected(CXL_REJ_TOO_LATE, f"Too late to cancel: order is {STATUS_NAMES[order.status]}")
            else:
                self._check_replace(order, tags, pending)
        except _Rejected as rejection:
            self._send_cancel_reject(key, order, tags, response_to, rejection.reason, order.status, rejection.text)
            return
        self._used_cl_ord_ids.add((key, cl_ord_id))
        order.request_ids.append(cl_ord_id)
        order.pending = pending
        if kind == "G" or self.send_pending_cancel:
            self._send_er(
                order,
                ET_PENDING_CANCEL if kind == "F" else ET_PENDING_REPLACE,
                cl_ord_id=cl_ord_id,
                orig_cl_ord_id=order.cl_ord_id,
            )
        if self.pending_delay > 0:
            self._scheduler.call_later(self.pending_delay, lambda: self._complete_pending(order, pending))
        else:
            self._complete_pending(order, pending)

    def _check_replace(self, order: SimOrder, tags: dict[int, str], pending: PendingRequest) -> None:
        if order.canceled or order.rejected:
            raise _Rejected(CXL_REJ_TOO_LATE, f"Too late to replace: order is {STATUS_NAMES[order.status]}")
        if tags[55] != order.symbol or tags[54] != order.side:
            raise _Rejected(CXL_REJ_OTHER, "Symbol (55) and Side (54) cannot be changed")
        try:
            pending.order_qty = _positive_int(tags[38], "OrderQty (38)")
            pending.ord_type = tags[40]
            pending.price = _price(tags.get(44), "Price (44)") if pending.ord_type in PRICED_ORD_TYPES else None
            pending.stop_price = _price(tags.get(99), "StopPx (99)") if tags.get(99) else None
        except _Rejected as rejection:
            raise _Rejected(CXL_REJ_OTHER, rejection.text) from None
        pending.time_in_force = tags.get(59, order.time_in_force)
        if order.is_done and pending.order_qty <= order.cum_qty:
            # FIX C.2.a; a quantity increase on a filled order is accepted (C.1.c).
            raise _Rejected(CXL_REJ_TOO_LATE, "Too late to replace: order is filled")

    def _complete_pending(self, order: SimOrder, pending: PendingRequest) -> None:
        if order.pending is not pending:
            return
        order.pending = None
        response_to = RESPONSE_TO_CANCEL if pending.kind == "F" else RESPONSE_TO_REPLACE
        request_tags = {11: pending.cl_ord_id, 41: pending.orig_cl_ord_id}
        if order.canceled or order.rejected or (pending.kind == "F" and order.is_done):
            # Filled or canceled while the request was pending (FIX B.1.c row 7).
            self._send_cancel_reject(
                order.session_key,
                order,
                request_tags,
                response_to,
                CXL_REJ_TOO_LATE,
                order.status,
                f"Too late: order is {STATUS_NAMES[order.status]}",
            )
            return
        if pending.kind == "G" and order.is_done and (pending.order_qty or 0) <= order.cum_qty:
            self._send_cancel_reject(
                order.session_key,
                order,
                request_tags,
                response_to,
                CXL_REJ_TOO_LATE,
                order.status,
                "Too late to replace: order is filled",
            )
            return
        order.orig_cl_ord_id = order.cl_ord_id
        order.cl_ord_id = pending.cl_ord_id
        order.cl_ord_ids.append(pending.cl_ord_id)
        self._by_cl_ord_id[(order.session_key, pending.cl_ord_id)] = order
        if pending.kind == "F":
            order.canceled = True
            order.fill_timer = 0
            self._send_er(order, ET_CANCELED)
            return
        assert pending.order_qty is not None
        requested = pending.order_qty
        # FIX C.3.b/C.3.c: a quantity at or below CumQty stops the order at CumQty.
        order.order_qty = max(requested, order.cum_qty)
        order.ord_type = pending.ord_type or order.ord_type
        order.price = pending.price
        order.stop_price = pending.stop_price
        order.time_in_force = pending.time_in_force
        text = f"Requested {requested} is not above the executed {order.cum_qty}" if requested < order.cum_qty else ""
        self._send_er(order, ET_REPLACED, text=text)
        self._arrange_fills(order)

    # ---------------------------------------------------------- status request
    def _on_status_request(self, key: tuple[str, str], tags: dict[int, str]) -> None:
        order = None
        if tags.get(37):
            order = self._orders.get(tags[37])
            if order is not None and order.session_key != key:
                order = None
        if order is None:
            order = self._by_cl_ord_id.get((key, tags[11]))
        extra = [(790, tags[790])] if tags.get(790) else []
        if order is not None:
            order.requests.append(("H", sorted(tags.items())))
            self._send_er(order, ET_ORDER_STATUS, exec_id="0", extra=extra)
            return
        # FIX: a status request for an unknown order is answered with OrdStatus
        # Rejected and OrdRejReason 5 (unknown order).
        body = [
            (37, "NONE"),
            (11, tags[11]),
            (17, "0"),
            (150, ET_ORDER_STATUS),
            (39, OS_REJECTED),
            (103, str(ORD_REJ_UNKNOWN_ORDER)),
            (55, tags[55]),
            (54, tags[54]),
            (151, "0"),
            (14, "0"),
            (6, "0"),
            (60, codec.utc_timestamp(timezone.now())),
            *extra,
            (58, f"Unknown order {tags[11]}"),
        ]
        self._send(key, "8", body)

    # ------------------------------------------------------------- allocations
    def _on_allocation_instruction(self, key: tuple[str, str], fields: list[tuple[int, str]]) -> None:
        """Received at once, then Accepted after the fill interval; a block level reject
        at once; a cancel Accepted at once (``simulator_allocations``)."""
        known = self._allocations.setdefault(key, {})
        decision = allocation_decide(
            fields, known=known, supported_sides=SUPPORTED_SIDES, reject_symbols=self.reject_symbols
        )
        if not decision.accepted:
            known.setdefault(decision.alloc_id, ALLOC_REJECTED)
            self._send_allocation_ack(key, decision, decision.status)
            return
        if decision.ref_alloc_id:
            known[decision.ref_alloc_id] = ALLOC_CANCELLED if decision.trans_type == TRANS_CANCEL else ALLOC_REPLACED
        if decision.trans_type == TRANS_CANCEL:
            known[decision.alloc_id] = ALLOC_ACCEPTED
            self._send_allocation_ack(key, decision, codec.ALLOC_STATUS_ACCEPTED)
            return
        known[decision.alloc_id] = ALLOC_RECEIVED
        self._send_allocation_ack(key, decision, codec.ALLOC_STATUS_RECEIVED)
        self._scheduler.call_later(self.fill_interval, lambda: self._allocation_accept_due(key, decision))

    def _allocation_accept_due(self, key: tuple[str, str], decision: AllocationDecision) -> None:
        known = self._allocations.get(key, {})
        if known.get(decision.alloc_id) != ALLOC_RECEIVED:
            return  # cancelled or replaced before being accepted
        known[decision.alloc_id] = ALLOC_ACCEPTED
        self._send_allocation_ack(key, decision, codec.ALLOC_STATUS_ACCEPTED)

    def _send_allocation_ack(self, key: tuple[str, str], decision: AllocationDecision, status: str) -> None:
        # A sent message like any other: journaled (with the counters) before the wire.
        self._send(key, codec.MSG_ALLOCATION_INSTRUCTION_ACK, allocation_ack_body(decision, status, timezone.now()))

    # ------------------------------------------------------------------ sending
    def _send_er(
        self,
        order: SimOrder,
        exec_type: str,
        *,
        exec_id: str | None = None,
        cl_ord_id: str | None = None,
        orig_cl_ord_id: str | None = None,
        extra: Iterable[tuple[int, str]] = (),
        text: str = "",
    ) -> str:
        """An ExecutionReport with the order's current state; returns the ExecID."""
        exec_id = exec_id or self._next_exec_id()
        cl_ord_id = cl_ord_id or order.cl_ord_id
        orig_cl_ord_id = orig_cl_ord_id if cl_ord_id != order.cl_ord_id else order.orig_cl_ord_id
        if exec_type == ET_TRADE:
            orig_cl_ord_id = None  # fills name the order version they executed (FIX C.1.b)
        body: list[tuple[int, str]] = [(37, order.order_id), (11, cl_ord_id)]
        if orig_cl_ord_id and exec_type in (ET_PENDING_CANCEL, ET_PENDING_REPLACE, ET_CANCELED, ET_REPLACED):
            body.append((41, orig_cl_ord_id))
        body += [(17, exec_id), (150, exec_type), (39, order.status)]
        if order.account:
            body.append((1, order.account))
        body += [(55, order.symbol), (54, order.side), (38, str(order.order_qty)), (40, order.ord_type)]
        if order.price is not None:
            body.append((44, codec.fix_price(order.price)))
        if order.stop_price is not None:
            body.append((99, codec.fix_price(order.stop_price)))
        if order.time_in_force:
            body.append((59, order.time_in_force))
        if order.currency:
            body.append((15, order.currency))
        # LastQty/LastPx (32/31) come in ``extra`` for trades.
        body += list(extra)
        body += [
            (151, str(order.leaves_qty)),
            (14, str(order.cum_qty)),
            (6, codec.fix_price(order.avg_px)),
            (60, codec.utc_timestamp(timezone.now())),
        ]
        if text:
            body.append((58, text[:200]))
        self._send(order.session_key, "8", body, order)
        return exec_id

    def _send_cancel_reject(
        self,
        key: tuple[str, str],
        order: SimOrder | None,
        tags: dict[int, str],
        response_to: str,
        reason: int,
        ord_status: str,
        text: str,
    ) -> None:
        body: list[tuple[int, str]] = [
            (37, order.order_id if order is not None else "NONE"),
            (11, tags[11]),
            (41, tags[41]),
            (39, ord_status),
        ]
        account = order.account if order is not None else tags.get(1)
        if account:
            body.append((1, account))
        body += [
            (434, response_to),
            (102, str(reason)),
            (60, codec.utc_timestamp(timezone.now())),
            (58, text[:200]),
        ]
        self._send(key, "9", body, order)

    def _send(
        self, key: tuple[str, str], msg_type: str, body: list[tuple[int, str]], order: SimOrder | None = None
    ) -> None:
        """Send (or, the counterparty away, store) a message; with a store, the record of
        the order it reports on is journaled with it (before it goes on the wire)."""
        if self.store is not None:
            self.store.stage([order_record(order)] if order is not None else [], self._counters)
        session = self._sessions[key]
        now = time.monotonic()
        if session.is_active:
            session.send_app(msg_type, body, now)
            return
        # The counterparty is away: sequence and store the message as a venue does, so
        # the ResendRequest that follows its next Logon recovers it.
        store = session.store
        seq = store.next_sender_seq()
        raw = session.encode(msg_type, body, seq)
        store.save_outbound(seq, msg_type, raw)
        store.set_next_sender_seq(seq + 1)
        logger.info("SIM OUT (stored, %s not logged on) %s", key[1], fix_text(raw))

    # -------------------------------------------------------------------- misc
    def _require(self, order_id: str) -> SimOrder:
        order = self._orders.get(order_id)
        if order is None:
            raise ValueError(f"no order {order_id}")
        return order

    def _next_id(self, kind: str, letter: str) -> str:
        number = self._counters[kind]
        self._counters[kind] = number + 1
        return f"{self._run_id}-{letter}{number}"

    def _next_order_id(self) -> str:
        return self._next_id("order", "O")

    def _next_exec_id(self) -> str:
        return self._next_id("exec", "X")


__all__ = ["FILL_MODES", "Fill", "PendingRequest", "SimOrder", "SimulatorServer", "StoreError"]
