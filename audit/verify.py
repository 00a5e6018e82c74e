"""Walk the hash chain and say where it breaks (``manage.py verify_audit``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .chain import GENESIS, event_content, link_hash
from .models import AuditAnchor, AuditEvent, AuditSeal


@dataclass
class Verification:
    checked: int = 0
    unsealed: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def chain_verify(
    *, since: dt.datetime | None = None, until: dt.datetime | None = None, chunk: int = 2000
) -> Verification:
    """Recompute every seal in order: each links to the one before (or the anchor, or
    the start of a ``since`` range), its hash matches the event's content now, its
    event exists. Then: no unsealed event may sit among sealed ones (an insert out of
    band). Stops at the first broken link and names the event."""
    result = Verification()
    anchor = AuditAnchor.objects.order_by("-seq").first()
    seals = AuditSeal.objects.order_by("seq")
    if since is not None:
        first = AuditSeal.objects.filter(event__occurred_at__gte=since).order_by("seq").first()
        seals = seals.filter(seq__gte=first.seq) if first else seals.none()
        expected_seq, prev_hash = (first.seq - 1, first.prev_hash) if first else (0, GENESIS)
    elif anchor is not None:
        expected_seq, prev_hash = anchor.seq, anchor.hash
    else:
        expected_seq, prev_hash = 0, GENESIS
    if until is not None:
        seals = seals.filter(event__occurred_at__lt=until)
    last_event_id = anchor.last_event_id if anchor and since is None else 0
    for seal_seq, event_id, stored_prev, stored_hash, event in _seals_with_events(seals, chunk):
        if seal_seq != expected_seq + 1:
            result.problems.append(
                f"seal #{expected_seq + 1} is missing (next is #{seal_seq}, event {event_id}): events were removed"
            )
            return result
        if stored_prev != prev_hash:
            result.problems.append(f"event {event_id} (seal #{seal_seq}): does not link to the event before it")
            return result
        if event is None:
            result.problems.append(f"event {event_id} (seal #{seal_seq}): the event was deleted")
            return result
        if link_hash(prev_hash, seal_seq, event_content(event)) != stored_hash:
            result.problems.append(f"event {event_id} (seal #{seal_seq}): content was changed after it was sealed")
            return result
        if event_id <= last_event_id:
            result.problems.append(f"event {event_id} (seal #{seal_seq}): sealed out of order")
            return result
        expected_seq, prev_hash, last_event_id = seal_seq, stored_hash, event_id
        result.checked += 1
    result.head_seq, result.head_hash = expected_seq, prev_hash
    if since is None and until is None:
        stray = (
            AuditEvent.objects.filter(seal__isnull=True, id__lt=last_event_id)
            .exclude(id__lte=anchor.last_event_id if anchor else 0)
            .order_by("id")
            .first()
        )
        if stray is not None:
            result.problems.append(f"event {stray.pk}: not in the chain though later events are (inserted out of band)")
        result.unsealed = AuditEvent.objects.filter(id__gt=last_event_id, seal__isnull=True).count()
    return result


def _seals_with_events(seals, chunk: int):
    """(seq, event id, prev_hash, hash, event or None) in seq order, a chunk of seals
    and their events per two queries, in constant memory."""
    after = None
    while True:
        page = seals if after is None else seals.filter(seq__gt=after)
        rows = list(page.values_list("seq", "event_id", "prev_hash", "hash")[:chunk])
        if not rows:
            return
        events = AuditEvent.objects.in_bulk([row[1] for row in rows])
        for row in rows:
            yield (*row, events.get(row[1]))
        after = rows[-1][0]


def exported_chain_verify(lines: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Problems in an export (JSON objects with the event content and seq, prev_hash,
    hash): each line's hash must match its content, and consecutive lines must link."""
    previous: dict[str, Any] | None = None
    for number, line in enumerate(lines, start=1):
        if link_hash(line["prev_hash"], line["seq"], line) != line["hash"]:
            yield f"line {number} (event {line['id']}): content does not match its hash"
            return
        if previous is not None and line["seq"] == previous["seq"] + 1 and line["prev_hash"] != previous["hash"]:
            yield f"line {number} (event {line['id']}): does not link to line {number - 1}"
            return
        previous = line
