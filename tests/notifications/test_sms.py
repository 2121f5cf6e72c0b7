"""The two SMS kinds against local servers standing in for Twilio and a generic gateway: the requests
they send, what the answers mean (retries, dead letters, the provider's id), the numbers a retry
skips, SSRF refusals, and the configs the API refuses."""

import base64
import json
from urllib.parse import parse_qs

import pytest
from werkzeug import Response

from notifications.channels.registry import channel_kind_get
from notifications.models import Delivery
from notifications.services.deliveries import delivery_create, delivery_send
from tests.conftest import client_for
from tests.notifications.conftest import channel_of
from workflows.services.credentials import credential_save

pytestmark = pytest.mark.django_db

ACCOUNT = "AC" + "a1" * 16
TOKEN = "twilio-auth-token"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
CHANNELS = "/api/v3/notifications/channels"


def twilio_channel(team, httpserver, **config):
    credential_save(
        workspace_id=team["workspace"].pk,
        name="twilio",
        kind="http_basic",
        value={"username": ACCOUNT, "password": TOKEN},
    )
    config = {"from": "+15005550006", "to": ["+14155550100"], "base_url": httpserver.url_for(""), **config}
    return channel_of(team["workspace"], "sms_twilio", config, credential="twilio")


def form(request) -> dict:
    return {key: values[0] for key, values in parse_qs(request.get_data(as_text=True)).items()}


def due_now(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)


def test_twilio_gets_one_form_post_per_number_with_basic_auth_and_the_sid_is_kept(team, httpserver):
    httpserver.expect_ordered_request(MESSAGES, method="POST").respond_with_json({"sid": "SM1"}, status=201)
    httpserver.expect_ordered_request(MESSAGES, method="POST").respond_with_json({"sid": "SM2"}, status=201)
    channel = twilio_channel(team, httpserver, to=["+14155550100", "+447700900123"])
    delivery = delivery_create(channel=channel, subject="Run failed", body="Step x failed", link="https://d/r/1")

    sent = delivery_send(delivery_id=delivery.pk)

    assert (sent.status, sent.response_code, sent.provider_id) == ("sent", 201, "SM1, SM2")
    first, second = (request for request, _ in httpserver.log)
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(first) == {
        "To": "+14155550100",
        "From": "+15005550006",
        "Body": "Run failed\nStep x failed\nhttps://d/r/1",
    }
    assert form(second)["To"] == "+447700900123"


def test_twilio_sends_from_a_messaging_service_and_an_api_key_with_the_account_in_config(team, httpserver):
    httpserver.expect_request(MESSAGES, method="POST").respond_with_json({"sid": "SM9"}, status=201)
    credential_save(
        workspace_id=team["workspace"].pk, name="key", kind="http_basic", value={"username": "SKx", "password": "s"}
    )
    service = "MG" + "b2" * 16
    channel = channel_of(
        team["workspace"],
        "sms_twilio",
        {
            "messaging_service_sid": service,
            "account_sid": ACCOUNT,
            "to": ["+14155550100"],
            "base_url": httpserver.url_for("/"),
        },
        credential="key",
    )

    assert delivery_send(delivery_id=delivery_create(channel=channel, body="hi").pk).status == "sent"
    assert form(httpserver.log[-1][0]) == {"To": "+14155550100", "MessagingServiceSid": service, "Body": "hi"}


def test_a_500_then_a_429_with_retry_after_then_a_201_is_sent_on_the_third_attempt(team, httpserver):
    httpserver.expect_ordered_request(MESSAGES).respond_with_data("down", status=500)
    httpserver.expect_ordered_request(MESSAGES).respond_with_response(
        Response('{"code": 20429}', status=429, headers={"Retry-After": "90"})
    )
    httpserver.expect_ordered_request(MESSAGES).respond_with_json({"sid": "SM3"}, status=201)
    delivery = delivery_create(channel=twilio_channel(team, httpserver), body="hello")

    first = delivery_send(delivery_id=delivery.pk)
    assert (first.status, first.response_code) == ("retrying", 500)
    due_now(delivery)
    second = delivery_send(delivery_id=delivery.pk)
    assert (second.status, second.response_code) == ("retrying", 429)
    assert 88 < (second.next_attempt_at - second.claimed_at).total_seconds() <= 91
    due_now(delivery)
    third = delivery_send(delivery_id=delivery.pk)
    assert (third.status, third.attempts, third.provider_id) == ("sent", 3, "SM3")


def test_a_400_from_twilio_goes_dead_without_retrying(team, httpserver):
    httpserver.expect_request(MESSAGES).respond_with_json({"code": 21211, "message": "Invalid 'To'"}, status=400)
    delivery = delivery_create(channel=twilio_channel(team, httpserver), body="hello")

    dead = delivery_send(delivery_id=delivery.pk)

    assert (dead.status, dead.attempts, dead.response_code) == ("dead", 1, 400)
    assert "Invalid 'To'" in dead.error
    assert len(httpserver.log) == 1


def test_a_retry_writes_only_to_the_numbers_that_failed(team, httpserver):
    httpserver.expect_ordered_request(MESSAGES).respond_with_json({"sid": "SM1"}, status=201)
    httpserver.expect_ordered_request(MESSAGES).respond_with_data("busy", status=503)
    httpserver.expect_ordered_request(MESSAGES).respond_with_json({"sid": "SM2"}, status=201)
    channel = twilio_channel(team, httpserver, to=["+14155550100", "+14155550101"])
    delivery = delivery_create(channel=channel, body="hello")

    assert delivery_send(delivery_id=delivery.pk).status == "retrying"
    due_now(delivery)
    again = delivery_send(delivery_id=delivery.pk)

    assert (again.status, again.provider_id) == ("sent", "SM2")
    assert [form(request)["To"] for request, _ in httpserver.log] == ["+14155550100", "+14155550101", "+14155550101"]


def test_a_gateway_gets_its_json_template_rendered_once_per_number(team, httpserver):
    httpserver.expect_request("/sms", method="POST").respond_with_json({"message_id": "g-1"})
    credential_save(workspace_id=team["workspace"].pk, name="gw", kind="http_bearer", value={"token": "gw-token"})
    config = {
        "url": httpserver.url_for("/sms"),
        "to": ["+14155550100", "+14155550101"],
        "headers": {"X-Client": "dwc"},
        "body": {
            "recipient": "{{ to }}",
            "text": "{{ message }}",
            "meta": {"urgent": "{{ level == 'error' }}", "tag": "dwc-{{ level }}"},
        },
        "id_field": "message_id",
    }
    channel = channel_of(team["workspace"], "sms_gateway", config, credential="gw")

    delivery = delivery_send(delivery_id=delivery_create(channel=channel, subject="Down", body="API", level="error").pk)

    assert (delivery.status, delivery.provider_id) == ("sent", "g-1, g-1")
    bodies = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert bodies == [
        {"recipient": number, "text": "Down\nAPI", "meta": {"urgent": True, "tag": "dwc-error"}}
        for number in ("+14155550100", "+14155550101")
    ]
    request = httpserver.log[0][0]
    assert (request.headers["Authorization"], request.headers["X-Client"]) == ("Bearer gw-token", "dwc")
    assert request.headers["Content-Type"] == "application/json"


def test_a_gateway_gets_form_fields_with_a_header_credential(team, httpserver):
    httpserver.expect_request("/send", method="POST").respond_with_data("OK")
    credential_save(
        workspace_id=team["workspace"].pk, name="gw", kind="http_header", value={"name": "X-Api-Key", "value": "k1"}
    )
    config = {
        "url": httpserver.url_for("/send"),
        "to": ["+14155550100"],
        "format": "form",
        "body": {"to": "{{ to }}", "msg": "{{ message }}"},
    }
    channel = channel_of(team["workspace"], "sms_gateway", config, credential="gw")

    assert delivery_send(delivery_id=delivery_create(channel=channel, body="a & b").pk).status == "sent"
    request = httpserver.log[0][0]
    assert form(request) == {"to": "+14155550100", "msg": "a & b"}
    assert request.headers["X-Api-Key"] == "k1"


def test_a_gateway_template_failing_at_send_time_is_permanent(team, httpserver):
    config = {"url": httpserver.url_for("/sms"), "to": ["+14155550100"], "body": {"text": "{{ message.nope.deeper }}"}}
    channel = channel_of(team["workspace"], "sms_gateway", config)

    dead = delivery_send(delivery_id=delivery_create(channel=channel, body="x").pk)

    assert (dead.status, dead.attempts) == ("dead", 1)
    assert dead.error.startswith("The gateway body's template failed")
    assert httpserver.log == []


@pytest.mark.parametrize("kind", ["sms_twilio", "sms_gateway"])
def test_an_sms_url_on_a_refused_address_goes_dead_without_a_request(team, httpserver, settings, kind):
    settings.DWC_OUTBOUND_ALLOWLIST = []
    if kind == "sms_twilio":
        channel = twilio_channel(team, httpserver)
    else:
        config = {"url": httpserver.url_for("/sms"), "to": ["+14155550100"], "body": {"t": "{{ message }}"}}
        channel = channel_of(team["workspace"], kind, config)

    dead = delivery_send(delivery_id=delivery_create(channel=channel, body="x").pk)

    assert (dead.status, dead.attempts) == ("dead", 1)
    assert "not a public address" in dead.error
    assert httpserver.log == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"kind": "sms_twilio", "config": {"from": "+15005550006", "to": ["0123"]}, "credential": "twilio"},
            "config.to.0",
        ),
        ({"kind": "sms_twilio", "config": {"to": ["+14155550100"]}, "credential": "twilio"}, "config.from"),
        ({"kind": "sms_twilio", "config": {"from": "+15005550006", "to": ["+14155550100"]}}, "credential"),
        ({"kind": "sms_twilio", "config": {"from": "+15005550006", "to": []}, "credential": "twilio"}, "config.to"),
        ({"kind": "sms_gateway", "config": {"url": "https://gw.example/s", "to": ["+14155550100"]}}, "config"),
        (
            {
                "kind": "sms_gateway",
                "config": {"url": "https://gw.example/s", "to": ["+14155550100"], "body": {"a": {"b": "{{ to"}}},
            },
            "config.body.a.b",
        ),
        (
            {
                "kind": "sms_gateway",
                "config": {"url": "https://gw.example/s", "to": ["+14155550100"], "format": "form", "body": {"n": 1}},
            },
            "config.body.n",
        ),
        (
            {
                "kind": "sms_gateway",
                "config": {
                    "url": "https://gw.example/s",
                    "to": ["+1415"],
                    "body": {},
                    "headers": {"Authorization": "x"},
                },
            },
            "config.headers",
        ),
    ],
)
def test_bad_sms_configs_are_400s_naming_the_field(team, body, field):
    credential_save(
        workspace_id=team["workspace"].pk,
        name="twilio",
        kind="http_basic",
        value={"username": ACCOUNT, "password": "t"},
    )
    body = {"name": "sms", "workspace": str(team["workspace"].pk), **body}
    answer = client_for(team["admin"]).post(CHANNELS, body, format="json")

    assert answer.status_code == 400, answer.content
    assert field in answer.json()["errors"], answer.json()


def test_a_template_syntax_error_names_its_line(team):
    config = {"url": "https://gw.example/s", "to": ["+14155550100"], "body": {"text": "line one\n{% if %}"}}

    errors = channel_kind_get("sms_gateway").validate(config, credential="")

    assert errors["config.body.text"] == [
        "Template syntax error at line 2: Expected an expression, got 'end of statement block'"
    ]


def test_valid_sms_channels_are_created_through_the_api(team):
    credential_save(
        workspace_id=team["workspace"].pk,
        name="twilio",
        kind="http_basic",
        value={"username": ACCOUNT, "password": "t"},
    )
    admin = client_for(team["admin"])
    twilio = {
        "name": "t",
        "workspace": str(team["workspace"].pk),
        "kind": "sms_twilio",
        "credential": "twilio",
        "config": {"from": "+15005550006", "to": ["+14155550100"]},
    }
    gateway = {
        "name": "g",
        "workspace": str(team["workspace"].pk),
        "kind": "sms_gateway",
        "config": {"url": "https://gw.example/s", "to": ["+14155550100"], "body": {"t": "{{ message }}"}},
    }

    created = admin.post(CHANNELS, twilio, format="json")
    assert created.status_code == 201, created.content
    assert admin.post(CHANNELS, gateway, format="json").status_code == 201


def test_a_number_refused_for_good_does_not_hold_back_the_others(team, httpserver):
    httpserver.expect_ordered_request(MESSAGES).respond_with_json({"message": "Invalid 'To'"}, status=400)
    httpserver.expect_ordered_request(MESSAGES).respond_with_json({"sid": "SM2"}, status=201)
    channel = twilio_channel(team, httpserver, to=["+14155550100", "+14155550101"])

    delivery = delivery_send(delivery_id=delivery_create(channel=channel, body="hello").pk)

    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert delivery.provider_id.startswith("1 of 2 took it; ")
    assert "Invalid 'To'" in delivery.provider_id
