"""The canary search (tests/canary.py) finds what it must, in the response where it appears, and only there.

A test-only view echoes what it is sent, so a test can make a response carry exactly one secret.
"""

import json

import pytest
from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import include, path

from accounts.models import Workspace
from tests.canary import CanaryLeak, canaries, take_hits
from tests.factories import UserFactory
from workflows import credentials
from workflows.services.credentials import credential_save

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def echo(request):
    """The body back, as sent, or JSON-encoded (?as=json), or in chunks of 5 bytes (?as=stream)."""
    body = request.body
    if request.GET.get("as") == "json":
        return HttpResponse(json.dumps({"echo": body.decode()}), content_type="application/json")
    if request.GET.get("as") == "stream":
        return StreamingHttpResponse(body[i : i + 5] for i in range(0, len(body), 5))
    return HttpResponse(body, content_type="text/plain")


def encrypt_then_redirect(request):
    """Encrypts the body, keeps it for the next page and redirects there (post/redirect/get)."""
    request.session["made"] = request.body.decode()
    credentials.encrypt({"token": request.session["made"]})
    return HttpResponseRedirect("/shown")


def shown(request):
    return HttpResponse(request.session.pop("made", ""), content_type="text/plain")


urlpatterns = [
    path("echo", echo),
    path("make", encrypt_then_redirect),
    path("shown", shown),
    path("", include("config.urls")),
]


def echoed(client, text: str, mode: str = "plain"):
    return client.post(f"/echo?as={mode}", text, content_type="text/plain")


def test_an_encrypted_credential_value_in_a_later_response_fails_the_request_without_showing_it(client, user):
    workspace = Workspace.objects.get(memberships__user=user)
    credential_save(
        workspace_id=workspace.pk,
        name="c",
        kind="http_basic",
        value={"username": "someone@x.org", "password": "p4ss-w0rd-1"},
    )
    assert echoed(client, "nothing secret here").status_code == 200
    with pytest.raises(CanaryLeak) as leak:
        echoed(client, "the password is p4ss-w0rd-1")
    assert str(leak.value) == (
        "POST /echo answered 200 with an encrypted secret (a 'password' given to workflows.credentials.encrypt)"
        " in its body"
    )
    assert "p4ss-w0rd-1" not in str(leak.value)
    # Recorded too: a leak in another thread, or one a test swallowed, still fails the test at its end.
    assert take_hits() == [str(leak.value)]
    # A user name says who, not what the secret is; it is not searched for.
    assert echoed(client, "someone@x.org").status_code == 200


@pytest.mark.parametrize("mode", ["json", "stream"])
def test_a_webhook_secret_is_found_json_escaped_and_across_the_chunks_of_a_stream(client, user_api, mode):
    secret = 'hook "secret" with quotes/1'
    workflow = user_api.post("/api/v3/workflows", {"name": "W"}, format="json").json()
    hook = user_api.post(f"/api/v3/workflows/{workflow['id']}/webhooks", {"secret": secret}, format="json")
    assert hook.status_code == 201, hook.content
    assert canaries.knows(secret)
    leak = pytest.raises(CanaryLeak, match="POST /echo answered 200 with an encrypted secret")
    if mode == "stream":
        answer = echoed(client, secret, mode)
        # Nothing is read ahead of the test: the stream fails when the test reads the part with the secret.
        assert answer.status_code == 200
        with leak:
            b"".join(answer.streaming_content)
    else:
        with leak:  # in JSON the quotes are escaped (\"), and the search looks for that spelling too
            echoed(client, secret, mode)
    assert len(take_hits()) == 1


def test_the_response_that_shows_a_new_api_key_passes_and_any_later_one_showing_it_fails(client, user_api):
    created = user_api.post("/api/v3/auth/api-keys", {"name": "k", "scopes": ["read"]}, format="json")
    assert created.status_code == 201
    raw_key = created.json()["key"]
    assert user_api.get("/api/v3/auth/api-keys").status_code == 200
    with pytest.raises(CanaryLeak, match="with a raw API key in its body"):
        echoed(client, f"key: {raw_key}")
    take_hits()


def test_password_hashes_are_found_by_their_algorithm_and_unusable_ones_by_value(client, user):
    with pytest.raises(CanaryLeak, match="with a password hash in its body"):
        echoed(client, json.dumps({"password": type(user).objects.get(pk=user.pk).password}), "json")
    stranger = UserFactory()
    stranger.set_unusable_password()
    with pytest.raises(CanaryLeak, match="with a user's password hash in its body"):
        echoed(client, stranger.password)
    assert len(take_hits()) == 2


@pytest.mark.parametrize("value", ["1234567", "00000000", "abababab"])
def test_short_or_repetitive_strings_are_not_searched_for(client, user, value):
    workspace = Workspace.objects.get(memberships__user=user)
    credential_save(workspace_id=workspace.pk, name="weak", kind="http_bearer", value={"token": value})
    assert not canaries.knows(value)
    assert echoed(client, value).status_code == 200


def test_a_secret_made_by_a_request_that_redirects_is_caught_on_the_page_it_leads_to(client, user):
    """Show a new secret in the answer that made it, not on the next page: a message carrying it there
    would wait in the messages cookie."""
    with pytest.raises(CanaryLeak, match="GET /shown answered 200 with an encrypted secret"):
        client.post("/make", "made-then-parked", content_type="text/plain", follow=True)
    assert canaries.knows("made-then-parked")
    take_hits()
