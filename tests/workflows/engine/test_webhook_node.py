"""The webhook node's signatures, checked by real local receivers with the Standard Webhooks reference library."""

import base64
import hashlib
import hmac
import time

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from tests.factories import WorkspaceFactory
from workflows.engine.nodes.base import StepContext
from workflows.engine.nodes.http_request import HttpRequestNode
from workflows.engine.nodes.webhook import WebhookNode, signature_headers
from workflows.services.credentials import credential_save

pytestmark = pytest.mark.django_db

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "X-Signature-256")


@pytest.fixture
def workspace(settings):
    settings.DWC_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    return WorkspaceFactory()


@pytest.fixture
def other_origin():
    """A second local server: same host, another port, so another origin."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


def context_in(workspace) -> StepContext:
    return StepContext(
        run_id="run-1", step_id="step-1", node_key="notify_crm", attempt=1, workspace_id=workspace.pk, expressions={}
    )


def receiver(verifier: Webhook, received: list):
    """A receiver that does what the standard asks: verify id, timestamp and signature, or answer 401."""

    def handle(request: Request) -> Response:
        try:
            received.append(verifier.verify(request.get_data(), dict(request.headers)))
        except WebhookVerificationError as error:
            return Response(str(error), status=401)
        return Response(status=204)

    return handle


@pytest.mark.parametrize(
    ("stored_secret", "verifier_secret"),
    [
        # Any string we store is its own key: the reference library takes the raw bytes.
        ("s3cr3t-value", b"s3cr3t-value"),
        # A whsec_ secret is read as the standard reads it: the base64 after the prefix is the key.
        ("whsec_" + base64.b64encode(b"k" * 24).decode(), "whsec_" + base64.b64encode(b"k" * 24).decode()),
    ],
)
def test_a_signed_delivery_verifies_the_standard_webhooks_way(workspace, httpserver, stored_secret, verifier_secret):
    credential_save(workspace_id=workspace.pk, name="crm", kind="hmac_secret", value={"secret": stored_secret})
    received: list = []
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver(Webhook(verifier_secret), received))
    context = context_in(workspace)
    config = {"url": f"http://127.0.0.1:{httpserver.port}/hook", "body": {"order": 7}, "secret": "crm"}

    result = WebhookNode.execute({"config": config}, context)

    assert result.output["status"] == 204
    assert received == [{"order": 7}]
    request = httpserver.log[0][0]
    assert request.headers["webhook-id"] == context.idempotency_key
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    # The old header stays for receivers that check it (tests/workflows/engine/test_flows.py).
    legacy = hmac.new(stored_secret.encode(), request.get_data(), hashlib.sha256).hexdigest()
    assert request.headers["X-Signature-256"] == f"sha256={legacy}"


def test_a_tampered_or_stale_delivery_does_not_verify():
    verifier = Webhook(b"s3cr3t-value")
    body = b'{"order":7}'
    fresh = signature_headers("s3cr3t-value", message_id="m-1", body=body)
    verifier.verify(body, fresh)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(b'{"order":8}', fresh)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body, signature_headers("s3cr3t-value", message_id="m-1", body=body, timestamp=1))


def test_signature_headers_do_not_follow_a_redirect_to_another_origin(workspace, httpserver, other_origin):
    credential_save(workspace_id=workspace.pk, name="crm", kind="hmac_secret", value={"secret": "s3cr3t-value"})
    landing = f"http://127.0.0.1:{other_origin.port}/collect"
    httpserver.expect_request("/hook").respond_with_data("", status=307, headers={"Location": landing})
    other_origin.expect_request("/collect", method="POST").respond_with_data("kept")
    config = {"url": f"http://127.0.0.1:{httpserver.port}/hook", "body": {"order": 7}, "secret": "crm"}

    result = WebhookNode.execute({"config": config}, context_in(workspace))

    assert result.output == {"status": 200, "body": "kept"}
    first, redirected = httpserver.log[0][0], other_origin.log[0][0]
    assert all(name in first.headers for name in SIGNATURE_HEADERS)
    assert [name for name in SIGNATURE_HEADERS if name in redirected.headers] == []
    assert redirected.get_data() == first.get_data()  # a 307 keeps the body; only the signature stays home


def test_a_credential_header_does_not_follow_a_redirect_to_another_origin(workspace, httpserver, other_origin):
    credential_save(
        workspace_id=workspace.pk, name="crm-key", kind="http_header", value={"name": "X-Api-Key", "value": "k3y"}
    )
    landing = f"http://127.0.0.1:{other_origin.port}/elsewhere"
    httpserver.expect_request("/api").respond_with_data("", status=302, headers={"Location": landing})
    other_origin.expect_request("/elsewhere").respond_with_data("elsewhere")
    config = {"url": f"http://127.0.0.1:{httpserver.port}/api", "credential": "crm-key"}

    HttpRequestNode.execute({"config": config}, context_in(workspace))

    assert httpserver.log[0][0].headers["X-Api-Key"] == "k3y"
    assert "X-Api-Key" not in other_origin.log[0][0].headers
