"""Helpers shared by management commands."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from django.core.management.base import CommandError


def csv_file_open(path_text: str, *, nothing_done: str) -> io.StringIO:
    """The whole file decoded as UTF-8 (a BOM is allowed) before anything is written:
    an encoding error half-way must not leave a file half loaded. ``nothing_done``
    finishes the error message ("nothing loaded")."""
    path = Path(path_text)
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); {nothing_done}") from None
    return io.StringIO(text, newline="")


def iso_time(text: str) -> dt.datetime:
    """An argparse type: ISO 8601 date or time, UTC when it names no zone."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r}: not an ISO 8601 date or time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
