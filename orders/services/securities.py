"""The security master loaded from CSV (the ``load_securities`` command)."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from django.utils import timezone

from ..models import AssetClass
from ._common import price_parse
from .reference_data import security_save


@dataclass
class SecurityLoadReport:
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] | None = None


SECURITY_REQUIRED_COLUMNS = ("symbol", "name", "currency", "reference_price")


def security_rows_load(*, handle, actor: str) -> SecurityLoadReport:
    """Upsert securities from CSV rows. Bad rows are reported by line number and
    skipped; each good row is saved (and audited) on its own, so one bad line loses
    nothing else."""
    reader = csv.DictReader(handle)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in SECURITY_REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    reader.fieldnames = header
    report = SecurityLoadReport(errors=[])
    for row in reader:
        line = reader.line_num
        values = {k: (v or "").strip() for k, v in row.items() if k}
        problems = []
        symbol = values.get("symbol", "").upper()
        if not symbol or len(symbol) > 32 or not symbol.isprintable() or " " in symbol:
            problems.append("symbol: required, at most 32 characters, no spaces")
        if not values.get("name"):
            problems.append("name: required")
        currency = values.get("currency", "").upper()
        if len(currency) != 3 or not currency.isalpha():
            problems.append("currency: a three-letter ISO code")
        price_errors: dict[str, list[str]] = {}
        price = price_parse(values.get("reference_price"), "reference_price", price_errors)
        if price is None:
            problems.append("reference_price: " + " ".join(price_errors.get("reference_price", ["required"])))
        asset_class = (values.get("asset_class") or AssetClass.EQUITY).upper()
        if asset_class not in AssetClass.values:
            problems.append(f"asset_class: one of {', '.join(AssetClass.values)}")
        lot_size = values.get("lot_size") or "1"
        if not lot_size.isdigit() or int(lot_size) < 1:
            problems.append("lot_size: a whole number of at least 1")
        active = (values.get("active") or "true").lower()
        if active not in ("true", "false", "1", "0", "yes", "no"):
            problems.append("active: true or false")
        if problems:
            report.errors.append((line, "; ".join(problems)))
            continue
        fields = {
            "name": values["name"][:200],
            "currency": currency,
            "reference_price": price,
            "reference_price_at": timezone.now(),
        }
        # Optional columns change a security only when the file gives them: a price-only
        # refresh must not reactivate a delisted security or reset its lot size.
        optional = {
            "issuer": values.get("issuer", "")[:200],
            "asset_class": asset_class if values.get("asset_class") else "",
            "lot_size": int(lot_size) if values.get("lot_size") else None,
            "active": active in ("true", "1", "yes") if values.get("active") else None,
        }
        fields.update({key: value for key, value in optional.items() if value not in ("", None)})
        _, created = security_save(
            symbol=symbol, values=fields, new_defaults={"issuer": fields["name"]}, actor=actor, via="csv"
        )
        if created:
            report.created += 1
        else:
            report.updated += 1
    return report
