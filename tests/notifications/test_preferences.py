"""Each user's notification preferences through the API: defaults made on first read, a PUT that
replaces them, a 400 naming each bad field, an audit row per change, and nobody else's."""

from datetime import time

import pytest

from audit.models import AuditEvent
from notifications.models import Channel, Preference
from notifications.services.events import EVENT_TYPES
from notifications.services.preferences import preference_mute_kind
from tests.conftest import client_for
from tests.notifications.test_api import problem

pytestmark = pytest.mark.django_db

PREFERENCES = "/api/v3/notifications/preferences"
GOOD = {
    "muted_events": ["run.succeeded"],
    "muted_kinds": ["email", "slack"],
    "quiet_hours": {"start": "22:00", "end": "07:30"},
    "timezone": "Europe/Berlin",
}


def test_everyone_has_preferences_with_nothing_muted_from_the_first_read(user):
    answer = client_for(user).get(PREFERENCES)
    assert answer.status_code == 200
    assert answer.json() == {
        "muted_events": [],
        "muted_kinds": [],
        "quiet_hours": None,
        "timezone": "UTC",
        "event_types": list(EVENT_TYPES),
        "kinds": list(Channel.Kind.values),
    }
    assert Preference.objects.filter(user=user).exists()


def test_a_put_replaces_them_is_audited_once_and_a_repeat_changes_nothing(user):
    api = client_for(user)
    answer = api.put(PREFERENCES, {**GOOD, "event_types": ["ignored"], "kinds": []}, format="json")
    assert answer.status_code == 200, answer.content
    assert {name: answer.json()[name] for name in GOOD} == GOOD
    preference = Preference.objects.get(user=user)
    assert (preference.quiet_hours_start, preference.quiet_hours_end) == (time(22), time(7, 30))
    assert preference.mutes(event_type="run.succeeded", kind="in_app")
    [event] = AuditEvent.objects.filter(action="notification_preference.updated", target_id=str(user.pk))
    assert event.actor_id == user.pk
    assert event.changes["muted_kinds"] == [[], ["email", "slack"]]
    assert event.changes["quiet_hours_start"] == [None, "22:00:00"]

    assert api.put(PREFERENCES, GOOD, format="json").status_code == 200
    assert AuditEvent.objects.filter(action="notification_preference.updated").count() == 1

    cleared = api.put(PREFERENCES, {**GOOD, "quiet_hours": None, "muted_kinds": []}, format="json").json()
    assert cleared["quiet_hours"] is None and cleared["muted_kinds"] == []
    assert api.get(PREFERENCES).json()["quiet_hours"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"muted_events": ["run.exploded"]}, "muted_events"),
        ({"muted_events": "run.failed"}, "muted_events"),
        ({"muted_kinds": ["pigeon"]}, "muted_kinds"),
        ({"muted_kinds": [1]}, "muted_kinds"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "24:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "22:00", "end": "7:00"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours"),
        ({"quiet_hours": "22:00-07:00"}, "quiet_hours"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_preferences_get_a_400_naming_the_field_and_change_nothing(user, change, field):
    body = problem(client_for(user).put(PREFERENCES, {**GOOD, **change}, format="json"), 400)
    assert field in body["errors"], body
    assert not AuditEvent.objects.filter(action="notification_preference.updated").exists()
    assert client_for(user).get(PREFERENCES).json()["muted_kinds"] == []


def test_a_missing_field_is_named_and_a_body_must_be_an_object(user):
    body = problem(client_for(user).put(PREFERENCES, {"muted_events": []}, format="json"), 400)
    assert set(body["errors"]) == {"muted_kinds", "quiet_hours", "timezone"}
    problem(client_for(user).put(PREFERENCES, [1, 2], format="json"), 400)


def test_each_user_sees_and_changes_only_their_own(team, api):
    client_for(team["editor"]).put(PREFERENCES, GOOD, format="json")
    assert client_for(team["viewer"]).get(PREFERENCES).json()["muted_kinds"] == []
    assert Preference.objects.get(user=team["viewer"]).muted_kinds == []
    assert Preference.objects.get(user=team["editor"]).muted_kinds == ["email", "slack"]
    problem(api.get(PREFERENCES), 401)
    problem(api.put(PREFERENCES, GOOD, format="json"), 401)


def test_muting_a_kind_is_idempotent_and_audited_once(user):
    preference_mute_kind(user=user, kind="email")
    preference_mute_kind(user=user, kind="email")
    assert Preference.objects.get(user=user).muted_kinds == ["email"]
    assert AuditEvent.objects.filter(action="notification_preference.unsubscribed").count() == 1
