"""Whom the email node may write to: the workspace's members, and the domains the operator allows.

Registration is open by default, so without a rule any newcomer's workflow could mail anyone through
the operator's mail server.
"""

import pytest
from django.core import mail

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import StepContext
from workflows.engine.nodes.email import EmailNode

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace():
    return MembershipFactory(user=UserFactory(email="owner@members.example"), role="owner").workspace


def send(workspace, **config):
    prepared = {"config": {"subject": "Weekly report", "body": "All green.", **config}}
    context = StepContext(
        run_id="run-1", step_id="step-1", node_key="mail", attempt=1, workspace_id=str(workspace.pk), expressions={}
    )
    return EmailNode.execute(prepared, context)


def refused(workspace, **config) -> str:
    with pytest.raises(PermanentError) as error:
        send(workspace, **config)
    return str(error.value)


def test_by_default_mail_goes_to_the_workspaces_members_only(workspace):
    colleague = MembershipFactory(workspace=workspace, user=UserFactory(email="colleague@elsewhere.example")).user
    result = send(workspace, to=["OWNER@members.example"], cc=[f"A colleague <{colleague.email}>"])
    assert result.output["sent"] == 1

    message = refused(workspace, to=["owner@members.example"], bcc=["stranger@members.example"])
    assert "stranger@members.example" in message
    assert "DWC_EMAIL_ALLOWED_DOMAINS" in message  # the refusal names the rule
    outsider = MembershipFactory(workspace=WorkspaceFactory(), user=UserFactory(email="other@tenant.example")).user
    assert outsider.email in refused(workspace, to=[outsider.email])  # a member of another workspace
    assert len(mail.outbox) == 1


def test_the_operator_allows_domains_for_every_workspace(workspace, settings):
    settings.DWC_EMAIL_ALLOWED_DOMAINS = ["partner.example"]
    assert send(workspace, to=["anyone@partner.example", "Someone <s@PARTNER.example>"]).output["sent"] == 1
    assert "x@sub.partner.example" in refused(workspace, to=["x@sub.partner.example"])
    settings.DWC_EMAIL_ALLOWED_DOMAINS = ["*"]
    assert send(workspace, to=["anyone@anywhere.example"]).output["sent"] == 1


def test_an_operator_allows_a_workspace_more_domains(workspace):
    workspace.email_allowed_domains = ["acme.example"]
    workspace.save()
    assert send(workspace, to=["sales@acme.example"]).output["sent"] == 1
    other = MembershipFactory(user=UserFactory(email="owner2@members.example"), role="owner").workspace
    assert "sales@acme.example" in refused(other, to=["sales@acme.example"])


@pytest.mark.parametrize(
    "entry",
    [
        "owner@members.example, stranger@elsewhere.example",  # two addresses in one entry
        "owner@members.example stranger@elsewhere.example",
        "not an address",
    ],
)
def test_an_entry_that_is_not_one_address_is_refused(workspace, entry):
    assert entry in refused(workspace, to=[entry])
    assert mail.outbox == []
