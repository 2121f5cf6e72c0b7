import pytest

from accounts.models import NOT_A_DOMAIN, Membership, User, Workspace
from audit.models import AuditEvent
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1"))
    return client


def test_changelists_and_change_pages_render(operator):
    membership = MembershipFactory(role="editor")
    for url in [
        "/admin/accounts/user/",
        "/admin/accounts/user/?q=example",
        "/admin/accounts/workspace/",
        "/admin/accounts/membership/?role=editor",
        f"/admin/accounts/user/{membership.user.pk}/change/",
        f"/admin/accounts/workspace/{membership.workspace.pk}/change/",
        "/admin/accounts/user/add/",
    ]:
        assert operator.get(url).status_code == 200, url
    page = operator.get(f"/admin/accounts/workspace/{membership.workspace.pk}/change/").content.decode()
    assert membership.user.email in page  # the membership inline


def test_operator_adds_a_user_with_an_email_login(operator):
    answer = operator.post(
        "/admin/accounts/user/add/",
        {"email": "new@example.com", "name": "New", "password1": "x-Long-enough-1", "password2": "x-Long-enough-1"},
    )
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    user = User.objects.get(email="new@example.com")
    assert user.check_password("x-Long-enough-1")
    # Like a registered user, they own a personal workspace, so they can start working at once.
    [membership] = Membership.objects.filter(user=user)
    assert (membership.role, membership.workspace.is_personal) == (Membership.Role.OWNER, True)
    created = AuditEvent.objects.get(action="workspace.created", workspace=membership.workspace)
    assert created.changes["owner"] == [None, "new@example.com"]


def test_operator_adds_a_member_through_the_workspace_inline(operator):
    workspace, user = Workspace.objects.create(name="Ops"), UserFactory()
    answer = operator.post(
        f"/admin/accounts/workspace/{workspace.pk}/change/",
        {
            "name": "Ops",
            "is_personal": "",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-0-user": str(user.pk),
            "memberships-0-role": "admin",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert Membership.objects.get(workspace=workspace, user=user).role == "admin"


def test_operator_allows_a_workspace_to_mail_more_domains_and_it_is_audited(operator):
    workspace = Workspace.objects.create(name="Acme")
    form = {"name": "Acme", "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    change = f"/admin/accounts/workspace/{workspace.pk}/change/"
    refused = operator.post(change, {**form, "email_allowed_domains": "acme.example,not a domain"})
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["email_allowed_domains"] == [
        NOT_A_DOMAIN.format(entry="not a domain")
    ]

    answer = operator.post(change, {**form, "email_allowed_domains": "acme.example,*"})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    workspace.refresh_from_db()
    assert workspace.email_allowed_domains == ["acme.example", "*"]
    updated = AuditEvent.objects.get(action="workspace.updated", workspace=workspace)
    assert updated.changes["email_allowed_domains"] == [[], ["acme.example", "*"]]
