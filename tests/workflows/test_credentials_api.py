import logging

import pytest
from django.db import connection

from accounts.access import personal_workspace
from accounts.models import Membership, User
from tests.conftest import client_for
from tests.factories import MembershipFactory, WorkspaceFactory
from workflows import credentials
from workflows.credentials import credential_value
from workflows.engine.errors import PermanentError
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.models import Credential
from workflows.services.credentials import BODY_NOT_AN_OBJECT, KIND_NEEDS_VALUE, NAME_TAKEN, credential_save
from workflows.services.workflows import workflow_create, workflow_delete

pytestmark = pytest.mark.django_db

SECRET = "sk-live-7Hq2-UNIQUE-SECRET-9f8e7d"
OTHER_SECRET = "xoxb-ANOTHER-SECRET-41c2"
LIST = "/api/v3/credentials"
BASIC = {"username": "u", "password": SECRET}
Role = Membership.Role


@pytest.fixture(autouse=True)
def logs_never_hold_a_secret(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("django.request", "django.server", "dwc.access"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    assert SECRET not in caplog.text
    assert OTHER_SECRET not in caplog.text


@pytest.fixture
def team():
    return WorkspaceFactory(name="Team")


def member(workspace, role: str) -> User:
    return MembershipFactory(workspace=workspace, role=role).user


@pytest.fixture
def team_admin(team):
    return member(team, Role.ADMIN)


@pytest.fixture
def admin_api(team_admin):
    return client_for(team_admin)


@pytest.fixture
def api_key(team):
    return credential_save(
        workspace_id=team.pk, name="openai-main", kind="openai", value={"api_key": SECRET, "organization": "org-1"}
    )


def detail(credential) -> str:
    return f"{LIST}/{credential.pk if isinstance(credential, Credential) else credential['id']}"


def assert_no_secret(response) -> None:
    assert SECRET.encode() not in response.content
    assert OTHER_SECRET.encode() not in response.content


def test_an_admin_creates_reads_lists_renames_replaces_and_deletes_a_credential(team, admin_api, caplog):
    created = admin_api.post(
        LIST,
        {"workspace": str(team.pk), "name": "openai-main", "kind": "openai", "value": {"api_key": SECRET}},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert_no_secret(created)
    body = created.json()
    assert set(body) == {
        "id",
        "workspace",
        "name",
        "kind",
        "fields",
        "expires_at",
        "created_by",
        "created_at",
        "updated_at",
    }
    assert (body["workspace"], body["name"], body["kind"], body["fields"]) == (
        str(team.pk),
        "openai-main",
        "openai",
        ["api_key"],
    )
    assert body["created_by"].endswith("@example.com")

    read = admin_api.get(detail(body))
    assert read.status_code == 200
    assert_no_secret(read)
    assert read.json() == body

    listed = admin_api.get(LIST)
    assert listed.status_code == 200
    assert_no_secret(listed)
    assert listed.json()["count"] == 1 and listed.json()["results"] == [body]

    renamed = admin_api.patch(detail(body), {"name": "openai-prod"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert_no_secret(renamed)
    assert (renamed.json()["name"], renamed.json()["fields"]) == ("openai-prod", ["api_key"])
    assert credential_value(workspace_id=team.pk, name="openai-prod", kinds=("openai",)) == {"api_key": SECRET}

    replaced = admin_api.patch(
        detail(body), {"value": {"api_key": OTHER_SECRET, "base_url": "http://127.0.0.1:11434/v1"}}, format="json"
    )
    assert replaced.status_code == 200, replaced.content
    assert_no_secret(replaced)
    assert replaced.json()["fields"] == ["api_key", "base_url"]
    assert credential_value(workspace_id=team.pk, name="openai-prod", kinds=("openai",)) == {
        "api_key": OTHER_SECRET,
        "base_url": "http://127.0.0.1:11434/v1",
    }

    deleted = admin_api.delete(detail(body))
    assert deleted.status_code == 204
    assert not Credential.objects.exists()
    assert admin_api.get(detail(body)).status_code == 404
    assert {"credential created", "credential updated", "credential deleted"} <= set(caplog.messages)


def test_a_new_credential_goes_to_the_personal_workspace_by_default(user, user_api):
    answer = user_api.post(LIST, {"name": "bearer", "kind": "http_bearer", "value": {"token": SECRET}}, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["workspace"] == str(personal_workspace(user).pk)
    assert answer.json()["created_by"] == user.email


def test_a_patch_may_change_the_kind_together_with_a_new_value(api_key, admin_api):
    answer = admin_api.patch(detail(api_key), {"kind": "anthropic", "value": {"api_key": OTHER_SECRET}}, format="json")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["kind"], answer.json()["fields"]) == ("anthropic", ["api_key"])
    alone = admin_api.patch(detail(api_key), {"kind": "http_bearer"}, format="json")
    assert alone.status_code == 400
    assert alone.json()["errors"] == {"value": [KIND_NEEDS_VALUE]}
    assert Credential.objects.get().kind == "anthropic"


def test_the_database_column_holds_no_plaintext(team, admin_api):
    answer = admin_api.post(
        LIST,
        {"workspace": str(team.pk), "name": "basic", "kind": "http_basic", "value": BASIC},
        format="json",
    )
    assert answer.status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_value FROM workflows_credential WHERE id = %s", [answer.json()["id"]])
        (raw,) = cursor.fetchone()
    assert SECRET.encode() not in bytes(raw)
    assert b"password" not in bytes(raw)
    assert credential_value(workspace_id=team.pk, name="basic", kinds=("http_basic",))["password"] == SECRET


def test_editors_and_viewers_read_names_and_kinds_but_never_write(team, api_key):
    for role in (Role.EDITOR, Role.VIEWER):
        api = client_for(member(team, role))
        listed = api.get(LIST)
        assert listed.status_code == 200
        assert_no_secret(listed)
        assert [(row["name"], row["kind"], row["fields"]) for row in listed.json()["results"]] == [
            ("openai-main", "openai", ["api_key", "organization"])
        ]
        read = api.get(detail(api_key))
        assert read.status_code == 200
        assert_no_secret(read)

        created = api.post(
            LIST, {"workspace": str(team.pk), "name": "x", "kind": "hmac_secret", "value": {"secret": "s"}}, "json"
        )
        assert created.status_code == 403, created.content
        assert created.json()["detail"] == "This needs the admin role or higher in the workspace."
        assert admin_forbidden(api.patch(detail(api_key), {"name": "renamed"}, format="json"))
        assert admin_forbidden(api.delete(detail(api_key)))
    assert list(Credential.objects.values_list("name", flat=True)) == ["openai-main"]


def admin_forbidden(response) -> bool:
    return response.status_code == 403 and response["Content-Type"] == "application/problem+json"


def test_an_owner_manages_credentials_too(team, api_key):
    api = client_for(member(team, Role.OWNER))
    assert api.patch(detail(api_key), {"name": "renamed"}, format="json").status_code == 200


def test_a_stranger_cannot_tell_a_credential_exists(team, api_key, user_api):
    assert user_api.get(LIST).json()["count"] == 0
    assert user_api.get(f"{LIST}?workspace={team.pk}").json()["count"] == 0
    for response in (
        user_api.get(detail(api_key)),
        user_api.patch(detail(api_key), {"name": "mine"}, format="json"),
        user_api.delete(detail(api_key)),
        user_api.delete(f"{detail(api_key)}?force=true"),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == credentials.NO_SUCH_CREDENTIAL
    assert user_api.get(f"{LIST}/not-a-uuid").status_code == 404
    created = user_api.post(
        LIST, {"workspace": str(team.pk), "name": "x", "kind": "http_bearer", "value": {"token": "t"}}, format="json"
    )
    assert created.status_code == 400
    assert created.json()["errors"] == {"workspace": ["No such workspace."]}
    assert Credential.objects.get().name == "openai-main"


def test_anonymous_requests_are_refused(api, api_key):
    assert api.get(LIST).status_code == 401
    assert api.get(detail(api_key)).status_code == 401


def test_a_duplicate_name_is_a_400_and_writes_nothing(team, api_key, admin_api):
    again = admin_api.post(
        LIST,
        {"workspace": str(team.pk), "name": "openai-main", "kind": "http_bearer", "value": {"token": OTHER_SECRET}},
        format="json",
    )
    assert again.status_code == 400
    assert again.json()["errors"] == {"name": [NAME_TAKEN]}
    assert_no_secret(again)
    other = credential_save(workspace_id=team.pk, name="other", kind="hmac_secret", value={"secret": "s"})
    rename = admin_api.patch(detail(other), {"name": "openai-main"}, format="json")
    assert rename.status_code == 400
    assert rename.json()["errors"] == {"name": [NAME_TAKEN]}
    rows = sorted(Credential.objects.values_list("name", "kind"))
    assert rows == [("openai-main", "openai"), ("other", "hmac_secret")]
    assert credential_value(workspace_id=team.pk, name="openai-main", kinds=("openai",))["api_key"] == SECRET


def test_the_same_name_may_live_in_another_workspace(api_key, user, user_api):
    answer = user_api.post(LIST, {"name": "openai-main", "kind": "openai", "value": {"api_key": "k"}}, format="json")
    assert answer.status_code == 201, answer.content


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"name": "x", "kind": "ftp", "value": {"token": SECRET}}, {"kind"}),
        ({"name": "x", "kind": ["openai"], "value": {"api_key": SECRET}}, {"kind"}),
        ({"name": "x", "kind": "http_bearer", "value": {}}, {"value.token"}),
        ({"name": "x", "kind": "http_basic", "value": {"username": "u"}}, {"value.password"}),
        ({"name": "x", "kind": "http_bearer", "value": {"token": SECRET, "tokn": "t"}}, {"value.tokn"}),
        ({"name": "x", "kind": "http_bearer", "value": {"token": 42}}, {"value.token"}),
        ({"name": "x", "kind": "http_bearer", "value": SECRET}, {"value"}),
        ({"name": "x", "kind": "openai", "value": {"api_key": SECRET, "base_url": "ftp://h/v1"}}, {"value.base_url"}),
        ({"name": "x", "kind": "openai", "value": {"api_key": SECRET, "base_url": "h:11434"}}, {"value.base_url"}),
        ({"name": "x", "kind": "openai", "value": {"api_key": SECRET, "base_url": "https://"}}, {"value.base_url"}),
        (
            {"name": "x", "kind": "anthropic", "value": {"api_key": SECRET, "base_url": "http://h:99999/v1"}},
            {"value.base_url"},
        ),
        (
            {"name": "x", "kind": "anthropic", "value": {"api_key": SECRET, "base_url": f"https://u:{SECRET}@h/v1"}},
            {"value.base_url"},
        ),
        ({"kind": "http_bearer", "value": {"token": SECRET}}, {"name"}),
        ({"name": "   ", "kind": "http_bearer", "value": {"token": SECRET}}, {"name"}),
        ({"name": "n" * 201, "kind": "http_bearer", "value": {"token": SECRET}}, {"name"}),
        ({"name": "x", "value": {"token": SECRET}}, {"kind"}),
        ({"name": "x", "kind": "http_bearer"}, {"value"}),
        ({"name": "x", "kind": "http_bearer", "value": {"token": SECRET}, "secret": SECRET}, {"secret"}),
    ],
)
def test_bad_input_is_a_400_naming_the_fields_and_writes_nothing(team, admin_api, body, errors):
    answer = admin_api.post(LIST, {"workspace": str(team.pk), **body}, format="json")
    assert answer.status_code == 400, answer.content
    assert answer["Content-Type"] == "application/problem+json"
    assert set(answer.json()["errors"]) == errors
    assert_no_secret(answer)
    assert not Credential.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(admin_api):
    answer = admin_api.post(LIST, ["name"], format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"non_field_errors": [BODY_NOT_AN_OBJECT]}


def test_a_bad_patch_leaves_the_credential_as_it_was(api_key, admin_api):
    before = Credential.objects.values().get()
    answer = admin_api.patch(
        detail(api_key), {"name": "renamed", "value": {"api_key": OTHER_SECRET, "base_url": "file:///etc"}}, "json"
    )
    assert answer.status_code == 400
    assert set(answer.json()["errors"]) == {"value.base_url"}
    assert Credential.objects.values().get() == before


def test_a_credential_stays_in_its_workspace(api_key, admin_api, user):
    answer = admin_api.patch(detail(api_key), {"workspace": str(personal_workspace(user).pk)}, format="json")
    assert answer.status_code == 200
    assert Credential.objects.get().workspace_id == api_key.workspace_id


def test_the_list_filters_by_kind_name_and_workspace_and_is_paginated(team, team_admin, api_key, admin_api):
    credential_save(workspace_id=team.pk, name="slack-alerts", kind="slack_webhook", value={"url": "https://h/x"})
    credential_save(workspace_id=team.pk, name="anthropic-main", kind="anthropic", value={"api_key": OTHER_SECRET})
    elsewhere = WorkspaceFactory()
    Membership.objects.create(workspace=elsewhere, user=team_admin, role=Role.VIEWER)
    credential_save(workspace_id=elsewhere.pk, name="other-main", kind="openai", value={"api_key": "k"})

    def names(query: str) -> list[str]:
        answer = admin_api.get(f"{LIST}{query}")
        assert answer.status_code == 200, answer.content
        assert_no_secret(answer)
        return [row["name"] for row in answer.json()["results"]]

    assert names("") == ["anthropic-main", "openai-main", "other-main", "slack-alerts"]
    assert names("?kind=openai") == ["openai-main", "other-main"]
    assert names("?search=MAIN") == ["anthropic-main", "openai-main", "other-main"]
    assert names(f"?workspace={team.pk}&search=main") == ["anthropic-main", "openai-main"]
    assert names("?ordering=-updated_at")[0] == "other-main"
    page = admin_api.get(LIST).json()
    assert set(page) == {"count", "next", "previous", "results"} and page["count"] == 4
    assert admin_api.get(f"{LIST}?kind=ftp").status_code == 400


@pytest.fixture
def referencing_workflows(team, api_key):
    owner = member(team, Role.OWNER)
    credential_save(workspace_id=team.pk, name="signer", kind="hmac_secret", value={"secret": OTHER_SECRET})
    fetch = workflow_create(
        actor=owner,
        workspace=team,
        data={
            "name": "Fetch news",
            "nodes": [
                {
                    "key": "fetch",
                    "type": "http_request",
                    "config": {"url": "https://example.org", "credential": "openai-main"},
                },
                {"key": "post", "type": "webhook", "config": {"url": "https://example.org/in", "secret": "signer"}},
            ],
        },
    )
    gone = workflow_create(
        actor=owner,
        workspace=team,
        data={
            "name": "Old",
            "nodes": [
                {
                    "key": "fetch",
                    "type": "http_request",
                    "config": {"url": "https://example.org/old", "credential": "openai-main"},
                }
            ],
        },
    )
    workflow_delete(workflow=gone, actor=owner)
    return fetch


def test_deleting_a_credential_a_workflow_names_is_a_409_unless_forced(api_key, referencing_workflows, admin_api):
    refused = admin_api.delete(detail(api_key))
    assert refused.status_code == 409, refused.content
    problem = refused.json()
    assert "'Fetch news'" in problem["detail"] and str(referencing_workflows.pk) in problem["detail"]
    assert "'Old'" not in problem["detail"], "a deleted workflow does not hold a credential"
    assert "?force=true" in problem["detail"]
    assert Credential.objects.filter(pk=api_key.pk).exists()

    assert admin_api.delete(f"{detail(api_key)}?force=maybe").status_code == 400
    assert Credential.objects.filter(pk=api_key.pk).exists()

    forced = admin_api.delete(f"{detail(api_key)}?force=true")
    assert forced.status_code == 204
    assert not Credential.objects.filter(pk=api_key.pk).exists()
    with pytest.raises(PermanentError, match="No credential named 'openai-main'"):
        credential_value(workspace_id=api_key.workspace_id, name="openai-main", kinds=("http_bearer",))


def test_a_webhook_node_secret_counts_as_a_reference(team, referencing_workflows, admin_api):
    signer = Credential.objects.get(name="signer")
    assert admin_api.delete(detail(signer)).status_code == 409


def test_a_credential_no_node_names_deletes_at_once(team, referencing_workflows, admin_api, user):
    unused = credential_save(workspace_id=team.pk, name="unused", kind="http_bearer", value={"token": SECRET})
    same_name_elsewhere = credential_save(
        workspace_id=personal_workspace(user).pk, name="openai-main", kind="openai", value={"api_key": "k"}
    )
    assert admin_api.delete(detail(unused)).status_code == 204
    assert client_for(user).delete(detail(same_name_elsewhere)).status_code == 204


def test_an_export_of_a_workflow_that_names_a_credential_holds_no_secret(team, referencing_workflows, admin_api):
    exported = admin_api.get(f"/api/v3/workflows/{referencing_workflows.pk}/export")
    assert exported.status_code == 200
    assert_no_secret(exported)
    assert b'"credential": "openai-main"' in exported.content or b'"credential":"openai-main"' in exported.content


def test_every_node_config_field_that_names_a_credential_is_checked_on_delete():
    named = {
        (type_name, field)
        for type_name, node_type in NODE_TYPES.items()
        for field, schema in node_type.config_schema.get("properties", {}).items()
        if "credential" in schema.get("description", "").lower() and schema.get("type") == "string"
    }
    assert named == set(credentials.REFERENCES.items())


# --- admin ------------------------------------------------------------------------------------------


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1"))
    return client


def test_the_admin_never_shows_a_value(api_key, operator):
    changelist = operator.get("/admin/workflows/credential/")
    assert changelist.status_code == 200
    assert_no_secret(changelist)
    assert "api_key, organization" in changelist.content.decode()

    change = operator.get(f"/admin/workflows/credential/{api_key.pk}/change/")
    assert change.status_code == 200
    assert_no_secret(change)
    page = change.content.decode()
    assert "leave blank to keep the current value" in page
    assert "api_key, organization" in page


def test_an_admin_form_sent_back_with_errors_does_not_echo_the_typed_value(api_key, operator):
    page = operator.post(
        f"/admin/workflows/credential/{api_key.pk}/change/",
        {"name": "openai-main", "kind": "openai", "value": f'{{"api_key": "{OTHER_SECRET}", "base_url": "ftp://x"}}'},
    )
    assert page.status_code == 200
    assert "base_url: " + credentials.URL_INVALID in str(page.context["adminform"].form.errors)
    assert_no_secret(page)
    stored = credential_value(workspace_id=api_key.workspace_id, name="openai-main", kinds=("openai",))
    assert stored["api_key"] == SECRET


def test_the_admin_keeps_the_value_when_left_blank_and_asks_for_one_on_a_new_kind(api_key, operator):
    url = f"/admin/workflows/credential/{api_key.pk}/change/"
    kept = operator.post(url, {"name": "openai-renamed", "kind": "openai", "value": ""})
    assert kept.status_code == 302, kept.context["adminform"].form.errors
    assert credential_value(workspace_id=api_key.workspace_id, name="openai-renamed", kinds=("openai",)) == {
        "api_key": SECRET,
        "organization": "org-1",
    }
    new_kind = operator.post(url, {"name": "openai-renamed", "kind": "http_bearer", "value": ""})
    assert new_kind.status_code == 200
    assert KIND_NEEDS_VALUE in str(new_kind.context["adminform"].form.errors)
    assert Credential.objects.get().kind == "openai"


def test_the_admin_refuses_a_name_the_workspace_already_uses(team, api_key, operator):
    other = credential_save(workspace_id=team.pk, name="other", kind="hmac_secret", value={"secret": "s"})
    url = f"/admin/workflows/credential/{other.pk}/change/"
    page = operator.post(url, {"name": "openai-main", "kind": "hmac_secret"})
    assert page.status_code == 200
    assert NAME_TAKEN in str(page.context["adminform"].form.errors)
    assert Credential.objects.get(pk=other.pk).name == "other"
