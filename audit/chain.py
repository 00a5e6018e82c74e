"""The hash chain over audit events.

Each sealed event carries ``hash = sha256(prev_hash | seq | canonical(event))``, where
``canonical`` is the event's content as JSON with sorted keys, no whitespace, and
every value rendered exactly: times in UTC ISO 8601 with microseconds, decimals as
their exact string (the stored JSON already holds them as strings). The chain starts
from ``GENESIS`` (or, after a purge, from the anchor the purge recorded).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Any

GENESIS = "0" * 64
CONTENT_FIELDS = ("id", "occurred_at", "actor", "action", "object_type", "object_id", "before", "after", "details")


def _exact(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"not canonical JSON: {type(value).__name__}")


def canonical(content: dict[str, Any]) -> str:
    """The event content (``CONTENT_FIELDS``) as canonical JSON text."""
    return json.dumps(
        {name: content[name] for name in CONTENT_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_exact,
    )


def link_hash(prev_hash: str, seq: int, content: dict[str, Any]) -> str:
    payload = f"{prev_hash}|{seq}|{canonical(content)}".encode()
    return hashlib.sha256(payload).hexdigest()


def event_content(event) -> dict[str, Any]:
    """The hashed content of a stored AuditEvent (as read back from the database, so
    sealing and verifying see the same values)."""
    return {name: getattr(event, name) for name in CONTENT_FIELDS}
