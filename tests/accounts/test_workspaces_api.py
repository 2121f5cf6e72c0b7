import pytest

from accounts.models import Membership, Workspace
from accounts.services import LAST_OWNER, NO_SUCH_USER, OWNERS_ONLY, PERSONAL_WORKSPACE
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

Role = Membership.Role


@pytest.fixture
def team():
    """A shared workspace with one member of each role, and a stranger outside it."""
    workspace = WorkspaceFactory(name="Team")
    members = {role: MembershipFactory(workspace=workspace, role=role).user for role in Role.values}
    return workspace, members, UserFactory()


def members_url(workspace) -> str:
    return f"/api/v3/workspaces/{workspace.id}/members"


def test_owner_adds_an_editor(team):
    workspace, members, stranger = team
    answer = client_for(members["owner"]).post(
        members_url(workspace), {"email": stranger.email, "role": "editor"}, format="json"
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["user"]["email"] == stranger.email
    assert Membership.objects.get(workspace=workspace, user=stranger).role == "editor"


def test_editor_cannot_add_members(team):
    workspace, members, stranger = team
    answer = client_for(members["editor"]).post(
        members_url(workspace), {"email": stranger.email, "role": "viewer"}, format="json"
    )
    assert answer.status_code == 403
    assert answer["Content-Type"] == "application/problem+json"
    assert not Membership.objects.filter(workspace=workspace, user=stranger).exists()


def test_strangers_get_404_everywhere(team):
    workspace, members, stranger = team
    api = client_for(stranger)
    target = members["viewer"].id
    assert api.get(f"/api/v3/workspaces/{workspace.id}").status_code == 404
    assert api.patch(f"/api/v3/workspaces/{workspace.id}", {"name": "x"}, format="json").status_code == 404
    assert api.delete(f"/api/v3/workspaces/{workspace.id}").status_code == 404
    assert api.get(members_url(workspace)).status_code == 404
    assert api.post(members_url(workspace), {"email": stranger.email}, format="json").status_code == 404
    assert api.patch(f"{members_url(workspace)}/{target}", {"role": "admin"}, format="json").status_code == 404
    assert api.delete(f"{members_url(workspace)}/{target}").status_code == 404
    assert Workspace.objects.get(pk=workspace.pk).name == "Team"
    assert Membership.objects.get(workspace=workspace, user_id=target).role == "viewer"


def test_list_shows_only_my_workspaces_with_my_role(team):
    workspace, members, _ = team
    WorkspaceFactory(name="Someone else's")
    listing = client_for(members["editor"]).get("/api/v3/workspaces").json()
    assert listing["count"] == 2
    by_id = {item["id"]: item for item in listing["results"]}
    assert (by_id[str(workspace.id)]["role"], by_id[str(workspace.id)]["member_count"]) == ("editor", 4)
    [personal] = [item for item in listing["results"] if item["is_personal"]]
    assert (personal["role"], personal["member_count"]) == ("owner", 1)


def test_create_workspace_makes_the_caller_owner(user, user_api):
    answer = user_api.post("/api/v3/workspaces", {"name": "Docs team"}, format="json")
    assert answer.status_code == 201
    assert answer.json()["role"] == "owner" and answer.json()["is_personal"] is False
    assert Membership.objects.get(workspace_id=answer.json()["id"], user=user).role == "owner"


def test_create_workspace_needs_a_name(user_api):
    answer = user_api.post("/api/v3/workspaces", {"name": ""}, format="json")
    assert answer.status_code == 400
    assert "name" in answer.json()["errors"]


def test_admin_renames_viewer_cannot(team):
    workspace, members, _ = team
    url = f"/api/v3/workspaces/{workspace.id}"
    assert client_for(members["viewer"]).patch(url, {"name": "Nope"}, format="json").status_code == 403
    renamed = client_for(members["admin"]).patch(url, {"name": "Writers"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Writers"


def test_only_owners_delete_and_personal_workspaces_stay(team, user, user_api):
    workspace, members, _ = team
    assert client_for(members["admin"]).delete(f"/api/v3/workspaces/{workspace.id}").status_code == 403
    assert client_for(members["owner"]).delete(f"/api/v3/workspaces/{workspace.id}").status_code == 204
    assert not Workspace.objects.filter(pk=workspace.pk).exists()

    user_api.post("/api/v3/workspaces", {"name": "Scratch"}, format="json")
    personal = Workspace.objects.create(name="Mine", is_personal=True)
    Membership.objects.create(workspace=personal, user=user, role="owner")
    answer = user_api.delete(f"/api/v3/workspaces/{personal.id}")
    assert answer.status_code == 409
    assert answer.json()["detail"] == PERSONAL_WORKSPACE


def test_admin_cannot_grant_or_take_the_owner_role(team):
    workspace, members, stranger = team
    admin = client_for(members["admin"])
    grant = admin.post(members_url(workspace), {"email": stranger.email, "role": "owner"}, format="json")
    assert grant.status_code == 403 and grant.json()["detail"] == OWNERS_ONLY
    demote = admin.patch(f"{members_url(workspace)}/{members['owner'].id}", {"role": "viewer"}, format="json")
    assert demote.status_code == 403
    assert Membership.objects.get(workspace=workspace, user=members["owner"]).role == "owner"


def test_change_role_and_remove_member(team):
    workspace, members, _ = team
    owner = client_for(members["owner"])
    promoted = owner.patch(f"{members_url(workspace)}/{members['viewer'].id}", {"role": "admin"}, format="json")
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert owner.delete(f"{members_url(workspace)}/{members['editor'].id}").status_code == 204
    assert not Membership.objects.filter(workspace=workspace, user=members["editor"]).exists()


def test_invalid_role_is_400(team):
    workspace, members, _ = team
    answer = client_for(members["owner"]).patch(
        f"{members_url(workspace)}/{members['viewer'].id}", {"role": "god"}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json()["errors"]["role"] == ['"god" is not a valid choice.']


def test_adding_an_unknown_email_or_an_existing_member_fails_cleanly(team):
    workspace, members, _ = team
    owner = client_for(members["owner"])
    unknown = owner.post(members_url(workspace), {"email": "ghost@example.com"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["errors"] == {"email": [NO_SUCH_USER]}
    again = owner.post(members_url(workspace), {"email": members["viewer"].email}, format="json")
    assert again.status_code == 409
    assert Membership.objects.filter(workspace=workspace).count() == 4


def test_the_last_owner_can_neither_leave_nor_be_demoted(team):
    workspace, members, _ = team
    owner = client_for(members["owner"])
    leave = owner.delete(f"{members_url(workspace)}/{members['owner'].id}")
    assert leave.status_code == 409 and leave.json()["detail"] == LAST_OWNER
    demote = owner.patch(f"{members_url(workspace)}/{members['owner'].id}", {"role": "admin"}, format="json")
    assert demote.status_code == 409
    assert Membership.objects.get(workspace=workspace, user=members["owner"]).role == "owner"


def test_a_member_may_leave(team):
    workspace, members, _ = team
    answer = client_for(members["viewer"]).delete(f"{members_url(workspace)}/{members['viewer'].id}")
    assert answer.status_code == 204
    assert not Membership.objects.filter(workspace=workspace, user=members["viewer"]).exists()


def test_viewer_cannot_remove_others(team):
    workspace, members, _ = team
    answer = client_for(members["viewer"]).delete(f"{members_url(workspace)}/{members['editor'].id}")
    assert answer.status_code == 403
    assert Membership.objects.filter(workspace=workspace, user=members["editor"]).exists()


def test_members_list_is_readable_by_every_member(team):
    workspace, members, _ = team
    listing = client_for(members["viewer"]).get(members_url(workspace)).json()
    assert sorted(item["role"] for item in listing["results"]) == sorted(Role.values)
