"""Upsert the security master from a CSV file.

Columns: symbol, name, currency, reference_price (required); issuer, asset_class,
lot_size, active (optional). Each bad row is reported with its line number and skipped;
good rows are kept.
"""

import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orders.services import security_rows_load


class Command(BaseCommand):
    help = "Create or update securities from a CSV file (symbol,name,currency,reference_price[,issuer,asset_class,lot_size,active])."

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file with a header row")

    def handle(self, *args, **options):
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        # Decode the whole file before loading anything: an encoding error half-way
        # through must not leave the file half loaded.
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); nothing loaded") from None
        try:
            report = security_rows_load(handle=io.StringIO(text, newline=""), actor="system:load_securities")
        except ValueError as exc:
            raise CommandError(f"{path}: {exc}") from None
        for line, message in report.errors:
            self.stderr.write(f"line {line}: {message}")
        self.stdout.write(f"{report.created} created, {report.updated} updated, {len(report.errors)} rejected")
        if report.errors and not (report.created or report.updated):
            raise CommandError("no valid rows")
