"""A block order's running exposure belongs to its funds, each by its share, not to
the account the block row names (its first fund): the exposure trigger leaves block
orders out, and compliance adds each fund's share of the working blocks when it reads
the fund's exposure (``compliance.readings``). The trigger functions of 0010 are
replaced with that condition and the running exposure rebuilt from the orders."""

import importlib

from django.db import migrations

_0005 = importlib.import_module("orders.migrations.0005_account_exposure")
_0008 = importlib.import_module("orders.migrations.0008_firm_trade_date")
_0010 = importlib.import_module("orders.migrations.0010_exposure_worked_by_children")


def _blocks_excluded(sql: str, row: str) -> str:
    sql = _0010._owned_excluded(sql, row)
    owned = f"{row}.owner_id IS NULL"
    assert owned in sql, row
    return sql.replace(owned, f"{owned} AND NOT {row}.block_order")


def _install(schema_editor, exclude) -> None:
    vendor = schema_editor.connection.vendor
    backfill = exclude(_0005.BACKFILL, "o")
    if vendor == "postgresql":
        functions = exclude(_0008.FUNCTIONS.replace(_0008.UTC_DATE, _0008.FIRM_DATE), "o")
        schema_editor.execute(functions, params=None)
        _0010._rebuild(schema_editor, _0008.FIRM_DATE, backfill)
    elif vendor == "sqlite":
        for statement in _0005.SQLITE_REMOVE:
            schema_editor.execute(statement, params=None)
        for statement in _0005.SQLITE_INSTALL:
            for row in ("NEW", "OLD"):
                if f"{row}.status" in statement:
                    statement = exclude(statement, row)
            schema_editor.execute(statement, params=None)
        _0010._rebuild(schema_editor, "date(o.created_at)", backfill)


def blocks_excluded(apps, schema_editor):
    _install(schema_editor, _blocks_excluded)


def blocks_counted(apps, schema_editor):
    _install(schema_editor, _0010._owned_excluded)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0011_block_orders_allocations"),
    ]

    operations = [migrations.RunPython(blocks_excluded, blocks_counted)]
