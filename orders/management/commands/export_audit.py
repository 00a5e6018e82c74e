"""Export the audit trail for a regulator: JSONL or CSV, with the chain hashes."""

import csv
import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db.models import CharField
from django.db.models.functions import Cast

from audit.chain import CONTENT_FIELDS, canonical
from audit.selectors import audit_events_export
from audit.services import audit_seal
from oms_site.commands import iso_time
from orders.models import Order, OrderRequest

COLUMNS = [*CONTENT_FIELDS, "seq", "prev_hash", "hash"]


class Command(BaseCommand):
    help = (
        "Export audit events (JSONL or CSV) with their hash-chain seq, prev_hash and hash, by date range, account, "
        "order or ClOrdID; verify a JSONL export with verify_audit --file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", type=iso_time)
        parser.add_argument("--until", type=iso_time)
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--account", help="events of this account's orders")
        target.add_argument("--order", type=int, help="events of one order (id)")
        target.add_argument("--cl-ord-id", help="events of the order that used this ClOrdID")
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")
        parser.add_argument("--progress-every", type=int, default=10000, help="report progress every N events")

    def handle(self, *args, **options):
        object_type, object_ids = self._target(options)
        while audit_seal():  # export what is settled with its place in the chain
            pass
        rows = audit_events_export(
            since=options["since"], until=options["until"], object_type=object_type, object_ids=object_ids
        )
        handle = open(options["output"], "w", encoding="utf-8", newline="") if options["output"] else sys.stdout
        try:
            count = self._write(rows, handle, options["format"], options["progress_every"])
        finally:
            if options["output"]:
                handle.close()
        self.stderr.write(f"exported {count} events")

    def _target(self, options):
        if options["account"]:
            if not Order.objects.filter(account__code=options["account"]).exists():
                raise CommandError(f"no orders for account {options['account']!r}")
            ids = (
                Order.objects.filter(account__code=options["account"])
                .annotate(text_id=Cast("pk", CharField()))
                .values("text_id")
            )
            return "order", ids
        if options["order"] is not None:
            if not Order.objects.filter(pk=options["order"]).exists():
                raise CommandError(f"no order {options['order']}")
            return "order", [str(options["order"])]
        if options["cl_ord_id"]:
            order_id = (
                OrderRequest.objects.filter(cl_ord_id=options["cl_ord_id"]).values_list("order_id", flat=True).first()
            )
            if order_id is None:
                raise CommandError(f"no order used ClOrdID {options['cl_ord_id']!r}")
            return "order", [str(order_id)]
        return None, None

    def _write(self, rows, handle, fmt: str, every: int) -> int:
        writer = csv.writer(handle) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        count = 0
        for row in rows:
            # Times and JSON exactly as hashed: the canonical rendering of the content.
            content = json.loads(canonical(row))
            line = {**content, "seq": row["seq"], "prev_hash": row["prev_hash"], "hash": row["hash"]}
            if writer is None:
                handle.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
            else:
                writer.writerow(
                    [
                        json.dumps(line[c], ensure_ascii=False, sort_keys=True)
                        if c in ("before", "after", "details")
                        else ("" if line[c] is None else line[c])
                        for c in COLUMNS
                    ]
                )
            count += 1
            if every and count % every == 0:
                self.stderr.write(f"... {count} events")
        return count
