"""Append-only in the database: triggers refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL) of
audit events, whoever issues them (raw SQL included), unless the transaction has switched on
the maintenance mode of radviewer.audit.integrity.audit_maintenance.

Caution for later migrations: on SQLite, Django's schema editor rebuilds a table to alter it
(create a copy, drop the original), which drops these triggers with it. A migration that
alters audit_auditevent must recreate them (tests/radviewer/test_audit_integrity.py fails
if they are gone).
"""

from django.db import migrations

TABLE = "audit_auditevent"

PG_INSTALL = [
    """
    CREATE OR REPLACE FUNCTION audit_event_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF coalesce(current_setting('radviewer.audit_maintenance', true), '') = 'on' THEN
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            IF TG_OP = 'UPDATE' THEN RETURN NEW; END IF;
            RETURN NULL;  -- TRUNCATE: a statement trigger, its result is ignored
        END IF;
        RAISE EXCEPTION 'audit events are append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'see docs/audit.md (maintenance)';
    END
    $$;
    """,
    f"""
    CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change();
    """,
    f"""
    CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change();
    """,
]
PG_REMOVE = [
    f"DROP TRIGGER IF EXISTS audit_event_no_truncate ON {TABLE};",
    f"DROP TRIGGER IF EXISTS audit_event_no_update_delete ON {TABLE};",
    "DROP FUNCTION IF EXISTS audit_event_refuse_change();",
]

# SQLite has no session variables: the switch is a row in a table Django does not manage (so
# `flush` never empties it), present only inside a maintenance transaction.
SQLITE_INSTALL = [
    "CREATE TABLE IF NOT EXISTS audit_maintenance (id INTEGER PRIMARY KEY CHECK (id = 1));",
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent
    WHEN NOT EXISTS (SELECT 1 FROM audit_maintenance)
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE on audit_auditevent refused'); END;
    """,
    """
    CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_auditevent
    WHEN NOT EXISTS (SELECT 1 FROM audit_maintenance)
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE on audit_auditevent refused'); END;
    """,
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS audit_event_no_update;",
    "DROP TRIGGER IF EXISTS audit_event_no_delete;",
    "DROP TABLE IF EXISTS audit_maintenance;",
]


def _run(schema_editor, statements_by_vendor):
    vendor = schema_editor.connection.vendor
    if vendor not in statements_by_vendor:
        raise RuntimeError(f"no append-only triggers for the {vendor} database (PostgreSQL and SQLite only)")
    for statement in statements_by_vendor[vendor]:
        schema_editor.execute(statement, params=None)


def install(apps, schema_editor):
    _run(schema_editor, {"postgresql": PG_INSTALL, "sqlite": SQLITE_INSTALL})


def remove(apps, schema_editor):
    _run(schema_editor, {"postgresql": PG_REMOVE, "sqlite": SQLITE_REMOVE})


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_event_hash_chain")]

    operations = [migrations.RunPython(install, remove, elidable=False)]
