"""Real-TCP harness for the FIX session tests.

``InitiatorDriver`` runs our ``FixSession`` as initiator on a real socket: a thread
that ``recv``s, feeds ``data_received`` and calls ``tick``. ``ScriptedPeer`` is the
counterparty: a raw socket server that reads our frames (checking BodyLength and
CheckSum itself, independently of our framer) and writes hand-built ones, good or
deliberately broken.
"""

from __future__ import annotations

import datetime as dt
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import simplefix

from routing.fix import codec
from routing.fix.session import FixSession, MemoryStore, Role, SessionConfig

OUR_ID = "OMS"
PEER_ID = "BROKER"
SOH = b"\x01"
WAIT = 10.0  # generous: a loaded 2-core machine


def wait_until(predicate: Callable[[], object], timeout: float = WAIT, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.01)


def sending_time(offset_seconds: float = 0.0) -> str:
    return codec.utc_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds))


def checksum(data: bytes) -> str:
    return f"{sum(data) % 256:03d}"


def frame_bytes(
    body: bytes, begin_string: str = "FIX.4.4", *, body_length: int | None = None, check: str | None = None
):
    """A frame around ``body`` (the fields after BodyLength, each ending in SOH), with
    an honest or a lying BodyLength and CheckSum."""
    head = b"8=" + begin_string.encode() + SOH + b"9=" + str(len(body) if body_length is None else body_length).encode()
    data = head + SOH + body
    return data + b"10=" + (check or checksum(data)).encode() + SOH


def build_message(
    msg_type: str,
    body: list[tuple[int, str]] = (),
    *,
    seq: int,
    begin_string: str = "FIX.4.4",
    poss_dup: bool = False,
    orig_sending_time: str | None = None,
    sender: str = PEER_ID,
    target: str = OUR_ID,
) -> bytes:
    """A well-formed frame from the counterparty, encoded by simplefix."""
    msg = simplefix.FixMessage()
    msg.append_pair(8, begin_string, header=True)
    msg.append_pair(35, msg_type, header=True)
    msg.append_pair(49, sender, header=True)
    msg.append_pair(56, target, header=True)
    msg.append_pair(34, seq, header=True)
    msg.append_pair(52, sending_time(), header=True)
    if poss_dup:
        msg.append_pair(43, "Y", header=True)
        msg.append_pair(122, orig_sending_time or sending_time(-60), header=True)
    for tag, value in body:
        msg.append_pair(tag, value)
    return msg.encode()


def wrong_checksum(frame: bytes) -> bytes:
    """``frame`` with its CheckSum off by one."""
    wrong = (int(frame[-4:-1]) + 1) % 256
    return frame[:-4] + f"{wrong:03d}".encode() + SOH


def parse_fields(raw: bytes) -> list[tuple[int, str]]:
    parser = simplefix.FixParser(allow_empty_values=True)
    parser.append_buffer(raw)
    return [(int(tag), value.decode()) for tag, value in parser.get_message().pairs]


# ----------------------------------------------------------------------- our side
class RecordingApp:
    """The Application protocol, recording every callback (thread-safe enough: lists
    appended from the driver thread, read by the test)."""

    def __init__(self) -> None:
        self.logons = 0
        self.logouts: list[str] = []
        self.messages: list[tuple[int, str, list[tuple[int, str]]]] = []
        self.rejects: list[list[tuple[int, str]]] = []
        self.fatals: list[str] = []

    def on_logon(self, session) -> None:
        self.logons += 1

    def on_logout(self, session, reason: str) -> None:
        self.logouts.append(reason)

    def on_app_message(self, session, seq, msg_type, fields) -> None:
        self.messages.append((seq, msg_type, fields))

    def on_reject(self, session, fields) -> None:
        self.rejects.append(fields)

    def on_fatal(self, session, reason: str) -> None:
        self.fatals.append(reason)

    def exec_ids(self) -> list[str]:
        return [dict(fields).get(17, "") for _, _, fields in self.messages]


class SocketTransport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


class InitiatorDriver:
    """Our FixSession as initiator over a real socket."""

    def __init__(self, config: SessionConfig, port: int, store: MemoryStore | None = None) -> None:
        self.app = RecordingApp()
        self.store = store or MemoryStore()
        self.session = FixSession(config=config, store=self.store, app=self.app)
        self.lock = threading.RLock()  # the session is not thread-safe: one caller at a time
        self.errors: list[BaseException] = []
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock.setblocking(False)
        self.transport = SocketTransport(self.sock)
        self._stop = threading.Event()
        with self.lock:
            self.session.connection_made(self.transport, time.monotonic())
        self.thread = threading.Thread(target=self._run, name="fix-initiator", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and not self.transport.closed:
                readable, _, _ = select.select([self.sock], [], [], 0.02)
                with self.lock:
                    if self.transport.closed:
                        break
                    if readable:
                        try:
                            data = self.sock.recv(65536)
                        except (BlockingIOError, InterruptedError):
                            data = None
                        except OSError:
                            data = b""
                        if data == b"":
                            self.transport.close()
                            self.session.connection_lost("closed by counterparty")
                            break
                        if data:
                            self.session.data_received(data, time.monotonic())
                    self.session.tick(time.monotonic())
        except BaseException as exc:  # reported by the fixture: the session must never raise
            self.errors.append(exc)
            self.transport.close()

    def call(self, fn: Callable[..., object], *args: object) -> object:
        """Run ``fn(*args, now)`` on the session under the lock."""
        with self.lock:
            return fn(*args, time.monotonic())

    @property
    def disconnected(self) -> bool:
        return self.transport.closed

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(WAIT)
        self.transport.close()


# --------------------------------------------------------------------- their side
@dataclass
class Received:
    raw: bytes
    fields: list[tuple[int, str]]

    def get(self, tag: int) -> str | None:
        for t, v in self.fields:
            if t == tag:
                return v
        return None

    def __getitem__(self, tag: int) -> str:
        value = self.get(tag)
        if value is None:
            raise KeyError(f"tag {tag} not in {self.fields}")
        return value

    @property
    def type(self) -> str:
        return self[35]

    @property
    def seq(self) -> int:
        return int(self[34])


@dataclass
class ScriptedPeer:
    """The counterparty (acceptor): accepts one connection, then does as told."""

    begin_string: str = "FIX.4.4"
    next_seq: int = 1
    server: socket.socket = field(init=False)
    conn: socket.socket | None = field(init=False, default=None)
    buffer: bytes = field(init=False, default=b"")
    received: list[Received] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.server.settimeout(WAIT)

    @property
    def port(self) -> int:
        return self.server.getsockname()[1]

    def accept(self) -> None:
        self.conn, _ = self.server.accept()
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        for sock in (self.conn, self.server):
            if sock is not None:
                sock.close()

    # -------------------------------------------------------------------- writing
    def build(self, msg_type: str, body: list[tuple[int, str]] = (), *, seq: int | None = None, **kwargs) -> bytes:
        """A well-formed frame; takes the next sequence number unless ``seq`` is given."""
        if seq is None:
            seq, self.next_seq = self.next_seq, self.next_seq + 1
        kwargs.setdefault("begin_string", self.begin_string)
        return build_message(msg_type, body, seq=seq, **kwargs)

    def send(self, msg_type: str, body: list[tuple[int, str]] = (), **kwargs) -> bytes:
        raw = self.build(msg_type, body, **kwargs)
        self.send_raw(raw)
        return raw

    def send_raw(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def raw_body(
        self, msg_type: str, body: list[tuple[int, str]], *, seq: int | None = None, header: bool = True
    ) -> bytes:
        """The bytes after BodyLength (header and body fields) for hand-made frames;
        ``header=False`` leaves out SendingTime."""
        if seq is None:
            seq, self.next_seq = self.next_seq, self.next_seq + 1
        pairs = [(35, msg_type), (49, PEER_ID), (56, OUR_ID), (34, str(seq))]
        if header:
            pairs.append((52, sending_time()))
        return b"".join(f"{tag}={value}".encode() + SOH for tag, value in [*pairs, *body])

    # -------------------------------------------------------------------- reading
    def _frame(self) -> bytes | None:
        """One complete frame off the buffer, checked strictly: our encoder must be right."""
        if not self.buffer:
            return None
        assert self.buffer.startswith(b"8="), f"garbage from the session: {self.buffer[:80]!r}"
        head_end = self.buffer.find(SOH)
        len_end = self.buffer.find(SOH, head_end + 1)
        if head_end < 0 or len_end < 0:
            return None
        assert self.buffer[head_end + 1 : head_end + 3] == b"9=", self.buffer[:80]
        body_end = len_end + 1 + int(self.buffer[head_end + 3 : len_end])
        if len(self.buffer) < body_end + 7:
            return None
        raw, self.buffer = self.buffer[: body_end + 7], self.buffer[body_end + 7 :]
        assert raw[body_end:].startswith(b"10=") and raw.endswith(SOH), f"BodyLength wrong in {raw!r}"
        assert raw[body_end + 3 : body_end + 6].decode() == checksum(raw[:body_end]), f"CheckSum wrong in {raw!r}"
        return raw

    def _fill(self, deadline: float) -> bool:
        """Read more; False on EOF."""
        assert self.conn is not None
        self.conn.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            data = self.conn.recv(65536)
        except TimeoutError:
            return True
        except ConnectionResetError:
            return False
        if not data:
            return False
        self.buffer += data
        return True

    def next_message(self, timeout: float = WAIT) -> Received | None:
        """The next message from the session; None on timeout or EOF."""
        deadline = time.monotonic() + timeout
        while True:
            raw = self._frame()
            if raw is not None:
                received = Received(raw, parse_fields(raw))
                self.received.append(received)
                return received
            if time.monotonic() >= deadline or not self._fill(deadline):
                return None

    def expect(self, msg_type: str, timeout: float = WAIT, *, skip_heartbeats: bool = True) -> Received:
        """The next message, which must be of ``msg_type`` (Heartbeats in between are
        skipped unless a Heartbeat is what we expect)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next_message(max(0.0, deadline - time.monotonic()))
            assert message is not None, f"expected 35={msg_type}, got nothing (received so far: {self.types()})"
            if skip_heartbeats and message.type == "0" and msg_type != "0":
                continue
            assert message.type == msg_type, f"expected 35={msg_type}, got {message.fields}"
            return message

    def expect_silence(self, duration: float = 0.5) -> None:
        message = self.next_message(duration)
        assert message is None, f"expected nothing, got {message.fields}"

    def expect_disconnect(self, timeout: float = WAIT) -> list[Received]:
        """Read until EOF; returns what came before it."""
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        before: list[Received] = []
        while True:
            message = self.next_message(0)
            if message is not None:
                before.append(message)
                continue
            if time.monotonic() > deadline:
                raise AssertionError("the session did not disconnect")
            if not self._fill(deadline):
                while (message := self.next_message(0)) is not None:
                    before.append(message)
                return before

    def types(self) -> list[str]:
        return [m.type for m in self.received]

    # ----------------------------------------------------------------- scenarios
    def logon(self, *, heartbeat: int = 30, reset: bool = False, seq: int | None = None) -> Received:
        """Accept the connection, read our Logon, answer it."""
        self.accept()
        logon = self.expect("A")
        body = [(98, "0"), (108, str(heartbeat))]
        if reset:
            body.append((141, "Y"))
        self.send("A", body, seq=seq)
        return logon


def execution_report(exec_id: str, *, begin_string: str = "FIX.4.4", **overrides: str | None) -> list[tuple[int, str]]:
    """A valid ExecutionReport body (order acknowledged); ``overrides`` by tag name
    ``t<tag>`` replace or (value None) drop fields."""
    body = [
        (37, "V-1"),
        (11, "C-1"),
        (17, exec_id),
        (150, "0"),
        (39, "0"),
        (55, "ACME"),
        (54, "1"),
        (38, "100"),
        (151, "100"),
        (14, "0"),
        (6, "0"),
    ]
    if begin_string == "FIX.4.2":
        body.insert(3, (20, "0"))
    for name, value in overrides.items():
        tag = int(name[1:])
        if value is None:
            body = [(t, v) for t, v in body if t != tag]
        elif any(t == tag for t, _ in body):
            body = [(t, value if t == tag else v) for t, v in body]
        else:
            body.append((tag, value))
    return body


def make_config(**overrides) -> SessionConfig:
    values = dict(
        begin_string="FIX.4.4",
        sender_comp_id=OUR_ID,
        target_comp_id=PEER_ID,
        heartbeat_interval=30,
        role=Role.INITIATOR,
        logon_timeout=WAIT,
        logout_timeout=WAIT,
    )
    values.update(overrides)
    return SessionConfig(**values)
