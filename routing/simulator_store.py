"""The venue simulator's file store: its FIX session state and its order book in a
directory (one per CompID pair, e.g. ``var/simulator/SIM-OMS/``), so that a simulator
stopped or killed and started again continues like a venue: its own sequence numbers,
the counterparty's, ResendRequests answered from what it sent, and the orders placed
before the restart (fills, quantities, pending requests, ExecID counters).

``SimulatorStore`` is a ``routing.fix.stores.SessionStore``. The directory holds:

- ``journal-<epoch>.jsonl``: append-only, one JSON object a line. Each outbound message
  is a line (``n`` record number, ``seq``, ``type``, ``raw``) written, flushed and
  fsync'd before the message goes on the wire, so a message sent is always resendable,
  together with what changed in the book to produce it (``orders``: the records of the
  orders the message reports on, ``counters``) and the expected inbound number
  (``target``). ``commit`` adds a line without a message when only those changed.
- ``state.json``: the checkpoint, replaced atomically (temporary file, fsync,
  ``os.replace``): epoch and journal name, the last record it covers, the sequence
  numbers, the run id, the counters and every order.
- ``lock``: held (``flock``) while a simulator uses the directory.

Loading takes the checkpoint, then every line of its journal: all messages are kept for
resends, and the lines after the checkpoint are applied over its book. A torn last line
(``kill -9`` or a crash in the middle of a write) is ignored and cut off. The next
outbound number is past the last message journaled.

The counterparty's sequence number is made durable only together with what the
simulator did with its messages: from the start of an application message
(``processing``) and at ``commit`` (the owner calls it after each chunk received and
each timed event). A crash before that leaves the number where it was, so the
counterparty's resend brings the message again rather than the order being lost.

A sequence reset starts a new epoch: a new empty journal, a checkpoint naming it (the
book is kept: a reset does not cancel orders), then the old journal is removed.
Inbound messages themselves are not kept (``accept_inbound`` only moves the number).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .fix.stores import InboundRecord, MemoryStore, inbound_batch_target

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOCK_FILE = "lock"
FORMAT_VERSION = 1
# Journal records between checkpoints (a checkpoint also happens at open and close).
CHECKPOINT_EVERY = 5000


class StoreError(Exception):
    """The store cannot be used: locked by another process, or its checkpoint is unreadable."""


class SimulatorStore(MemoryStore):
    """A ``SessionStore`` on files (the memory store's numbers and sent messages, made
    durable), with the simulator's book beside the sequence numbers.

    The owner reads what was loaded (``run_id``, ``counters``, ``orders``: order records by
    OrderID), ``stage``s the records it changed before each message it sends (they are
    written with the message), calls ``processing`` when it starts on an application
    message and ``commit`` when a unit of work is done, and ``close`` at the end.
    """

    def __init__(self, directory: str | Path, *, fsync: bool = True, checkpoint_every: int = CHECKPOINT_EVERY):
        super().__init__()
        self.directory = Path(directory)
        self.fsync = fsync
        self.checkpoint_every = checkpoint_every
        self.epoch = 1
        self.durable_target = 1  # the expected number as last written
        self.run_id: str | None = None
        self.counters: dict[str, int] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self._staged: dict[str, dict[str, Any]] = {}
        self._staged_counters: dict[str, int] | None = None
        self._record_no = 0
        self._checkpoint_no = 0
        self._journal: BinaryIO | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / LOCK_FILE, "a+b")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StoreError(f"{self.directory} is in use by another simulator") from None
        try:
            self._load()
            self.checkpoint()  # folds the replayed lines in and drops a torn tail for good
        except BaseException:
            self.close(checkpoint=False)
            raise

    @property
    def journal_path(self) -> Path:
        return self.directory / f"journal-{self.epoch}.jsonl"

    @property
    def closed(self) -> bool:
        return self._journal is None

    # ------------------------------------------------------------ SessionStore
    # The numbers live in memory as in ``MemoryStore``; the expected inbound number is
    # made durable at the next ``processing``/``commit``.
    def save_outbound(self, seq: int, msg_type: str, raw: bytes) -> None:
        self._append({"seq": seq, "type": msg_type, "raw": raw.decode("latin-1")})
        self.outbound[seq] = (msg_type, raw)

    def accept_inbound(self, seq: int, msg_type: str, fields: list[tuple[int, str]], raw: bytes) -> None:
        self.target_seq = seq + 1

    def accept_inbound_batch(self, messages: Sequence[InboundRecord], *, next_target_seq: int | None = None) -> None:
        self.target_seq = inbound_batch_target(messages, next_target_seq)

    def reset(self) -> None:
        """Both numbers back to 1 and the sent messages forgotten: a new epoch."""
        old = self.journal_path
        self._close_journal()
        self.epoch += 1
        self._create_journal()
        self.sender_seq = self.target_seq = self.durable_target = 1
        self.outbound.clear()
        self._record_no = 0
        self.checkpoint()
        old.unlink(missing_ok=True)
        logger.info("SIM store %s: sequence numbers reset (epoch %s)", self.directory, self.epoch)

    # ------------------------------------------------------------- the owner
    def stage(self, records: Iterable[dict[str, Any]], counters: Mapping[str, int]) -> None:
        """Order records and counters to write with the next journal line."""
        for record in records:
            self._staged[record["order_id"]] = record
        self._staged_counters = dict(counters)

    def processing(self, seq: int) -> None:
        """The owner starts on application message ``seq``: what it writes from now on
        includes its effects, so the expected number written with it is past it."""
        self.durable_target = seq + 1

    def commit(self) -> None:
        """Write what is not yet durable (the expected number, staged records), and a
        checkpoint once the journal has grown enough since the last."""
        if self.closed:
            return
        if self.durable_target != self.target_seq or self._staged or self._staged_counters is not None:
            self.durable_target = self.target_seq
            self._append({})
        if self._record_no - self._checkpoint_no >= self.checkpoint_every:
            self.checkpoint()

    def checkpoint(self) -> None:
        self._apply_staged()
        state = {
            "version": FORMAT_VERSION,
            "epoch": self.epoch,
            "journal": self.journal_path.name,
            "through": self._record_no,
            "sender": self.sender_seq,
            "target": self.durable_target,
            "run_id": self.run_id,
            "counters": self.counters,
            "orders": list(self.orders.values()),
        }
        temporary = self.directory / f"{STATE_FILE}.tmp"
        with open(temporary, "wb") as out:
            out.write(json.dumps(state, separators=(",", ":")).encode())
            out.flush()
            if self.fsync:
                os.fsync(out.fileno())
        os.replace(temporary, self.directory / STATE_FILE)
        self._sync_directory()
        self._checkpoint_no = self._record_no

    def close(self, *, checkpoint: bool = True) -> None:
        try:
            if checkpoint and not self.closed:
                self.durable_target = self.target_seq
                self.checkpoint()
        finally:
            self._close_journal()
            if not self._lock.closed:
                fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
                self._lock.close()

    # --------------------------------------------------------------- writing
    def _append(self, record: dict[str, Any]) -> None:
        if self._journal is None:
            raise StoreError(f"{self.directory}: the store is closed")
        record = {"n": self._record_no + 1, **record, "target": self.durable_target}
        if self._staged:
            record["orders"] = list(self._staged.values())
        if self._staged_counters is not None:
            record["counters"] = self._staged_counters
        self._journal.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._journal.flush()
        if self.fsync:
            os.fsync(self._journal.fileno())
        self._record_no += 1
        self._apply_staged()

    def _apply_staged(self) -> None:
        self.orders.update(self._staged)
        self._staged = {}
        if self._staged_counters is not None:
            self.counters = self._staged_counters
            self._staged_counters = None

    def _create_journal(self) -> None:
        with open(self.journal_path, "wb") as out:
            if self.fsync:
                os.fsync(out.fileno())
        self._sync_directory()
        self._journal = open(self.journal_path, "ab")  # noqa: SIM115 (kept open for appends)

    def _close_journal(self) -> None:
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    def _sync_directory(self) -> None:
        if not self.fsync:
            return
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    # --------------------------------------------------------------- loading
    def _load(self) -> None:
        state_path = self.directory / STATE_FILE
        (self.directory / f"{STATE_FILE}.tmp").unlink(missing_ok=True)
        if not state_path.exists():
            self._remove_other_journals()
            self._create_journal()
            return
        try:
            state = json.loads(state_path.read_bytes())
            if state.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {state.get('version')!r}, expected {FORMAT_VERSION}")
            self.epoch = int(state["epoch"])
            through = int(state["through"])
            self.sender_seq = int(state["sender"])
            self.durable_target = int(state["target"])
            self.run_id = state["run_id"]
            self.counters = {str(k): int(v) for k, v in state["counters"].items()}
            self.orders = {record["order_id"]: record for record in state["orders"]}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{state_path} is unreadable ({exc}): remove {self.directory} to start afresh") from None
        self._remove_other_journals()
        for record in self._read_journal():
            self._record_no = record["n"]
            if "seq" in record:
                raw = record["raw"].encode("latin-1")
                self.outbound[record["seq"]] = (record["type"], raw)
                self.sender_seq = max(self.sender_seq, record["seq"] + 1)
            if record["n"] <= through:
                continue
            self.durable_target = record["target"]
            for order in record.get("orders", ()):
                self.orders[order["order_id"]] = order
            if "counters" in record:
                self.counters = record["counters"]
        self._record_no = max(self._record_no, through)
        self.target_seq = self.durable_target
        self._journal = open(self.journal_path, "ab")  # noqa: SIM115 (kept open for appends)
        logger.info(
            "SIM store %s loaded: next out %s, next in %s, %s orders, %s messages for resends",
            self.directory,
            self.sender_seq,
            self.target_seq,
            len(self.orders),
            len(self.outbound),
        )

    def _remove_other_journals(self) -> None:
        """Journals of other epochs: left by a crash in the middle of a reset."""
        for path in self.directory.glob("journal-*.jsonl"):
            if path.name != self.journal_path.name:
                path.unlink()

    def _read_journal(self) -> list[dict[str, Any]]:
        """The journal's valid lines in order; a torn last line is cut off the file."""
        path = self.journal_path
        if not path.exists():
            logger.warning("SIM store %s: journal %s missing; starting it empty", self.directory, path.name)
            path.touch()
            return []
        data = path.read_bytes()
        records: list[dict[str, Any]] = []
        position = 0
        while position < len(data):
            end = data.find(b"\n", position)
            line = data[position:] if end < 0 else data[position:end]
            record = _parse(line)
            if end < 0:
                if record is None:
                    logger.warning("SIM store %s: torn last journal line dropped (%s bytes)", path, len(line))
                    with open(path, "r+b") as out:
                        out.truncate(position)
                else:
                    with open(path, "ab") as out:
                        out.write(b"\n")  # complete but for its newline
                    records.append(record)
                break
            if record is None:
                logger.warning("SIM store %s: unreadable journal line at byte %s skipped", path, position)
            else:
                records.append(record)
            position = end + 1
        return records


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("n"), int)
        or not isinstance(record.get("target"), int)
    ):
        return None
    if "seq" in record and not (
        isinstance(record["seq"], int) and isinstance(record.get("type"), str) and isinstance(record.get("raw"), str)
    ):
        return None
    return record


__all__ = ["SimulatorStore", "StoreError"]
