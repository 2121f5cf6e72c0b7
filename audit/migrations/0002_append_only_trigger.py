"""Refuse UPDATE and DELETE on audit events and checkpoints in the database itself.

Two exceptions: the purge (audit.services.audit_purge) deletes events after `SET LOCAL
audit.allow_purge = 'on'`; and deleting a user or workspace sets the events' foreign key to NULL
(Django's SET_NULL), which changes nothing that is hashed.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    -- Nested IFs: PL/pgSQL does not promise to short-circuit AND, and checkpoints have no actor_id.
    IF TG_TABLE_NAME = 'audit_auditevent' THEN
        IF TG_OP = 'DELETE' AND current_setting('audit.allow_purge', true) = 'on' THEN
            RETURN OLD;
        END IF;
        IF TG_OP = 'UPDATE' THEN
            IF (to_jsonb(NEW) - 'actor_id' - 'workspace_id') = (to_jsonb(OLD) - 'actor_id' - 'workspace_id')
                    AND (NEW.actor_id IS NULL OR NEW.actor_id = OLD.actor_id)
                    AND (NEW.workspace_id IS NULL OR NEW.workspace_id = OLD.workspace_id) THEN
                RETURN NEW;
            END IF;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit records are append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_append_only();
"""


def create_triggers(apps, schema_editor):
    schema_editor.execute(CREATE, params=None)


def drop_triggers(apps, schema_editor):
    schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
