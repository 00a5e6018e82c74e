"""A minimal scripted FIX venue for hosting tests: our own ``FixSession`` as acceptor
over real TCP on localhost. It acknowledges each NewOrderSingle and fully fills it
(``fill=True``), answers OrderStatusRequests with ExecType I, ignores a PossDup
NewOrderSingle it has already taken, and records everything it received."""

from __future__ import annotations

import itertools
import select
import socket
import threading
import time

from routing.fix.session import FixSession, MemoryStore, Role, SessionConfig, first


class RecordingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[int, str, dict[int, str]]] = []

    def accept_inbound(self, seq, msg_type, fields, raw):
        super().accept_inbound(seq, msg_type, fields, raw)
        self.received.append((seq, msg_type, dict(fields)))


class _Transport:
    def __init__(self, sock):
        self.sock = sock

    def write(self, raw):
        self.sock.sendall(raw)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class ScriptedVenue:
    def __init__(self, *, sender_comp_id="SIM", target_comp_id="OMS", fill=True, heartbeat=30):
        self.fill = fill
        self.store = RecordingStore()
        self.config = SessionConfig(
            begin_string="FIX.4.4",
            sender_comp_id=sender_comp_id,
            target_comp_id=target_comp_id,
            heartbeat_interval=heartbeat,
            role=Role.ACCEPTOR,
            accepts=frozenset("DFGH"),
        )
        self.lock = threading.RLock()
        self.session: FixSession | None = None
        self.connections = 0
        self.logons = 0
        self.orders: dict[str, dict[int, str]] = {}  # ClOrdID -> NewOrderSingle
        self.cum: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(5)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> ScriptedVenue:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        self.drop()
        self._thread.join(5)

    def drop(self) -> None:
        """Cut the connection without a Logout (a network failure)."""
        with self.lock:
            if self.session is not None and self.session.transport is not None:
                self.session.disconnect("dropped by the test")

    # ------------------------------------------------------------------ queries
    def app_messages(self, msg_type: str | None = None) -> list[tuple[int, str, dict[int, str]]]:
        with self.lock:
            return [m for m in self.store.received if msg_type is None or m[1] == msg_type]

    # ------------------------------------------------------------------- server
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self._server], [], [], 0.1)
                if not readable:
                    continue
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            self._run_connection(conn)

    def _run_connection(self, conn: socket.socket) -> None:
        with self.lock:
            self.session = FixSession(config=self.config, store=self.store, app=self)
            self.session.connection_made(_Transport(conn), time.monotonic())
        session = self.session
        while not self._stop.is_set() and session.transport is not None:
            try:
                readable, _, _ = select.select([conn], [], [], 0.05)
                if readable:
                    data = conn.recv(65536)
                    with self.lock:
                        if not data:
                            session.transport = None
                            session.connection_lost("closed by the OMS")
                            break
                        session.data_received(data, time.monotonic())
                with self.lock:
                    session.tick(time.monotonic())
            except OSError:
                with self.lock:
                    if session.transport is not None:
                        session.transport = None
                        session.connection_lost("socket error")
                break
        conn.close()

    # -------------------------------------------------------- Application API
    def on_logon(self, session):
        self.logons += 1

    def on_logout(self, session, reason):
        pass

    def on_reject(self, session, fields):
        pass

    def on_fatal(self, session, reason):
        pass

    def on_app_message(self, session, seq, msg_type, fields):
        tags = dict(fields)
        if msg_type == "D":
            if tags[11] in self.orders:
                return  # a PossDup resend of an order we already have
            self.orders[tags[11]] = tags
            self.cum[tags[11]] = 0
            self.execution(tags[11], exec_type="0", ord_status="0", cum=0)
            if self.fill:
                self.execution(tags[11], exec_type="F", ord_status="2", cum=int(tags[38]), last_px=tags.get(44, "100"))
        elif msg_type == "H":
            order = self.orders.get(tags[11])
            if order is not None:
                cum = self.cum[tags[11]]
                status = "2" if cum >= int(order[38]) else "1" if cum else "0"
                self.execution(tags[11], exec_type="I", ord_status=status, cum=cum, status_req_id=tags.get(790))

    def execution(self, cl_ord_id, *, exec_type, ord_status, cum, last_px=None, status_req_id=None):
        order = self.orders[cl_ord_id]
        qty = int(order[38])
        last_qty = cum - self.cum[cl_ord_id] if exec_type == "F" else 0
        self.cum[cl_ord_id] = cum
        body = [
            (37, f"V-{cl_ord_id}"),
            (11, cl_ord_id),
            (17, f"E{next(self._ids)}-{time.time_ns()}"),
            (150, exec_type),
            (39, ord_status),
            (55, order[55]),
            (54, order[54]),
            (38, str(qty)),
            (151, str(qty - cum)),
            (14, str(cum)),
            (6, str(last_px or order.get(44, "0") if cum else "0")),
        ]
        if exec_type == "F":
            body += [(32, str(last_qty)), (31, str(last_px))]
        if status_req_id:
            body.append((790, status_req_id))
        with self.lock:
            self.session.send_app("8", body, time.monotonic())


__all__ = ["ScriptedVenue", "first"]
