"""Purge the oldest audit events that are past retention and under no legal hold."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from audit.retention import PurgeRefused, audit_purge
from audit.services import SYSTEM_ACTOR


def _date(text: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r}: not a date (YYYY-MM-DD)") from None
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


class Command(BaseCommand):
    help = (
        "Delete the oldest sealed audit events that occurred before --before (midnight UTC), are older than "
        "their record type's retention and under no active legal hold; stops at the first event that is not. "
        "Records an anchor (the chain still verifies) and an audit.purged event."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", type=_date, required=True, help="purge only events before this date (UTC)")
        parser.add_argument("--dry-run", action="store_true", help="say what would be purged, delete nothing")
        parser.add_argument("--actor", default=f"{SYSTEM_ACTOR}:purge_audit", help="who runs the purge (audited)")

    def handle(self, *args, **options):
        try:
            result = audit_purge(before=options["before"], actor=options["actor"], dry_run=options["dry_run"])
        except PurgeRefused as exc:
            raise CommandError(f"purge refused, nothing deleted: {exc}") from None
        self.stdout.write(result.summary())
        if result.anchor_id is not None:
            self.stdout.write(f"anchor #{result.anchor_id} at seal #{result.last_seq} {result.last_hash}")
