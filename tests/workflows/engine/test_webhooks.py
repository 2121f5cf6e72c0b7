"""Inbound webhooks against a real worker: signatures, limits, de-duplication and wait mode."""

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from analytics.models import Event
from tests.conftest import client_for
from tests.factories import MembershipFactory
from tests.processes import wait_until
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.helpers import create
from workflows.models import Run, WebhookDelivery
from workflows.services.webhooks import MAX_CLOCK_SKEW_SECONDS, webhook_deliveries_prune

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = {
    "name": "Echo",
    "status": "active",
    "nodes": [
        {"key": "first", "type": "transform", "config": {"values": {"doubled": "{{ input.n * 2 }}"}}},
        {"key": "second", "type": "transform", "config": {"values": {"result": "{{ nodes.first.output.doubled }}!"}}},
    ],
}


def hook(api, workflow_id, **body) -> dict:
    answer = api.post(f"/api/v3/workflows/{workflow_id}/webhooks", body, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def path_of(created: dict) -> str:
    return f"/hooks/{created['token']}/"


def signed(secret: str, body: bytes, stamp: int | None = None) -> dict:
    stamp = int(time.time()) if stamp is None else stamp
    digest = hmac.new(secret.encode(), str(stamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_SIGNATURE_256": f"sha256={digest}", "HTTP_X_TIMESTAMP": str(stamp)}


def test_a_delivery_starts_a_run_and_wait_mode_returns_its_output(engine_worker, client, user_api):
    workflow = create(user_api, ECHO)
    created = hook(user_api, workflow["id"], include_headers=["X-Source"])
    assert created["url"].endswith(path_of(created))
    answer = client.post(path_of(created), {"n": 21}, content_type="application/json", HTTP_X_SOURCE="crm")
    assert answer.status_code == 202
    run = wait_for_run(answer.json()["run_id"])
    assert run.status == "succeeded" and run.trigger == "webhook"
    assert run.input == {"n": 21, "_headers": {"x-source": "crm"}}

    waited = client.post(path_of(created) + "?wait=10", {"n": 5}, content_type="application/json")
    assert waited.status_code == 200
    assert waited.json()["output"] == {"second": {"result": "10!"}}
    assert waited.json()["status"] == "succeeded"


def test_wait_mode_answers_202_when_the_run_is_still_going(engine_worker, client, user_api):
    slow = {"name": "Slow", "status": "active", "nodes": [{"key": "pause", "type": "delay", "config": {"seconds": 5}}]}
    created = hook(user_api, create(user_api, slow)["id"])
    started = time.monotonic()
    answer = client.post(path_of(created) + "?wait=1", {}, content_type="application/json")
    assert answer.status_code == 202
    assert 0.9 <= time.monotonic() - started < 4
    assert Run.objects.get(pk=answer.json()["run_id"]).status in ("running", "waiting")


def test_a_waiting_caller_is_answered_when_its_run_ends_not_at_a_recheck(engine_worker, client, user_api, settings):
    # Re-reading the run only every 30 s: an answer within seconds came from the announcement of its end.
    settings.DWC_WEBHOOK_WAIT_RECHECK_SECONDS = 30
    created = hook(user_api, create(user_api, ECHO)["id"])
    for n in range(3):
        started = time.monotonic()
        answer = client.post(path_of(created) + "?wait=25", {"n": n}, content_type="application/json")
        assert answer.status_code == 200, answer.content
        assert answer.json()["output"] == {"second": {"result": f"{n * 2}!"}}
        assert time.monotonic() - started < 10


def test_a_caller_whose_run_ends_unannounced_is_answered_at_the_next_recheck(engine_worker, client, user_api, settings):
    # An approval keeps the run waiting; the test then ends it with a bare UPDATE, which the engine
    # never announces (as if the announcement had been lost): only re-reading the run finds it.
    settings.DWC_WEBHOOK_WAIT_RECHECK_SECONDS = 0.5
    asks = {"name": "Asks", "status": "active", "nodes": [{"key": "ask", "type": "approval", "config": {}}]}
    workflow = create(user_api, asks)
    created = hook(user_api, workflow["id"])

    def end_the_run_behind_the_engines_back() -> None:
        try:
            wait_until(
                lambda: Run.objects.filter(workflow_id=workflow["id"], status="waiting").exists(),
                timeout=20,
                message="the run waiting for its approval",
            )
            time.sleep(0.3)
            Run.objects.filter(workflow_id=workflow["id"]).update(status="succeeded", output={"ended": "quietly"})
        finally:
            connection.close()  # this thread's own: the test database is dropped at the end

    ender = threading.Thread(target=end_the_run_behind_the_engines_back)
    ender.start()
    started = time.monotonic()
    answer = client.post(path_of(created) + "?wait=25", {}, content_type="application/json")
    ender.join()
    assert answer.status_code == 200, answer.content
    assert answer.json()["output"] == {"ended": "quietly"}
    assert time.monotonic() - started < 15


def test_signed_hooks_need_a_fresh_valid_signature(client, user_api, django_capture_on_commit_callbacks):
    created = hook(user_api, create(user_api, ECHO)["id"], secret="s3cret")
    body = json.dumps({"n": 1}).encode()
    url = path_of(created)
    ok = client.post(url, body, content_type="application/json", **signed("s3cret", body))
    assert ok.status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        for headers in (
            {},
            signed("wrong", body),
            signed("s3cret", body, stamp=int(time.time()) - 600),
            {**signed("s3cret", body), "HTTP_X_TIMESTAMP": "soon"},
            signed("s3cret", body + b" "),
        ):
            answer = client.post(url, body, content_type="application/json", **headers)
            assert answer.status_code == 401, headers
            assert answer["Content-Type"] == "application/problem+json"
    assert Run.objects.count() == 1
    # Analytics count every refusal (the notification of them is throttled, the count not).
    assert Event.objects.filter(type="webhook.rejected", workflow_id=Run.objects.get().workflow_id).count() == 5


def test_a_replayed_signed_delivery_gets_the_first_run_and_starts_nothing(client, user_api):
    created = hook(user_api, create(user_api, ECHO)["id"], secret="s3cret")
    body = json.dumps({"n": 1}).encode()
    headers = signed("s3cret", body)
    first = client.post(path_of(created), body, content_type="application/json", **headers)
    replayed = client.post(path_of(created), body, content_type="application/json", **headers)
    # A replay may dress up the headers the signature does not cover: a new delivery id changes nothing.
    disguised = client.post(
        path_of(created), body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="fresh-id", **headers
    )
    assert first.status_code == 202
    assert (replayed.status_code, disguised.status_code) == (200, 200)
    assert replayed.json()["run_id"] == disguised.json()["run_id"] == first.json()["run_id"]
    assert Run.objects.count() == 1


def test_the_same_signature_under_a_known_delivery_id_is_remembered_too(client, user_api):
    """A sender's retry re-signs an old delivery id; replaying that retry with a new id must not start a run."""
    created = hook(user_api, create(user_api, ECHO)["id"], secret="s3cret", dedupe_header="X-Delivery")
    body = json.dumps({"n": 1}).encode()
    url = path_of(created)
    first = client.post(url, body, content_type="application/json", HTTP_X_DELIVERY="d-1", **signed("s3cret", body))
    retry_headers = signed("s3cret", body, stamp=int(time.time()) - 1)
    retry = client.post(url, body, content_type="application/json", HTTP_X_DELIVERY="d-1", **retry_headers)
    replay = client.post(url, body, content_type="application/json", HTTP_X_DELIVERY="d-2", **retry_headers)
    assert [first.status_code, retry.status_code, replay.status_code] == [202, 200, 200]
    assert Run.objects.count() == 1


def test_a_signed_delivery_replayed_ten_times_concurrently_starts_one_run(live_server, user_api):
    import httpx

    created = hook(user_api, create(user_api, ECHO)["id"], secret="s3cret")
    body = json.dumps({"n": 3}).encode()
    headers = {"Content-Type": "application/json"}
    headers.update(
        {name.removeprefix("HTTP_").replace("_", "-"): value for name, value in signed("s3cret", body).items()}
    )
    url = f"{live_server.url}{path_of(created)}"
    answers = []

    def post():
        answers.append(httpx.post(url, content=body, headers=headers, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Run.objects.count() == 1
    assert {answer.json()["run_id"] for answer in answers} == {str(Run.objects.get().pk)}
    assert sorted(answer.status_code for answer in answers) == [200] * 9 + [202]


def test_remembered_signatures_are_pruned_once_they_can_no_longer_verify(client, user_api):
    created = hook(user_api, create(user_api, ECHO)["id"], secret="s3cret")
    stamp = int(time.time())
    for n in (1, 2):
        body = json.dumps({"n": n}).encode()
        answer = client.post(path_of(created), body, content_type="application/json", **signed("s3cret", body, stamp))
        assert answer.status_code == 202
    kept, expired = WebhookDelivery.objects.all()
    assert kept.expires_at.timestamp() == stamp + MAX_CLOCK_SKEW_SECONDS
    # A tolerance's grace after expiry, for servers whose clocks disagree, and then it goes.
    expired.expires_at = timezone.now() - timedelta(seconds=MAX_CLOCK_SKEW_SECONDS + 1)
    expired.save()
    assert webhook_deliveries_prune() == 1
    assert list(WebhookDelivery.objects.all()) == [kept]


def test_bad_requests_get_clear_answers_and_start_nothing(client, user_api, settings):
    workflow = create(user_api, ECHO)
    created = hook(user_api, workflow["id"])
    url = path_of(created)
    assert client.get(url).status_code == 405
    assert client.post("/hooks/not-a-token/", {}, content_type="application/json").status_code == 404
    assert client.post(url, "n=1", content_type="application/x-www-form-urlencoded").status_code == 415
    assert client.post(url, "{not json", content_type="application/json").status_code == 400
    settings.DWC_WEBHOOK_MAX_BODY_BYTES = 100
    assert client.post(url, {"x": "y" * 200}, content_type="application/json").status_code == 413
    settings.DWC_WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
    user_api.patch(f"/api/v3/workflows/{workflow['id']}", {"status": "paused"}, format="json")
    paused = client.post(url, {}, content_type="application/json")
    assert paused.status_code == 409
    assert not Run.objects.exists()


def test_a_token_over_its_rate_gets_429_with_retry_after(client, user_api, settings):
    settings.DWC_WEBHOOK_RATE_PER_MINUTE = 3
    created = hook(user_api, create(user_api, ECHO)["id"])
    answers = [client.post(path_of(created), {"n": 1}, content_type="application/json") for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60


def test_rotate_kills_the_old_token_at_once(client, user_api):
    created = hook(user_api, create(user_api, ECHO)["id"])
    rotated = user_api.post(f"/api/v3/webhooks/{created['id']}/rotate").json()
    assert rotated["token"] != created["token"]
    assert client.post(path_of(created), {}, content_type="application/json").status_code == 404
    assert client.post(path_of(rotated), {}, content_type="application/json").status_code == 202


def test_the_same_delivery_posted_ten_times_concurrently_starts_one_run(live_server, user_api):
    import httpx

    created = hook(user_api, create(user_api, ECHO)["id"], dedupe_header="X-GitHub-Delivery")
    url = f"{live_server.url}{path_of(created)}"
    answers = []

    def post():
        answers.append(httpx.post(url, json={"n": 3}, headers={"X-GitHub-Delivery": "abc-123"}, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Run.objects.count() == 1
    assert {answer.json()["run_id"] for answer in answers} == {str(Run.objects.get().pk)}
    assert sorted(answer.status_code for answer in answers) == [200] * 9 + [202]


def test_webhook_management_is_scoped_to_members(user_api):
    workflow = create(user_api, ECHO)
    created = hook(user_api, workflow["id"])
    listing = user_api.get(f"/api/v3/workflows/{workflow['id']}/webhooks").json()
    assert [item["id"] for item in listing] == [created["id"]]
    assert "token" not in listing[0] and created["token"] not in json.dumps(listing)
    stranger = client_for(MembershipFactory().user)
    assert stranger.get(f"/api/v3/workflows/{workflow['id']}/webhooks").status_code == 404
    assert stranger.post(f"/api/v3/webhooks/{created['id']}/rotate").status_code == 404
    assert stranger.delete(f"/api/v3/webhooks/{created['id']}").status_code == 404
    assert user_api.delete(f"/api/v3/webhooks/{created['id']}").status_code == 204


def test_the_admin_masks_tokens_and_rotates_them(client, user_api):
    from accounts.models import User

    created = hook(user_api, create(user_api, ECHO)["id"])
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1"))
    listing = client.get("/admin/workflows/webhooktrigger/").content.decode()
    assert created["token"] not in listing and created["token"][-6:] in listing
    answer = client.post("/admin/workflows/webhooktrigger/", {"action": "rotate", "_selected_action": [created["id"]]})
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    [(name, url)] = answer.context["rotated"]
    new_token = url.rstrip("/").rsplit("/", 1)[1]
    assert name == "Echo" and url in answer.content.decode()
    assert not answer.cookies.get("messages")  # not parked in the messages cookie for the next page
    assert new_token not in client.get("/admin/workflows/webhooktrigger/").content.decode()
    assert client.post(path_of(created), {}, content_type="application/json").status_code == 404
