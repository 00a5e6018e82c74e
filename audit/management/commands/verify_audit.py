"""Verify the audit hash chain; exit non-zero naming the first broken event."""

import json

from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_seal
from audit.verify import chain_verify, exported_chain_verify
from oms_site.commands import iso_time


class Command(BaseCommand):
    help = "Walk the audit hash chain (or an export_audit JSONL file) and report the first broken event."

    def add_arguments(self, parser):
        parser.add_argument("--since", type=iso_time, help="first event time (ISO 8601; UTC if no zone)")
        parser.add_argument("--until", type=iso_time, help="events before this time")
        parser.add_argument("--file", help="verify an export_audit JSONL file instead of the database")
        parser.add_argument("--no-seal", action="store_true", help="do not chain settled events before verifying")

    def handle(self, *args, **options):
        if options["file"]:
            return self._verify_file(options["file"])
        if not options["no_seal"]:
            while audit_seal():
                pass
        result = chain_verify(since=options["since"], until=options["until"])
        if not result.ok:
            raise CommandError("audit chain BROKEN: " + "; ".join(result.problems))
        scope = " in range" if options["since"] or options["until"] else ""
        self.stdout.write(
            f"audit chain OK: {result.checked} events verified{scope}; head #{result.head_seq} {result.head_hash}; "
            f"{result.unsealed} recent event(s) awaiting their seal"
        )

    def _verify_file(self, path: str) -> None:
        def lines():
            try:
                with open(path, encoding="utf-8") as handle:
                    for number, text in enumerate(handle, start=1):
                        try:
                            row = json.loads(text)
                        except ValueError:
                            raise CommandError(f"{path}: line {number} is not JSON") from None
                        if row.get("seq") is not None:
                            yield row
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror}") from None

        count = 0

        def counted():
            nonlocal count
            for row in lines():
                count += 1
                yield row

        problems = list(exported_chain_verify(counted()))
        if problems:
            raise CommandError("export BROKEN: " + "; ".join(problems))
        self.stdout.write(f"export OK: {count} sealed events verify")
