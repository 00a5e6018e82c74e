"""The FIX session layer (FIX 4.4 Vol. 2 session rules), without I/O.

``FixSession`` owns sequence numbers, logon/logout, heartbeats and test requests, gap
detection and resend requests, answering resend requests from the message store,
sequence resets, and session-level rejects. It writes through a ``transport`` (anything
with ``write(bytes)`` and ``close()``) and persists through a ``store`` (see
``SessionStore``); the caller feeds it received bytes (``data_received``) and the
time (``tick``). The same class runs as initiator (the OMS towards a venue) and as
acceptor (the venue simulator, scripted counterparties in tests).

The inbox is written per received chunk (DESIGN §4.3): application messages accepted
while processing what one ``data_received`` was handed are buffered, with the expected
sequence number advanced in memory, and stored together with that number in one
atomic store call (``accept_inbound_batch``) at the end of the chunk, and earlier
wherever the stored state has to be current: before we send anything (a Reject, a
ResendRequest, a Heartbeat answering a TestRequest, a Logout, resends), before a
sequence reset or a disconnect, before any other callback to the application, and
every ``INBOUND_BATCH_MAX`` messages. A chunk of application messages, with heartbeats
and gap fills among them, is one transaction. The application hears of a message only
after it is stored. A process that dies before the flush has stored nothing of the
chunk and advanced nothing, so the counterparty's resend brings it again.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import simplefix
from django.utils import timezone

from . import codec
from .framing import Frame, Framer
from .stores import InboundRecord, MemoryStore  # noqa: F401 (MemoryStore: re-exported for the session's users)

logger = logging.getLogger(__name__)

ADMIN_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})
HEADER_TAGS = frozenset({8, 9, 35, 49, 56, 34, 52, 43, 97, 122, 10, 115, 128, 50, 57})
# At most this many application messages per store transaction: a resend burst or a
# long queue drained after a gap is stored in slices, each with its own seq advance.
INBOUND_BATCH_MAX = 500


class Role(enum.Enum):
    INITIATOR = "initiator"
    ACCEPTOR = "acceptor"


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    LOGON_SENT = "logon_sent"  # initiator waiting for the Logon answer
    AWAITING_LOGON = "awaiting_logon"  # acceptor waiting for the Logon
    ACTIVE = "active"
    LOGOUT_SENT = "logout_sent"


@dataclass
class SessionConfig:
    begin_string: str
    sender_comp_id: str
    target_comp_id: str
    heartbeat_interval: int = 30
    role: Role = Role.INITIATOR
    reset_on_logon: bool = False
    logon_timeout: float = 10.0
    logout_timeout: float = 5.0
    # Application message types this side takes (the rest: BusinessMessageReject): the
    # OMS initiator's ExecutionReport, OrderCancelReject, BusinessMessageReject and
    # AllocationInstructionAck.
    accepts: frozenset[str] = frozenset({"8", "9", "j", "P"})


class Application(Protocol):
    """What the session tells its owner."""

    def on_logon(self, session: FixSession) -> None: ...
    def on_logout(self, session: FixSession, reason: str) -> None: ...
    def on_app_message(self, session: FixSession, seq: int, msg_type: str, fields: list[tuple[int, str]]) -> None:
        """An application message, already stored (``accept_inbound_batch``); called in
        sequence order, after any gap before it was filled."""

    def on_reject(self, session: FixSession, fields: list[tuple[int, str]]) -> None:
        """A session-level Reject (35=3) of something we sent."""

    def on_fatal(self, session: FixSession, reason: str) -> None:
        """An error that a reconnect would only repeat (e.g. MsgSeqNum too low): the
        owner must alert and not reconnect by itself."""


class SessionReject(Exception):
    """A message fails session-level validation: answer with Reject (35=3)."""

    def __init__(self, reason: int, text: str, ref_tag: int | None = None):
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.ref_tag = ref_tag


# SessionRejectReason (373)
REJ_INVALID_TAG = 0
REJ_REQUIRED_TAG_MISSING = 1
REJ_UNDEFINED_TAG = 3
REJ_TAG_WITHOUT_VALUE = 4
REJ_VALUE_INCORRECT = 5
REJ_DATA_FORMAT = 6
REJ_COMP_ID = 9
REJ_SENDING_TIME = 10
REJ_INVALID_MSG_TYPE = 11
REJ_OTHER = 99


def fields_of(message: simplefix.FixMessage) -> list[tuple[int, str]]:
    return [(int(tag), value.decode("latin-1")) for tag, value in message.pairs]


def first(fields: list[tuple[int, str]], tag: int) -> str | None:
    for t, v in fields:
        if t == tag:
            return v
    return None


@dataclass
class _Timers:
    last_sent: float = 0.0
    last_received: float = 0.0
    test_request_id: str | None = None
    test_request_sent: float = 0.0
    state_since: float = 0.0


@dataclass
class FixSession:
    config: SessionConfig
    store: Any
    app: Any
    transport: Any = None
    state: State = State.DISCONNECTED
    timers: _Timers = field(default_factory=_Timers)
    # Messages that arrived past a gap, waiting for the gap to be filled.
    queued: dict[int, Frame] = field(default_factory=dict)
    resend_requested_to: int = 0  # highest seq our outstanding ResendRequest covers
    resend_requested_at: float = 0.0
    resend_timeout: float = 10.0  # ask again if the gap is still open after this long
    peer_heartbeat: int = 0
    # Application messages of the chunk being processed, accepted but not yet stored,
    # and the expected number past everything the chunk consumed (None: the store's
    # number is current). See ``flush_inbound``.
    _inbound: list[InboundRecord] = field(default_factory=list)
    _target_ahead: int | None = None
    _framer: Framer = field(default_factory=Framer)
    _test_ids: Any = field(default_factory=lambda: itertools.count(1))

    # ----------------------------------------------------------------- connection
    def connection_made(self, transport: Any, now: float) -> None:
        self.flush_inbound()  # nothing is left from an earlier connection, normally
        self.transport = transport
        self._framer = Framer()
        self.queued.clear()
        self.resend_requested_to = 0
        self.timers = _Timers(last_sent=now, last_received=now, state_since=now)
        if self.config.role is Role.INITIATOR:
            if self.config.reset_on_logon:
                self.store.reset()
            logon = [(98, "0"), (108, str(self.config.heartbeat_interval))]
            if self.config.reset_on_logon:
                logon.append((141, "Y"))
            self._set_state(State.LOGON_SENT, now)
            self.send_admin("A", logon, now)
        else:
            self._set_state(State.AWAITING_LOGON, now)

    def connection_lost(self, reason: str) -> None:
        # The transport is dead: nothing may be written (or numbered) on it any more.
        self.transport = None
        try:
            self.flush_inbound()  # what arrived before the end is kept
        finally:
            if self.state is not State.DISCONNECTED:
                self.state = State.DISCONNECTED
                self.app.on_logout(self, reason)

    def disconnect(self, reason: str) -> None:
        try:
            self.flush_inbound()
        finally:
            logger.info("FIX %s->%s disconnect: %s", self.config.sender_comp_id, self.config.target_comp_id, reason)
            transport, self.transport = self.transport, None
            if transport is not None:
                transport.close()
            self.connection_lost(reason)

    def _set_state(self, state: State, now: float) -> None:
        self.state = state
        self.timers.state_since = now

    @property
    def is_active(self) -> bool:
        return self.state is State.ACTIVE

    # ------------------------------------------------------------------- sending
    def _header(self, msg_type: str, seq: int, sending_time: dt.datetime) -> simplefix.FixMessage:
        msg = simplefix.FixMessage()
        msg.append_pair(8, self.config.begin_string, header=True)
        msg.append_pair(35, msg_type, header=True)
        msg.append_pair(49, self.config.sender_comp_id, header=True)
        msg.append_pair(56, self.config.target_comp_id, header=True)
        msg.append_pair(34, seq, header=True)
        msg.append_pair(52, codec.utc_timestamp(sending_time), header=True)
        return msg

    def encode(
        self, msg_type: str, body: list[tuple[int, str]] | list[list], seq: int, *, sending_time=None, poss_dup_of=None
    ) -> bytes:
        sending_time = sending_time or timezone.now()
        msg = self._header(msg_type, seq, sending_time)
        if poss_dup_of is not None:
            msg.append_pair(43, "Y", header=True)
            msg.append_pair(122, poss_dup_of, header=True)
        for tag, value in body:
            msg.append_pair(int(tag), value)
        return msg.encode()

    def _write(self, raw: bytes, now: float) -> None:
        if self.transport is None:
            raise ConnectionError("not connected")
        self.transport.write(raw)
        self.timers.last_sent = now

    def send_admin(self, msg_type: str, body: list[tuple[int, str]], now: float) -> int:
        # Whatever we answer, the sequence state it answers is stored first (and before
        # this message takes its number: a flush hands messages to the application,
        # which may send too).
        self.flush_inbound()
        seq = self.store.next_sender_seq()
        raw = self.encode(msg_type, body, seq)
        self.store.save_outbound(seq, msg_type, raw)
        self.store.set_next_sender_seq(seq + 1)
        self._write(raw, now)
        return seq

    def send_app(self, msg_type: str, body: list[tuple[int, str]] | list[list], now: float) -> tuple[int, bytes]:
        """Stamp, store and send an application message; returns (seq, raw)."""
        seq, raw = self.prepare_app(msg_type, body)
        self._write(raw, now)
        return seq, raw

    def prepare_app(self, msg_type: str, body: list[tuple[int, str]] | list[list]) -> tuple[int, bytes]:
        """Stamp and store without sending: for an owner that persists the outbox state
        in the same transaction and writes after the commit (``write_prepared``)."""
        if not self.is_active:
            raise ConnectionError("session not logged on")
        seq = self.store.next_sender_seq()
        raw = self.encode(msg_type, body, seq)
        self.store.save_outbound(seq, msg_type, raw)
        self.store.set_next_sender_seq(seq + 1)
        return seq, raw

    def write_prepared(self, raw: bytes, now: float) -> None:
        self._write(raw, now)

    def logout(self, text: str, now: float) -> None:
        if self.transport is None:
            return
        body = [(58, text)] if text else []
        self.send_admin("5", body, now)
        self._set_state(State.LOGOUT_SENT, now)

    def send_reject(
        self, ref_seq: int, reason: int, text: str, now: float, ref_tag: int | None = None, ref_type: str | None = None
    ) -> None:
        body: list[tuple[int, str]] = [(45, str(ref_seq))]
        if ref_tag is not None:
            body.append((371, str(ref_tag)))
        if ref_type:
            body.append((372, ref_type))
        body += [(373, str(reason)), (58, text[:200])]
        self.send_admin("3", body, now)

    # ----------------------------------------------------------------- receiving
    def data_received(self, data: bytes, now: float) -> None:
        self.frames_received(self._framer.feed(data), now)

    def frames_received(self, frames: list[Frame], now: float) -> None:
        """What one received chunk held, already cut into frames (by an owner that
        frames the stream once for its own use too, such as the inbound message log)."""
        try:
            for frame in frames:
                if self.transport is None:
                    return
                if frame.message is None:
                    logger.warning("FIX garbled message dropped (%s): %r", frame.error, frame.raw[:200])
                    continue
                self.timers.last_received = now
                self._receive(frame, now)
        finally:
            # Also when processing stopped half-way (a write failed): what was accepted
            # in sequence before that is stored.
            self.flush_inbound()

    # ---------------------------------------------------------------- the inbox
    def next_target_seq(self) -> int:
        """The MsgSeqNum expected next: the store's, or past what the chunk being
        processed consumed and has not stored yet."""
        return self.store.next_target_seq() if self._target_ahead is None else self._target_ahead

    def _consume(self, next_seq: int) -> None:
        """Move the expected number forward (an admin message, a reject, a gap fill);
        stored with the chunk's messages by ``flush_inbound``."""
        self._target_ahead = next_seq

    def _accept_app(self, seq: int, msg_type: str, fields: list[tuple[int, str]], raw: bytes) -> None:
        self._inbound.append(InboundRecord(seq, msg_type, fields, raw))
        self._target_ahead = seq + 1
        if len(self._inbound) >= INBOUND_BATCH_MAX:
            self.flush_inbound()

    def flush_inbound(self) -> None:
        """Store the accepted application messages and the expected number past them in
        one atomic store call, then hand the messages to the application in order. If
        the store fails, nothing was stored and the number did not move: the buffer is
        dropped (the session must end; the counterparty resends on the next logon)."""
        target, messages = self._target_ahead, self._inbound
        if target is None:
            return
        self._target_ahead, self._inbound = None, []
        if messages:
            self.store.accept_inbound_batch(messages, next_target_seq=target)
        else:
            self.store.set_next_target_seq(target)
        for message in messages:
            body = [(t, v) for t, v in message.fields if t not in HEADER_TAGS]
            self.app.on_app_message(self, message.seq, message.msg_type, body)

    def _receive(self, frame: Frame, now: float) -> None:
        msg = frame.message
        fields = fields_of(msg)
        msg_type = first(fields, 35) or ""
        seq_text = first(fields, 34)
        begin = first(fields, 8)
        if begin != self.config.begin_string:
            self.logout(f"Incorrect BeginString {begin}", now)
            self.disconnect(f"incorrect BeginString {begin}")
            return
        if seq_text is None or not seq_text.isdigit():
            # No usable MsgSeqNum: cannot be sequenced; FIX says log out.
            self.logout("MsgSeqNum (34) missing or invalid", now)
            self.disconnect("message without a valid MsgSeqNum")
            return
        seq = int(seq_text)

        if self.state in (State.LOGON_SENT, State.AWAITING_LOGON) and msg_type != "A":
            if msg_type == "5":
                # The counterparty refused the Logon: it is closing, nothing to answer.
                self.disconnect(f"Logon refused: {first(fields, 58) or 'no reason given'}")
                return
            logger.error("FIX %s: first message not a Logon (35=%s)", self.config.target_comp_id, msg_type)
            if self.config.role is Role.INITIATOR:
                # Our Logon is out: tell the venue why (an acceptor says nothing to an
                # unidentified peer).
                self.logout("First message not a Logon", now)
            self.disconnect(f"first message was {msg_type!r}, not Logon")
            return
        if first(fields, 49) != self.config.target_comp_id or first(fields, 56) != self.config.sender_comp_id:
            wrong_tag = 49 if first(fields, 49) != self.config.target_comp_id else 56
            self.send_reject(seq, REJ_COMP_ID, "CompID problem", now, ref_tag=wrong_tag, ref_type=msg_type)
            self.logout("Incorrect SenderCompID or TargetCompID", now)
            self.disconnect("CompID mismatch")
            return

        if msg_type == "A":
            self._on_logon(fields, seq, now)
            return
        if msg_type == "4" and first(fields, 123) != "Y":
            self._on_sequence_reset(fields, seq, now)
            return

        expected = self.next_target_seq()
        if seq > expected:
            if msg_type == "5":
                self._on_logout(now)
                return
            if msg_type == "2":
                # Answer a ResendRequest at once even past a gap (each side waiting for
                # the other's resend would stall); its number is consumed in order later.
                self._on_resend_request(fields, seq, now)
                self.queued[seq] = Frame(b"", _heartbeat_placeholder(self.config, seq))
            else:
                self.queued[seq] = frame
            self._request_resend(expected, seq, now)
            return
        if seq < expected:
            if first(fields, 43) == "Y":
                return  # a duplicate we already processed
            text = f"MsgSeqNum too low, expecting {expected} but received {seq}"
            logger.error("FIX %s: %s", self.config.target_comp_id, text)
            self.logout(text, now)
            self.disconnect(text)
            self.app.on_fatal(self, text)
            return
        self._process_in_sequence(frame, fields, msg_type, seq, now)
        self._drain_queue(now)

    def _drain_queue(self, now: float) -> None:
        while self.transport is not None:
            expected = self.next_target_seq()
            # Anything queued below the expected number was filled by a gap fill.
            for stale in [s for s in self.queued if s < expected]:
                del self.queued[stale]
            frame = self.queued.pop(expected, None)
            if frame is None:
                break
            fields = fields_of(frame.message)
            self._process_in_sequence(frame, fields, first(fields, 35) or "", expected, now)
        if not self.queued:
            self.resend_requested_to = 0

    def _request_resend(self, expected: int, received: int, now: float) -> None:
        if self.resend_requested_to:
            # Our outstanding request (EndSeqNo 0: everything from BeginSeqNo on)
            # already covers this message: asking again would only double the resend.
            return
        self.resend_requested_to = received - 1
        self.resend_requested_at = now
        # EndSeqNo 0: "all messages after BeginSeqNo" (FIX 4.4); the gap is filled by
        # what is resent, and the queued messages then follow in order.
        self.send_admin("2", [(7, str(expected)), (16, "0")], now)

    def _process_in_sequence(
        self, frame: Frame, fields: list[tuple[int, str]], msg_type: str, seq: int, now: float
    ) -> None:
        if first(fields, 52) is None:
            # A required header field: Reject, and the number is consumed.
            self._consume(seq + 1)
            self.send_reject(seq, REJ_REQUIRED_TAG_MISSING, "Required tag missing: 52", now, 52, msg_type)
            return
        if first(fields, 43) == "Y" and first(fields, 122) is None and msg_type not in ("4",):
            # PossDup without OrigSendingTime: reject, but the number is consumed.
            self._consume(seq + 1)
            self.send_reject(
                seq, REJ_REQUIRED_TAG_MISSING, "OrigSendingTime (122) required with PossDupFlag", now, 122, msg_type
            )
            return
        if msg_type in ADMIN_TYPES:
            self._consume(seq + 1)
            problem = _admin_problem(msg_type, fields)
            if problem is not None:
                reason, ref_tag, text = problem
                logger.warning("FIX %s: rejecting seq %s: %s", self.config.target_comp_id, seq, text)
                self.send_reject(seq, reason, text, now, ref_tag, msg_type)
                return
            self._on_admin(fields, msg_type, seq, now)
            return
        try:
            codec.validate_inbound(msg_type, fields, self.config.begin_string, self.config.accepts)
        except codec.UnsupportedMessage as exc:
            self._consume(seq + 1)
            self.send_admin("j", [(45, str(seq)), (372, msg_type), (380, str(exc.reason)), (58, exc.text[:200])], now)
            return
        except codec.InvalidMessage as exc:
            self._consume(seq + 1)
            logger.warning("FIX %s: rejecting seq %s: %s", self.config.target_comp_id, seq, exc.text)
            self.send_reject(seq, exc.reason, exc.text, now, exc.ref_tag, msg_type)
            return
        self._accept_app(seq, msg_type, fields, frame.raw)

    # ------------------------------------------------------------ admin messages
    def _on_logon(self, fields: list[tuple[int, str]], seq: int, now: float) -> None:
        heartbeat = first(fields, 108)
        if heartbeat is None or not heartbeat.isdigit():
            self.logout("HeartBtInt (108) missing or invalid", now)
            self.disconnect("bad Logon")
            return
        reset = first(fields, 141) == "Y"
        if reset:
            self.flush_inbound()  # the stored numbers are about to be replaced
        if self.state is State.AWAITING_LOGON:
            if reset:
                self.store.reset()
            self.peer_heartbeat = int(heartbeat)
            self.config.heartbeat_interval = int(heartbeat)
            answer = [(98, "0"), (108, heartbeat)]
            if reset:
                answer.append((141, "Y"))
            self._set_state(State.ACTIVE, now)
            self.send_admin("A", answer, now)
        elif self.state is State.LOGON_SENT:
            if reset and not self.config.reset_on_logon:
                # The venue reset: our next outbound is 2 (the Logon was 1).
                self.store.set_next_target_seq(1)
            self._set_state(State.ACTIVE, now)
        elif self.state is State.ACTIVE and reset:
            # A Logon with ResetSeqNumFlag during the session resets both sides.
            self.store.reset()
            self.store.set_next_target_seq(seq + 1)
            self.send_admin("A", [(98, "0"), (108, str(self.config.heartbeat_interval)), (141, "Y")], now)
            return
        else:
            self.disconnect("unexpected Logon")
            return
        expected = self.next_target_seq()
        if seq < expected and not reset:
            text = f"MsgSeqNum too low, expecting {expected} but received {seq}"
            self.logout(text, now)
            self.disconnect(text)
            self.app.on_fatal(self, text)
            return
        if seq > expected:
            # Logon is processed despite the gap; then ask for what we missed.
            self._request_resend(expected, seq, now)
            # The Logon itself is not queued: mark its number as received once the gap
            # is filled by remembering it as an admin placeholder.
            self.queued[seq] = Frame(b"", _heartbeat_placeholder(self.config, seq))
        else:
            self._consume(seq + 1)
        self.flush_inbound()
        self.app.on_logon(self)

    def _on_admin(self, fields: list[tuple[int, str]], msg_type: str, seq: int, now: float) -> None:
        if msg_type == "0":
            test_id = first(fields, 112)
            if test_id is not None and test_id == self.timers.test_request_id:
                self.timers.test_request_id = None
        elif msg_type == "1":
            self.send_admin("0", [(112, first(fields, 112) or "")], now)  # 112 checked present
        elif msg_type == "2":
            self._on_resend_request(fields, seq, now)
        elif msg_type == "3":
            logger.error("FIX %s rejected our message: %s", self.config.target_comp_id, fields)
            self.flush_inbound()
            self.app.on_reject(self, fields)
        elif msg_type == "4":  # gap fill (reset mode is handled before sequencing)
            new_seq = first(fields, 36)
            if new_seq is None or not new_seq.isdigit():
                self.send_reject(seq, REJ_REQUIRED_TAG_MISSING, "NewSeqNo (36) required", now, 36, "4")
            elif int(new_seq) <= seq:
                self.send_reject(seq, REJ_VALUE_INCORRECT, "NewSeqNo must be higher than MsgSeqNum", now, 36, "4")
            else:
                self._consume(int(new_seq))
        elif msg_type == "5":
            self._on_logout(now)

    def _on_logout(self, now: float) -> None:
        if self.state is State.LOGOUT_SENT:
            self.disconnect("logout confirmed")
        else:
            self.logout("", now)
            self.disconnect("logout requested by counterparty")

    def _on_sequence_reset(self, fields: list[tuple[int, str]], seq: int, now: float) -> None:
        new_seq = first(fields, 36)
        expected = self.next_target_seq()
        if new_seq is None or not new_seq.isdigit():
            self.send_reject(seq, REJ_REQUIRED_TAG_MISSING, "NewSeqNo (36) required", now, 36, "4")
            return
        if int(new_seq) < expected:
            self.send_reject(seq, REJ_VALUE_INCORRECT, f"NewSeqNo {new_seq} below expected {expected}", now, 36, "4")
            return
        self.flush_inbound()  # a reset sets the stored number directly
        self.store.set_next_target_seq(int(new_seq))
        self._drain_queue(now)

    def _on_resend_request(self, fields: list[tuple[int, str]], seq: int, now: float) -> None:
        self.flush_inbound()  # as before any answer (send_admin)
        begin_text, end_text = first(fields, 7), first(fields, 16)
        if not (begin_text and begin_text.isdigit() and end_text is not None and end_text.isdigit()):
            self.send_reject(seq, REJ_REQUIRED_TAG_MISSING, "BeginSeqNo (7) and EndSeqNo (16) required", now, 7, "2")
            return
        begin = int(begin_text)
        last_sent = self.store.next_sender_seq() - 1
        end = last_sent if int(end_text) in (0, 999999) or int(end_text) > last_sent else int(end_text)
        stored = {s: (t, raw) for s, t, raw in self.store.outbound_range(begin, end)}
        gap_start: int | None = None
        for number in range(begin, end + 1):
            entry = stored.get(number)
            if entry is None or entry[0] in ADMIN_TYPES:
                if gap_start is None:
                    gap_start = number
                continue
            if gap_start is not None:
                self._send_gap_fill(gap_start, number, now)
                gap_start = None
            self._resend(number, entry[1], now)
        if gap_start is not None:
            self._send_gap_fill(gap_start, end + 1, now)

    def _send_gap_fill(self, seq: int, new_seq: int, now: float) -> None:
        raw = self.encode("4", [(123, "Y"), (36, str(new_seq))], seq, poss_dup_of=codec.utc_timestamp(timezone.now()))
        self._write(raw, now)

    def _resend(self, seq: int, original: bytes, now: float) -> None:
        parser = simplefix.FixParser()
        parser.append_buffer(original)
        message = parser.get_message()
        fields = fields_of(message)
        body = [(t, v) for t, v in fields if t not in HEADER_TAGS]
        raw = self.encode(first(fields, 35) or "", body, seq, poss_dup_of=first(fields, 52))
        self._write(raw, now)

    # --------------------------------------------------------------------- timers
    def tick(self, now: float) -> None:
        """Heartbeats, test requests and timeouts; call at least once a second."""
        if self.transport is None:
            return
        t = self.timers
        if self.state in (State.LOGON_SENT, State.AWAITING_LOGON):
            if now - t.state_since > self.config.logon_timeout:
                self.disconnect("no Logon answer")
            return
        if self.state is State.LOGOUT_SENT:
            if now - t.state_since > self.config.logout_timeout:
                self.disconnect("no Logout answer")
            return
        if self.resend_requested_to and self.queued and now - self.resend_requested_at > self.resend_timeout:
            # The resend did not fill the gap (a frame lost or garbled on the way):
            # without asking again every later message would wait in the queue forever.
            expected = self.next_target_seq()
            logger.warning("FIX %s: gap from %s still open, asking again", self.config.target_comp_id, expected)
            self.resend_requested_to = 0
            self._request_resend(expected, max(self.queued), now)
        interval = self.config.heartbeat_interval
        if interval <= 0:
            return  # HeartBtInt 0: the counterparty asked for no heartbeats
        if t.test_request_id is not None and now - t.test_request_sent > interval:
            self.disconnect("TestRequest not answered")
            return
        if t.test_request_id is None and now - t.last_received > interval * 1.2 + 1:
            t.test_request_id = f"TEST-{next(self._test_ids)}"
            t.test_request_sent = now
            self.send_admin("1", [(112, t.test_request_id)], now)
            return
        if now - t.last_sent >= interval:
            self.send_admin("0", [], now)


# Required body fields of the admin messages whose handling depends on them.
ADMIN_REQUIRED = {"1": (112,), "3": (45,), "4": (36,), "2": (7, 16)}


def _admin_problem(msg_type: str, fields: list[tuple[int, str]]) -> tuple[int, int, str] | None:
    """(SessionRejectReason, RefTagID, text) when an admin message is unusable."""
    for tag, value in fields:
        if value == "":
            return REJ_TAG_WITHOUT_VALUE, tag, f"Tag {tag} specified without a value"
    present = {tag for tag, _ in fields}
    for tag in ADMIN_REQUIRED.get(msg_type, ()):
        if tag not in present:
            return REJ_REQUIRED_TAG_MISSING, tag, f"Required tag missing: {tag}"
    return None


def _heartbeat_placeholder(config: SessionConfig, seq: int) -> simplefix.FixMessage:
    """Stands in for a Logon that arrived with a gap before it: once the gap is
    filled its sequence number is consumed like any admin message."""
    msg = simplefix.FixMessage()
    msg.append_pair(8, config.begin_string, header=True)
    msg.append_pair(35, "0", header=True)
    msg.append_pair(49, config.target_comp_id, header=True)
    msg.append_pair(56, config.sender_comp_id, header=True)
    msg.append_pair(34, seq, header=True)
    msg.append_pair(52, codec.utc_timestamp(timezone.now()), header=True)
    return msg
