"""The rules and templates API: editors manage them, viewers and strangers cannot; templates are parsed at
save (400 naming field and line) and previewed with a sample event; each change is audited."""

import pytest

from audit.models import AuditEvent
from notifications.models import Rule, Template
from tests.conftest import client_for
from tests.factories import WorkspaceFactory
from tests.notifications.conftest import channel_of
from tests.notifications.test_api import problem

pytestmark = pytest.mark.django_db

RULES = "/api/v3/notifications/rules"
TEMPLATES = "/api/v3/notifications/templates"


def test_an_editor_creates_a_template_previews_it_and_a_rule_using_it_and_each_change_is_audited(team):
    editor = client_for(team["editor"])
    workspace = str(team["workspace"].pk)
    body = {
        "workspace": workspace,
        "name": "Failures",
        "subject": "{{ workflow.name }} failed",
        "body": "Hello {{ recipient.name or recipient.email }}\n{{ error.message }}",
        "formats": {"slack_blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*{{ workflow.name }}*"}}]},
    }
    created = editor.post(TEMPLATES, body, format="json")
    assert created.status_code == 201, created.content
    template = created.json()

    preview = editor.post(f"{TEMPLATES}/preview", {**body, "event_type": "run.failed"}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["subject"] == "Quarterly report failed"
    assert preview.json()["body"].endswith("The model provider answered 503.")
    assert preview.json()["formats"]["slack_blocks"][0]["text"]["text"] == "*Quarterly report*"

    channel = channel_of(team["workspace"], "in_app")
    rule = editor.post(
        RULES,
        {
            "workspace": workspace,
            "name": "Ops",
            "events": ["run.failed", "run.timed_out"],
            "channels": [str(channel.pk)],
            "roles": ["admin"],
            "template": template["id"],
            "throttle_count": 5,
        },
        format="json",
    )
    assert rule.status_code == 201, rule.content
    assert rule.json()["member_kinds"] == ["in_app"]
    assert rule.json()["channels"] == [str(channel.pk)]

    changed = editor.patch(f"{RULES}/{rule.json()['id']}", {"enabled": False}, format="json")
    assert (changed.status_code, changed.json()["enabled"]) == (200, False)
    in_use = editor.delete(f"{TEMPLATES}/{template['id']}")
    assert "Ops" in problem(in_use, 409)["detail"]
    assert editor.delete(f"{RULES}/{rule.json()['id']}").status_code == 204
    assert editor.delete(f"{TEMPLATES}/{template['id']}").status_code == 204

    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == [
        "notification_template.created",
        "notification_rule.created",
        "notification_rule.updated",
        "notification_rule.deleted",
        "notification_template.deleted",
    ]


@pytest.mark.parametrize(
    ("body", "field", "line"),
    [
        ({"body": "ok\n\n{{ run.id "}, "body", 3),
        ({"body": "ok", "subject": "{% if %}"}, "subject", 1),
        ({"body": "ok", "formats": {"html": "<p>\n{{ x }</p>"}}, "formats.html", 2),
        (
            {"body": "ok", "formats": {"teams_card": {"body": [{"text": "{{ a b }}"}]}}},
            "formats.teams_card.body.0.text",
            1,
        ),
    ],
)
def test_a_template_that_does_not_parse_is_refused_naming_field_and_line(team, body, field, line):
    answer = client_for(team["editor"]).post(TEMPLATES, {"name": "t", **body}, format="json")
    errors = problem(answer, 400)["errors"]
    assert list(errors) == [field]
    assert f"line {line}" in errors[field][0]
    assert not Template.objects.exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "r", "events": ["run.exploded"], "roles": ["admin"]}, {"events"}),
        ({"name": "r", "events": [], "roles": ["admin"]}, {"events"}),
        ({"name": "r", "events": ["run.failed"]}, {"channels"}),
        ({"name": "r", "events": ["run.failed"], "roles": ["admin"], "member_kinds": []}, {"member_kinds"}),
        ({"name": "r", "events": ["run.failed"], "roles": ["root"]}, {"roles"}),
        ({"name": "r", "events": ["run.failed"], "roles": ["admin"], "throttle_count": 0}, {"throttle_count"}),
        (
            {"name": "r", "events": ["run.failed"], "roles": ["admin"], "digest_window_seconds": 5},
            {"digest_window_seconds"},
        ),
        ({"name": "r", "events": ["run.failed"], "roles": ["admin"], "workflow": "nope"}, {"workflow"}),
        ({"name": "r", "events": ["run.failed"], "channels": ["x"]}, {"channels"}),
        ({"name": "r", "events": ["run.failed"], "roles": ["admin"], "owner": "me"}, {"owner"}),
        ({"events": "run.failed", "roles": ["admin"]}, {"name", "events"}),
        ({"name": "r", "events": ["run.failed"], "roles": ["admin"], "enabled": "yes"}, {"enabled"}),
    ],
)
def test_a_bad_rule_is_refused_naming_its_fields(team, body, fields):
    answer = client_for(team["editor"]).post(RULES, body, format="json")
    assert set(problem(answer, 400)["errors"]) == fields
    assert not Rule.objects.exists()


def test_a_rule_cannot_name_another_workspaces_channel_template_or_people(team):
    elsewhere = WorkspaceFactory()
    foreign_channel = channel_of(elsewhere, "in_app")
    foreign_template = Template.objects.create(workspace=elsewhere, name="t", body="b")
    answer = client_for(team["editor"]).post(
        RULES,
        {
            "name": "r",
            "events": ["run.failed"],
            "channels": [str(foreign_channel.pk)],
            "members": [str(team["stranger"].pk)],
            "template": str(foreign_template.pk),
        },
        format="json",
    )
    assert set(problem(answer, 400)["errors"]) == {"channels", "members", "template"}


def test_viewers_may_not_see_or_change_rules_and_strangers_do_not_find_them(team):
    rule = Rule.objects.create(workspace=team["workspace"], name="r", events=["run.failed"], roles=["admin"])
    template = Template.objects.create(workspace=team["workspace"], name="t", body="b")
    viewer, stranger = client_for(team["viewer"]), client_for(team["stranger"])

    assert viewer.get(RULES).json()["results"] == []
    problem(viewer.get(f"{RULES}/{rule.pk}"), 403)
    problem(viewer.patch(f"{RULES}/{rule.pk}", {"enabled": False}, format="json"), 403)
    preview = {"body": "x", "workspace": str(team["workspace"].pk)}
    problem(viewer.post(f"{TEMPLATES}/preview", preview, format="json"), 403)
    problem(stranger.get(f"{RULES}/{rule.pk}"), 404)
    problem(stranger.delete(f"{TEMPLATES}/{template.pk}"), 404)
    problem(stranger.patch(f"{TEMPLATES}/{template.pk}", {"body": "y"}, format="json"), 404)
    rule.refresh_from_db()
    assert rule.enabled is True
    assert Template.objects.get(pk=template.pk).body == "b"


def test_a_duplicate_rule_name_is_a_400(team):
    Rule.objects.create(workspace=team["workspace"], name="r", events=["run.failed"], roles=["admin"])
    answer = client_for(team["editor"]).post(
        RULES,
        {"name": "r", "events": ["run.failed"], "roles": ["admin"], "workspace": str(team["workspace"].pk)},
        format="json",
    )
    assert set(problem(answer, 400)["errors"]) == {"name"}
