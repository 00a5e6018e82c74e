"""The running exposure's trade date is the firm's day (``OMS_FIRM_TIME_ZONE``, which
settings pass to every PostgreSQL connection as ``oms.firm_time_zone``), no longer
always the UTC date. Rows already written keep their dates; the trigger functions of
0005 are replaced with the date taken in the firm's zone (UTC when the setting is
absent, e.g. a psql session)."""

import importlib

from django.db import migrations

_0005 = importlib.import_module("orders.migrations.0005_account_exposure")
UTC_DATE = "(o.created_at AT TIME ZONE 'UTC')::date"
FIRM_DATE = "(o.created_at AT TIME ZONE COALESCE(NULLIF(current_setting('oms.firm_time_zone', true), ''), 'UTC'))::date"
# The functions only: the trigger that calls them stays.
FUNCTIONS = _0005.POSTGRES_INSTALL.split("CREATE TRIGGER")[0]
assert UTC_DATE in FUNCTIONS


def firm_date(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS.replace(UTC_DATE, FIRM_DATE), params=None)


def utc_date(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0007_local_close"),
    ]

    operations = [migrations.RunPython(firm_date, utc_date)]
