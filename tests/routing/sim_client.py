"""A small FIX initiator for tests: our FixSession on a real socket.

A thread reads the socket (feeding each ``recv`` to ``data_received``) and ticks the
session; application messages are collected for the test to wait on. Every complete
frame received is also kept raw, so a test can check what the counterparty sent even
when the session refused it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from routing.fix.framing import Framer
from routing.fix.session import FixSession, MemoryStore, Role, SessionConfig, fields_of


@dataclass
class Received:
    seq: int
    msg_type: str
    fields: list[tuple[int, str]]

    def get(self, tag: int, default: str | None = None) -> str | None:
        for t, v in self.fields:
            if t == tag:
                return v
        return default

    def __getitem__(self, tag: int) -> str:
        value = self.get(tag)
        if value is None:
            raise KeyError(tag)
        return value


class SimClient:
    def __init__(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        sender_comp_id: str = "OMS",
        target_comp_id: str = "SIM",
        heartbeat_interval: int = 30,
        store: MemoryStore | None = None,
        reset_on_logon: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.store = store if store is not None else MemoryStore()
        self.config = SessionConfig(
            begin_string="FIX.4.4",
            sender_comp_id=sender_comp_id,
            target_comp_id=target_comp_id,
            heartbeat_interval=heartbeat_interval,
            role=Role.INITIATOR,
            reset_on_logon=reset_on_logon,
        )
        self.session = FixSession(self.config, self.store, self)
        self.messages: list[Received] = []
        self.raw_frames: list[list[tuple[int, str]]] = []  # every valid frame received
        self.logged_on = threading.Event()
        self.logged_out = threading.Event()
        self.rejects: list[list[tuple[int, str]]] = []
        self.fatal: list[str] = []
        self._cond = threading.Condition(threading.RLock())
        self._consumed: set[int] = set()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._framer = Framer()

    # ------------------------------------------------------------ Application
    def on_logon(self, session: FixSession) -> None:
        self.logged_on.set()

    def on_logout(self, session: FixSession, reason: str) -> None:
        self.logged_out.set()

    def on_app_message(self, session: FixSession, seq: int, msg_type: str, fields: list[tuple[int, str]]) -> None:
        with self._cond:
            self.messages.append(Received(seq, msg_type, fields))
            self._cond.notify_all()

    def on_reject(self, session: FixSession, fields: list[tuple[int, str]]) -> None:
        self.rejects.append(fields)

    def on_fatal(self, session: FixSession, reason: str) -> None:
        self.fatal.append(reason)

    # ------------------------------------------------------------- transport
    def write(self, data: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(data)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    # ----------------------------------------------------------------- control
    def connect(self, timeout: float = 10.0) -> SimClient:
        self.logged_on.clear()
        self.logged_out.clear()
        self._framer = Framer()
        self._sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self._sock.settimeout(0.2)
        with self._cond:
            self.session.connection_made(self, time.monotonic())
        self._thread = threading.Thread(target=self._loop, args=(self._sock,), daemon=True)
        self._thread.start()
        if not self.logged_on.wait(timeout):
            raise AssertionError("no Logon answer from the simulator")
        return self

    def _loop(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = None
            except OSError:
                data = b""
            with self._cond:
                if self.session.transport is not self or self._sock is not sock:
                    return
                now = time.monotonic()
                if data == b"":
                    self.session.disconnect("connection closed by the simulator")
                    self._cond.notify_all()
                    return
                if data:
                    for frame in self._framer.feed(data):
                        if frame.message is not None:
                            self.raw_frames.append(fields_of(frame.message))
                    self.session.data_received(data, now)
                self.session.tick(now)
                self._cond.notify_all()

    def send(self, msg_type: str, fields: list[tuple[int, str]]) -> int:
        with self._cond:
            seq, _ = self.session.send_app(msg_type, fields, time.monotonic())
            return seq

    def logout(self, timeout: float = 5.0) -> None:
        with self._cond:
            if self.session.is_active:
                self.session.logout("bye", time.monotonic())
        self.logged_out.wait(timeout)
        with self._cond:
            if self.session.transport is not None:
                self.session.disconnect("logout timeout")
        if self._thread is not None:
            self._thread.join(timeout)

    def drop(self) -> None:
        """Close the socket without a Logout (a network failure)."""
        with self._cond:
            self.session.disconnect("dropped by the test")
        if self._thread is not None:
            self._thread.join(5)

    # ----------------------------------------------------------------- waiting
    def expect(
        self,
        predicate: Callable[[Received], bool] = lambda m: True,
        *,
        msg_type: str | None = None,
        timeout: float = 15.0,
        **tags: str,
    ) -> Received:
        """The first not yet consumed application message that matches, consumed."""
        wanted = {int(name.lstrip("t")): value for name, value in tags.items()}

        def matches(message: Received) -> bool:
            if msg_type is not None and message.msg_type != msg_type:
                return False
            if any(message.get(tag) != value for tag, value in wanted.items()):
                return False
            return predicate(message)

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, message in enumerate(self.messages):
                    if index not in self._consumed and matches(message):
                        self._consumed.add(index)
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no message {msg_type} {wanted} within {timeout}s; got: "
                        + "; ".join(f"{m.msg_type} {dict(m.fields)}" for m in self.messages)
                    )
                self._cond.wait(min(remaining, 0.2))

    def unconsumed(self) -> list[Received]:
        with self._cond:
            return [m for i, m in enumerate(self.messages) if i not in self._consumed]
