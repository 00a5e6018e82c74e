"""One verdict row per evaluation instead of one row per rule (issue 12).

``ComplianceVerdict`` stores every rule's result of one evaluation as a JSON list;
``compliance_complianceresult`` becomes a view that reads them back one row per rule,
so the admin, the API and the order page show the same per-rule results. Existing
results are copied into verdicts, one per order, stage and evaluation time."""

import django.db.models.deletion
from django.db import migrations, models

import compliance.models

VIEW_POSTGRESQL = """
CREATE VIEW compliance_complianceresult AS
SELECT v.id * 1000 + r.ord - 1 AS id,
       v.id AS verdict_id,
       v.order_id,
       v.stage,
       r.value ->> 'rule' AS rule,
       r.value ->> 'outcome' AS outcome,
       r.value ->> 'code' AS code,
       r.value ->> 'reason' AS reason,
       (r.value ->> 'internal')::boolean AS internal,
       (r.value ->> 'overridden')::boolean AS overridden,
       v.evaluated_at
  FROM compliance_complianceverdict v
 CROSS JOIN LATERAL jsonb_array_elements(v.results) WITH ORDINALITY AS r(value, ord)
"""

VIEW_SQLITE = """
CREATE VIEW compliance_complianceresult AS
SELECT v.id * 1000 + CAST(r.key AS INTEGER) AS id,
       v.id AS verdict_id,
       v.order_id,
       v.stage,
       json_extract(r.value, '$.rule') AS rule,
       json_extract(r.value, '$.outcome') AS outcome,
       json_extract(r.value, '$.code') AS code,
       json_extract(r.value, '$.reason') AS reason,
       json_extract(r.value, '$.internal') AS internal,
       json_extract(r.value, '$.overridden') AS overridden,
       v.evaluated_at
  FROM compliance_complianceverdict v, json_each(v.results) AS r
"""


def _combined(results):
    counted = {r["outcome"] for r in results if not r["internal"] and not r["overridden"]}
    return "block" if "block" in counted else "warn" if "warn" in counted else "pass"


def results_to_verdicts(apps, schema_editor):
    Result = apps.get_model("compliance", "ComplianceResult")
    Verdict = apps.get_model("compliance", "ComplianceVerdict")
    batch, current, key = [], [], None

    def close():
        if current:
            batch.append(
                Verdict(
                    order_id=key[0],
                    stage=key[1],
                    evaluated_at=key[2],
                    outcome=_combined(current),
                    results=list(current),
                )
            )

    rows = Result.objects.order_by("order_id", "evaluated_at", "stage", "id").values_list(
        "order_id", "stage", "evaluated_at", "rule", "outcome", "code", "reason", "internal", "overridden"
    )
    for order_id, stage, evaluated_at, rule, outcome, code, reason, internal, overridden in rows.iterator():
        if (order_id, stage, evaluated_at) != key:
            close()
            current, key = [], (order_id, stage, evaluated_at)
            if len(batch) >= 1000:
                Verdict.objects.bulk_create(batch)
                batch = []
        current.append(
            {"rule": rule, "outcome": outcome, "code": code, "reason": reason, "internal": internal, "overridden": overridden}
        )
    close()
    Verdict.objects.bulk_create(batch)


def table_to_view(apps, schema_editor):
    schema_editor.execute("DROP TABLE compliance_complianceresult")
    schema_editor.execute(VIEW_POSTGRESQL if schema_editor.connection.vendor == "postgresql" else VIEW_SQLITE)


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0002_lists_locates_settings_overrides"),
        ("orders", "0006_compliance_lookup_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="ComplianceVerdict",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("stage", models.CharField(default="submit", max_length=20)),
                (
                    "outcome",
                    models.CharField(choices=[("pass", "Pass"), ("warn", "Warn"), ("block", "Block")], max_length=5),
                ),
                ("results", models.JSONField(default=list)),
                ("evaluated_at", models.DateTimeField(db_index=True, default=compliance.models.utc_now)),
                (
                    "order",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="compliance_verdicts",
                        to="orders.order",
                    ),
                ),
            ],
            options={"ordering": ["id"]},
        ),
        migrations.RunPython(results_to_verdicts, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(table_to_view)],
            state_operations=[
                migrations.DeleteModel(name="ComplianceResult"),
                migrations.CreateModel(
                    name="ComplianceResult",
                    fields=[
                        ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                        ("stage", models.CharField(default="submit", max_length=20)),
                        ("rule", models.CharField(max_length=50)),
                        (
                            "outcome",
                            models.CharField(
                                choices=[("pass", "Pass"), ("warn", "Warn"), ("block", "Block")], max_length=5
                            ),
                        ),
                        ("code", models.CharField(max_length=50)),
                        ("reason", models.TextField(blank=True)),
                        ("internal", models.BooleanField(default=False)),
                        ("overridden", models.BooleanField(default=False)),
                        ("evaluated_at", models.DateTimeField(default=compliance.models.utc_now)),
                        (
                            "order",
                            models.ForeignKey(
                                db_constraint=False,
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                related_name="compliance_results",
                                to="orders.order",
                            ),
                        ),
                        (
                            "verdict",
                            models.ForeignKey(
                                db_constraint=False,
                                null=True,
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                related_name="+",
                                to="compliance.complianceverdict",
                            ),
                        ),
                    ],
                    options={"db_table": "compliance_complianceresult", "ordering": ["id"], "managed": False},
                ),
            ],
        ),
    ]
