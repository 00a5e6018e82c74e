"""Upsert the security master from a CSV file.

Columns: symbol, name, currency, reference_price (required); issuer, asset_class,
lot_size, active (optional). Each bad row is reported with its line number and skipped;
good rows are kept.
"""

from django.core.management.base import BaseCommand, CommandError

from oms_site.commands import csv_file_open
from orders.services import security_rows_load


class Command(BaseCommand):
    help = "Create or update securities from a CSV file (symbol,name,currency,reference_price[,issuer,asset_class,lot_size,active])."

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file with a header row")

    def handle(self, *args, **options):
        path = options["path"]
        handle = csv_file_open(path, nothing_done="nothing loaded")
        try:
            report = security_rows_load(handle=handle, actor="system:load_securities")
        except ValueError as exc:
            raise CommandError(f"{path}: {exc}") from None
        for line, message in report.errors:
            self.stderr.write(f"line {line}: {message}")
        self.stdout.write(f"{report.created} created, {report.updated} updated, {len(report.errors)} rejected")
        if report.errors and not (report.created or report.updated):
            raise CommandError("no valid rows")
