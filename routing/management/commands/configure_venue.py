"""Create or update a venue's FIX connection settings and session schedule (audited)."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.services import SYSTEM_ACTOR
from routing.models import Venue
from routing.services import venue_configure


class Command(BaseCommand):
    help = "Create or update a venue: host, port, CompIDs, FIX version, heartbeat, reset policy, enabled."

    def add_arguments(self, parser):
        parser.add_argument("code", help="venue code, e.g. SIM")
        parser.add_argument("--host")
        parser.add_argument("--port", type=int)
        parser.add_argument("--sender-comp-id", help="our SenderCompID (49)")
        parser.add_argument("--target-comp-id", help="the venue's CompID, our TargetCompID (56)")
        parser.add_argument("--fix-version", choices=Venue.FixVersion.values)
        parser.add_argument("--heartbeat", type=int, help="HeartBtInt in seconds (1-3600)")
        reset = parser.add_mutually_exclusive_group()
        reset.add_argument("--reset-on-logon", dest="reset_on_logon", action="store_true", default=None)
        reset.add_argument("--no-reset-on-logon", dest="reset_on_logon", action="store_false")
        for flag in ("logout", "disconnect"):
            group = parser.add_mutually_exclusive_group()
            group.add_argument(f"--reset-on-{flag}", dest=f"reset_on_{flag}", action="store_true", default=None)
            group.add_argument(f"--no-reset-on-{flag}", dest=f"reset_on_{flag}", action="store_false")
        parser.add_argument("--session-start", help="local time the session opens, HH:MM")
        parser.add_argument("--session-end", help="local time the session ends, HH:MM (the venue's end of day)")
        parser.add_argument("--always-open", action="store_true", help="no schedule: clear start and end")
        parser.add_argument("--time-zone", help="the schedule's IANA time zone, e.g. America/New_York")
        parser.add_argument("--trading-days", help="e.g. Mon-Fri or Mon,Tue,Wed,Thu,Fri")
        enabled = parser.add_mutually_exclusive_group()
        enabled.add_argument("--enabled", dest="enabled", action="store_true", default=None)
        enabled.add_argument("--disabled", dest="enabled", action="store_false")
        parser.add_argument("--actor", default=f"{SYSTEM_ACTOR}:configure_venue", help="who is recorded in the audit")

    def handle(self, *args, **options):
        code = options["code"].strip()
        if not code or len(code) > 20 or not code.isprintable() or " " in code:
            raise CommandError("Venue code: 1 to 20 printable characters without spaces.")
        values = {
            "host": options["host"],
            "port": options["port"],
            "sender_comp_id": options["sender_comp_id"],
            "target_comp_id": options["target_comp_id"],
            "fix_version": options["fix_version"],
            "heartbeat_interval": options["heartbeat"],
            "reset_on_logon": options["reset_on_logon"],
            "reset_on_logout": options["reset_on_logout"],
            "reset_on_disconnect": options["reset_on_disconnect"],
            "session_time_zone": options["time_zone"],
            "trading_days": options["trading_days"],
            "enabled": options["enabled"],
        }
        problems = []
        if options["always_open"] and (options["session_start"] or options["session_end"]):
            problems.append("--always-open clears the schedule: give it without --session-start/--session-end")
        for name in ("session_start", "session_end"):
            values[name] = None
            text = options[name]
            if text is None:
                continue
            try:
                values[name] = dt.time.fromisoformat(text)
            except ValueError:
                problems.append(f"--{name.replace('_', '-')} must be a time HH:MM, not {text!r}")
        if values["host"] is not None and not values["host"].strip():
            problems.append("--host must not be empty")
        if values["port"] is not None and not 1 <= values["port"] <= 65535:
            problems.append("--port must be between 1 and 65535")
        if values["heartbeat_interval"] is not None and not 1 <= values["heartbeat_interval"] <= 3600:
            problems.append("--heartbeat must be between 1 and 3600 seconds")
        for name in ("sender_comp_id", "target_comp_id"):
            value = values[name]
            if value is not None and (not value.strip() or not value.isprintable() or "\x01" in value):
                problems.append(f"--{name.replace('_', '-')} must be a non-empty printable CompID")
        if problems:
            raise CommandError("; ".join(problems))
        try:
            venue, created = venue_configure(
                code=code, actor=options["actor"], always_open=options["always_open"], **values
            )
        except ValidationError as exc:
            details = (
                "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
                if hasattr(exc, "message_dict")
                else " ".join(exc.messages)
            )
            raise CommandError(f"Invalid venue settings: {details}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Venue {venue.code} {'created' if created else 'updated'}: {venue.host}:{venue.port} "
                f"{venue.sender_comp_id}->{venue.target_comp_id} {venue.fix_version} "
                f"heartbeat {venue.heartbeat_interval}s reset_on_logon={venue.reset_on_logon} enabled={venue.enabled} "
                f"session {venue.schedule.describe()}"
            )
        )
