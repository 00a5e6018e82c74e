"""Add restricted- or watch-list entries from a CSV file.

Columns: symbol or issuer, reason (required); effective_from, effective_to (optional,
ISO 8601). Each bad line is reported with its line number and skipped; good lines
are added, each audited as added by the compliance user given with --user.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from compliance.selectors import is_compliance_user
from compliance.services import list_entries_import
from oms_site.commands import csv_file_open
from oms_site.errors import InvalidInput


class Command(BaseCommand):
    help = "Add restricted-list (default) or watch-list entries from a CSV file (symbol|issuer,reason[,effective_from,effective_to])."

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file with a header row")
        parser.add_argument("--list", choices=["restricted", "watch"], default="restricted")
        parser.add_argument("--user", required=True, help="the compliance user the entries are recorded as added by")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None or not is_compliance_user(user):
            raise CommandError(f"{options['user']}: not a compliance (middle office) user")
        path = options["path"]
        handle = csv_file_open(path, nothing_done="nothing added")
        try:
            report = list_entries_import(list_name=options["list"], handle=handle, user=user)
        except InvalidInput as exc:
            raise CommandError(f"{path}: {exc.message} ({'; '.join(exc.details.get('file', []))})") from None
        for line, message in report.errors:
            self.stderr.write(f"line {line}: {message}")
        self.stdout.write(f"{report.created} added to the {options['list']} list, {len(report.errors)} rejected")
        if report.errors and not report.created:
            raise CommandError("no valid lines")
