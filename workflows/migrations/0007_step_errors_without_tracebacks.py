"""Step errors no longer carry a traceback (workspace members read them): drop the ones already stored,
on the steps and in the step events that copied them."""

from django.db import migrations

STRIP = [
    "UPDATE workflows_steprun SET error = error - 'traceback' "
    "WHERE jsonb_typeof(error) = 'object' AND error ? 'traceback'",
    "UPDATE workflows_runevent SET data = jsonb_set(data, '{error}', (data -> 'error') - 'traceback') "
    "WHERE jsonb_typeof(data -> 'error') = 'object' AND data -> 'error' ? 'traceback'",
]


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0006_webhook_deliveries"),
    ]

    operations = [migrations.RunSQL(STRIP, reverse_sql=migrations.RunSQL.noop)]
