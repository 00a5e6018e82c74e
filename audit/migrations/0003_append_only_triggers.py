from django.db import migrations

TABLES = ("audit_auditevent", "audit_auditseal", "audit_auditanchor")

INSTALL = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The retention purge (manage.py purge_audit) is the one sanctioned deletion: it
    -- sets oms.audit_purge for its own transaction after checking retention and legal
    -- holds, and records an anchor so the rest of the chain still verifies.
    IF TG_OP = 'DELETE' AND current_setting('oms.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    -- Test databases are emptied between tests by TRUNCATE; only a session that says so
    -- (the test suite's connections) may.
    IF TG_OP = 'TRUNCATE' AND current_setting('oms.audit_allow_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit records are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE FUNCTION audit_event_stamp_txid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The transaction id first, then the event id: every id handed out belongs to a
    -- transaction whose id is older than any taken afterwards (the sealer relies on it).
    NEW.txid := pg_current_xact_id()::text::bigint;
    NEW.id := nextval(pg_get_serial_sequence('audit_auditevent', 'id'));
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_event_stamp_txid BEFORE INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_stamp_txid();
"""

PER_TABLE = """
CREATE TRIGGER {table}_no_change_row BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER {table}_no_update_stmt BEFORE UPDATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
"""

REMOVE = """
DROP TRIGGER IF EXISTS audit_event_stamp_txid ON audit_auditevent;
{per_table}
DROP FUNCTION IF EXISTS audit_event_stamp_txid();
DROP FUNCTION IF EXISTS audit_append_only();
"""


def install(apps, schema_editor):
    # The guarantee lives in PostgreSQL (production and the test suite); the embedded
    # SQLite demo database relies on the model-level refusals only.
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(INSTALL, params=None)
    for table in TABLES:
        schema_editor.execute(PER_TABLE.format(table=table), params=None)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    drops = "\n".join(
        f"DROP TRIGGER IF EXISTS {table}_{name} ON {table};"
        for table in TABLES
        for name in ("no_change_row", "no_update_stmt", "no_truncate")
    )
    schema_editor.execute(REMOVE.format(per_table=drops), params=None)


class Migration(migrations.Migration):
    """Audit tables are append-only at the database (SEC 17a-4(f)): UPDATE, DELETE and
    TRUNCATE are refused, row and statement level, whatever the application does."""

    dependencies = [("audit", "0002_chain_seals_anchor")]

    operations = [migrations.RunPython(install, remove)]
