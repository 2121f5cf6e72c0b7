from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Membership
from tests.factories import WorkspaceFactory
from workflows.services.webhooks import webhook_create
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db


def test_list_triggers_prints_each_kind_and_masks_tokens(user):
    from workflows.models import EventTrigger
    from workflows.services.schedules import schedule_create

    workspace = Membership.objects.get(user=user).workspace
    target = workflow_create(actor=user, workspace=workspace, data={"name": "Digest", "status": "active"})
    source = workflow_create(actor=user, workspace=workspace, data={"name": "Import", "status": "active"})
    _, token = webhook_create(workflow=target, actor=user, secret="s")
    schedule_create(workflow=target, actor=user, data={"cron": "0 9 * * 1", "timezone": "Europe/Berlin"})
    EventTrigger.objects.create(workflow=target, source_workflow=source, on="succeeded")
    out = StringIO()
    call_command("list_triggers", "--workspace", str(workspace.pk), stdout=out)
    text = out.getvalue()
    assert f"webhook   Digest  /hooks/…{token[-6:]}/  signed" in text
    assert token not in text
    assert "schedule  Digest  0 9 * * 1 (Europe/Berlin)  next " in text
    assert "+01:00" in text or "+02:00" in text  # the next Monday 09:00 in Berlin, CET or CEST
    assert "event     Digest  when Import succeeded" in text

    empty = StringIO()
    call_command("list_triggers", "--workspace", str(WorkspaceFactory().pk), stdout=empty)
    assert empty.getvalue().strip() == "No triggers."
    with pytest.raises(CommandError, match="No workspace with id 'nope'"):
        call_command("list_triggers", "--workspace", "nope")
