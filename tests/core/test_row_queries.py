"""core.row_queries: one row and the row its foreign key names, as the ORM would make them."""

import pytest

from core.row_queries import RowWithRelated
from tests.factories import UserFactory
from workflows.models import WebhookTrigger
from workflows.services.webhooks import webhook_create
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

hook_with_workflow = RowWithRelated(lambda hashed: WebhookTrigger.objects.filter(token_hash=hashed), "workflow")


def test_both_instances_are_as_the_orm_makes_them_json_and_dates_included():
    user = UserFactory()
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    workflow = workflow_create(
        actor=user,
        workspace=user.memberships.get().workspace,
        data={
            "name": "Typed",
            "input_schema": schema,
            "nodes": [{"key": "a", "type": "transform", "config": {"values": {}}}],
        },
    )
    hook, _ = webhook_create(workflow=workflow, actor=user)
    expected = WebhookTrigger.objects.select_related("workflow").get(pk=hook.pk)

    found = hook_with_workflow.get(hook.token_hash)

    assert found == expected and found.workflow == expected.workflow
    for field in WebhookTrigger._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    for field in type(workflow)._meta.concrete_fields:
        assert getattr(found.workflow, field.attname) == getattr(expected.workflow, field.attname), field.name
    assert found.workflow.input_schema == schema  # decoded JSON, not its text
    assert not found._state.adding and not found.workflow._state.adding


def test_no_row_is_none():
    assert hook_with_workflow.get("0" * 64) is None
