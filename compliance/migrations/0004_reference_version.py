"""A version of the reference data every compliance check reads (rule settings, kill
switches, restricted and watch lists), set from a sequence by a statement trigger on
each of their tables in the transaction that writes them: a check reads the version
and uses the copy its process holds of that version (``compliance.references``).
PostgreSQL only; the embedded SQLite database reads the tables every time."""

from django.db import migrations

TABLES = ["compliance_rulesetting", "compliance_killswitch", "compliance_restrictedentry", "compliance_watchentry"]

CREATE = [
    "CREATE SEQUENCE compliance_reference_version_seq",
    "CREATE TABLE compliance_reference_version ("
    " id smallint PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)",
    "INSERT INTO compliance_reference_version VALUES (1, nextval('compliance_reference_version_seq'))",
    """
CREATE FUNCTION compliance_reference_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE compliance_reference_version SET version = nextval('compliance_reference_version_seq') WHERE id = 1;
    RETURN NULL;
END
$$""",
    *(
        f"CREATE TRIGGER {table}_reference_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION compliance_reference_version_bump()"
        for table in TABLES
    ),
]

DROP = [
    *(f"DROP TRIGGER IF EXISTS {table}_reference_version ON {table}" for table in TABLES),
    "DROP FUNCTION IF EXISTS compliance_reference_version_bump()",
    "DROP TABLE IF EXISTS compliance_reference_version",
    "DROP SEQUENCE IF EXISTS compliance_reference_version_seq",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("compliance", "0003_compliance_verdict")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP))]
