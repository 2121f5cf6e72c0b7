"""Queries the engine compiles once per process: same rows as the ORM's, for whatever value."""

import pytest
from django.db.models import Q

from accounts.models import Membership, Workspace
from tests.factories import UserFactory, WorkspaceFactory
from workflows.engine.prepared import PreparedQuery

pytestmark = pytest.mark.django_db


def test_a_prepared_query_returns_what_the_orm_returns_for_each_value():
    first, second = WorkspaceFactory(name="First"), WorkspaceFactory(name="Second")
    for user in (UserFactory(), UserFactory()):
        Membership.objects.create(workspace=first, user=user, role=Membership.Role.EDITOR)
    members = PreparedQuery(lambda workspace_id: Membership.objects.filter(workspace_id=workspace_id).order_by("pk"))

    for workspace in (first, second, first):
        expected = list(Membership.objects.filter(workspace=workspace).order_by("pk"))
        assert list(members(workspace.pk)) == expected
        assert list(members(str(workspace.pk))) == expected  # ids as text too, as Celery messages carry them
    assert [member.role for member in members(first.pk)] == ["editor", "editor"]


def test_a_query_must_use_its_value_exactly_once():
    twice = PreparedQuery(lambda value: Workspace.objects.filter(Q(pk=value) | Q(created_by_id=value)))
    with pytest.raises(ValueError, match="exactly once, not 2 times"):
        twice(WorkspaceFactory().pk)
