"""A desk order a trader has accepted (``owner`` set) is worked through its child
orders, which carry its exposure: its own share is zero, or every child placed would
count twice against the account's limits: neither its leaves nor what it filled (the
sum of its children's fills, already counted on the children). Until a trader accepts
it, a portfolio manager's order counts like any staged order. The trigger functions of
0005/0008 are replaced with that condition, and the running exposure is rebuilt from
the orders so every row agrees with the new rule."""

import importlib

from django.db import migrations

_0005 = importlib.import_module("orders.migrations.0005_account_exposure")
_0008 = importlib.import_module("orders.migrations.0008_firm_trade_date")


def _owned_excluded(sql: str, row: str) -> str:
    working = f"{row}.status IN ({_0005._WORKING_SQL})"
    filled = f"{row}.status <> 'rejected' AND {row}.avg_fill_price IS NOT NULL"
    assert working in sql and filled in sql, row
    sql = sql.replace(working, f"({working} AND {row}.owner_id IS NULL)")
    return sql.replace(filled, f"{filled} AND {row}.owner_id IS NULL")


def _rebuild(schema_editor, date: str, backfill: str) -> None:
    schema_editor.execute("DELETE FROM orders_accountexposure", params=None)
    schema_editor.execute(backfill.format(date=date), params=None)


def worked_by_children(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    backfill = _owned_excluded(_0005.BACKFILL, "o")
    if vendor == "postgresql":
        functions = _owned_excluded(_0008.FUNCTIONS.replace(_0008.UTC_DATE, _0008.FIRM_DATE), "o")
        schema_editor.execute(functions, params=None)
        _rebuild(schema_editor, _0008.FIRM_DATE, backfill)
    elif vendor == "sqlite":
        for statement in _0005.SQLITE_REMOVE:
            schema_editor.execute(statement, params=None)
        for statement in _0005.SQLITE_INSTALL:
            for row in ("NEW", "OLD"):
                if f"{row}.status" in statement:
                    statement = _owned_excluded(statement, row)
            schema_editor.execute(statement, params=None)
        _rebuild(schema_editor, "date(o.created_at)", backfill)


def counted_as_before(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(_0008.FUNCTIONS.replace(_0008.UTC_DATE, _0008.FIRM_DATE), params=None)
        _rebuild(schema_editor, _0008.FIRM_DATE, _0005.BACKFILL)
    elif vendor == "sqlite":
        for statement in _0005.SQLITE_REMOVE:
            schema_editor.execute(statement, params=None)
        for statement in _0005.SQLITE_INSTALL:
            schema_editor.execute(statement, params=None)
        _rebuild(schema_editor, "date(o.created_at)", _0005.BACKFILL)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0009_pm_parent_child"),
    ]

    operations = [migrations.RunPython(worked_by_children, counted_as_before)]
