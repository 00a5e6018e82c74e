"""What a FIX session persists through (``SessionStore``), the record of an inbound
application message, and ``MemoryStore`` for the simulator, scripted counterparties
and unit tests. The worker's store on PostgreSQL is ``routing.store.DbStore``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class InboundRecord(NamedTuple):
    """An application message accepted in sequence, as the store keeps it."""

    seq: int
    msg_type: str
    fields: list[tuple[int, str]]
    raw: bytes


def inbound_batch_target(messages: Sequence[InboundRecord], next_target_seq: int | None) -> int:
    """The expected number after storing ``messages``: checks they are in ascending
    MsgSeqNum order and that ``next_target_seq`` (default: past the last) is past them."""
    if not messages:
        raise ValueError("an inbound batch holds at least one message")
    for earlier, later in zip(messages, messages[1:], strict=False):
        if later.seq <= earlier.seq:
            raise ValueError(f"inbound batch out of order: {later.seq} after {earlier.seq}")
    last = messages[-1].seq
    if next_target_seq is None:
        return last + 1
    if next_target_seq <= last:
        raise ValueError(f"next target seq {next_target_seq} does not pass the last message {last}")
    return next_target_seq


class SessionStore(Protocol):
    """What a session persists so a restart continues where it stopped."""

    def next_sender_seq(self) -> int: ...
    def next_target_seq(self) -> int: ...
    def set_next_sender_seq(self, seq: int) -> None: ...
    def set_next_target_seq(self, seq: int) -> None: ...
    def save_outbound(self, seq: int, msg_type: str, raw: bytes) -> None:
        """Keep a sent message for resends and the audit trail."""

    def outbound_range(self, begin: int, end: int) -> list[tuple[int, str, bytes]]:
        """Stored outbound messages with begin <= seq <= end, in order."""

    def accept_inbound(self, seq: int, msg_type: str, fields: list[tuple[int, str]], raw: bytes) -> None:
        """Store an inbound message and advance the expected sequence number past it,
        atomically (the inbox rule of DESIGN §4.3)."""

    def accept_inbound_batch(self, messages: Sequence[InboundRecord], *, next_target_seq: int | None = None) -> None:
        """Store the messages (ascending MsgSeqNum) and set the expected sequence number
        to ``next_target_seq`` (default: past the last one), atomically: all or nothing."""

    def reset(self) -> None:
        """Both sequence numbers back to 1 (ResetSeqNumFlag)."""


class MemoryStore:
    """A store in memory: the simulator, scripted counterparties, unit tests."""

    def __init__(self) -> None:
        self.sender_seq = 1
        self.target_seq = 1
        self.outbound: dict[int, tuple[str, bytes]] = {}
        self.inbound: list[tuple[int, str, list[tuple[int, str]]]] = []

    def next_sender_seq(self) -> int:
        return self.sender_seq

    def next_target_seq(self) -> int:
        return self.target_seq

    def set_next_sender_seq(self, seq: int) -> None:
        self.sender_seq = seq

    def set_next_target_seq(self, seq: int) -> None:
        self.target_seq = seq

    def save_outbound(self, seq: int, msg_type: str, raw: bytes) -> None:
        self.outbound[seq] = (msg_type, raw)

    def outbound_range(self, begin: int, end: int) -> list[tuple[int, str, bytes]]:
        return [(s, t, r) for s, (t, r) in sorted(self.outbound.items()) if begin <= s <= end]

    def accept_inbound(self, seq: int, msg_type: str, fields: list[tuple[int, str]], raw: bytes) -> None:
        self.inbound.append((seq, msg_type, fields))
        self.target_seq = seq + 1

    def accept_inbound_batch(self, messages: Sequence[InboundRecord], *, next_target_seq: int | None = None) -> None:
        target = inbound_batch_target(messages, next_target_seq)
        # One message at a time, so a subclass recording ``accept_inbound`` sees them all.
        for message in messages:
            self.accept_inbound(message.seq, message.msg_type, message.fields, message.raw)
        self.target_seq = target

    def reset(self) -> None:
        self.sender_seq = 1
        self.target_seq = 1
        self.outbound.clear()
