"""Document steps calling language models: a real worker against local servers that speak each API."""

import json
from decimal import Decimal

import pytest

from accounts.access import personal_workspace
from core import metrics
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.engine.test_runs import start, steps_of
from tests.workflows.helpers import create
from tests.workflows.llm_servers import anthropic_server, openai_server
from workflows import events
from workflows.models import Document, RunEvent
from workflows.services.credentials import credential_save

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sk-e2e-secret-value-4242"


@pytest.fixture
def workspace(user) -> str:
    return str(personal_workspace(user).pk)


def chain(api, credential: str, model: str, **config) -> dict:
    return create(
        api,
        {
            "name": "Model chain",
            "nodes": [
                {
                    "key": "outline",
                    "type": "document",
                    "title": "Outline",
                    "prompt": "Outline {{ input.topic }}",
                    "config": {"credential": credential, "model": model, "system": "Be brief.", **config},
                },
                {
                    "key": "post",
                    "type": "document",
                    "title": "Post",
                    "prompt": "Write the post.",
                    "config": {"credential": credential, "model": model, "temperature": 0.2, **config},
                },
            ],
        },
    )


def test_openai_chain_sends_the_chained_context_and_records_usage_and_cost(
    engine_worker, user_api, workspace, threaded_server
):
    llm = openai_server(
        threaded_server, text=lambda body: f"Answer {len(body['messages'])}", model="gpt-4o-mini-2024-07-18"
    )
    credential_save(
        workspace_id=workspace, name="openai", kind="openai", value={"api_key": SECRET, "base_url": llm.base_url}
    )
    workflow = chain(user_api, "openai", "gpt-4o-mini")

    run = wait_for_run(start(user_api, workflow["id"], {"topic": "tides"})["id"], timeout=60)
    assert run.status == "succeeded", run.error

    first, second = llm.requests
    assert first.path == "/v1/chat/completions"
    assert first.headers["authorization"] == f"Bearer {SECRET}"
    assert first.json["model"] == "gpt-4o-mini"
    assert first.json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Outline tides"},
    ]
    assert second.json["messages"] == [
        {"role": "user", "content": "# Outline\n\nAnswer 2"},
        {"role": "user", "content": "Write the post."},
    ]
    assert second.json["temperature"] == 0.2
    post = Document.objects.get(run=run, node_key="post")
    assert post.content == "Answer 2"
    assert (post.provider, post.model, post.tokens_in, post.tokens_out) == ("openai", "gpt-4o-mini-2024-07-18", 12, 7)
    # gpt-4o-mini: $0.15 in and $0.60 out per million tokens.
    assert post.cost == Decimal("0.000006")
    assert post.metadata["context"]["documents"] == ["outline"]
    streamed = RunEvent.objects.filter(run=run, type="step.delta", step="post").order_by("seq")
    assert "".join(event.data["text"] for event in streamed) == "Answer 2"

    detail = user_api.get(f"/api/v3/runs/{run.pk}").json()
    assert detail["usage"] == {"tokens_in": 24, "tokens_out": 14, "cost": 0.000012}

    # The key is in no answer, event or log line.
    pages = [
        user_api.get(f"/api/v3/runs/{run.pk}").content,
        user_api.get(f"/api/v3/runs/{run.pk}/steps").content,
        user_api.get(f"/api/v3/runs/{run.pk}/events").content,
        user_api.get(f"/api/v3/documents/{post.pk}").content,
        user_api.get(f"/api/v3/workflows/{workflow['id']}/export").content,
    ]
    assert all(SECRET.encode() not in page for page in pages)
    assert SECRET not in engine_worker.output()


def test_streamed_text_arrives_as_ordered_deltas_that_make_the_document(
    engine_worker, user_api, workspace, threaded_server
):
    text = "Streaming arrives piece by piece, " * 12
    llm = anthropic_server(threaded_server, text=text, chunk_delay=0.01)
    credential_save(
        workspace_id=workspace, name="claude", kind="anthropic", value={"api_key": SECRET, "base_url": llm.base_url}
    )
    workflow = create(
        user_api,
        {
            "name": "Streamed",
            "nodes": [
                {"key": "essay", "type": "document", "prompt": "Go", "config": {"credential": "claude", "model": "m1"}}
            ],
        },
    )

    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=60)
    assert run.status == "succeeded", run.error

    [request] = llm.requests
    assert request.headers["authorization"] == f"Bearer {SECRET}"  # this SDK's way to send the key
    assert request.json["stream"] is True
    deltas = RunEvent.objects.filter(run=run, type="step.delta").order_by("seq")
    # Coalesced: fewer events than pieces, more than one.
    assert 1 < deltas.count() < len(text.split())
    assert "".join(event.data["text"] for event in deltas) == text
    assert Document.objects.get(run=run).content == text
    finished = RunEvent.objects.get(run=run, type="step.succeeded")
    assert deltas.last().seq < finished.seq


def test_json_output_that_breaks_the_schema_is_retried_and_stored_parsed(
    engine_worker, user_api, workspace, threaded_server
):
    answers = iter(['{"title": 3}', '{"title": "Tides", "points": ["moon"]}'])
    llm = openai_server(threaded_server, text=lambda body: next(answers))
    credential_save(
        workspace_id=workspace, name="openai", kind="openai", value={"api_key": SECRET, "base_url": llm.base_url}
    )
    schema = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}
    workflow = create(
        user_api,
        {
            "name": "Structured",
            "nodes": [
                {
                    "key": "facts",
                    "type": "document",
                    "prompt": "Facts as JSON",
                    "config": {"credential": "openai", "format": "json", "json_schema": schema},
                    "retry": {"max_attempts": 2, "backoff_seconds": 0.1},
                }
            ],
        },
    )

    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=60)
    assert run.status == "succeeded", run.error
    step = steps_of(run.pk)["facts"]
    assert step.attempt == 2
    assert step.output["data"] == {"title": "Tides", "points": ["moon"]}
    retried = RunEvent.objects.get(run=run, type="step.retrying")
    assert "does not satisfy `json_schema` at /title" in retried.data["error"]["message"]
    assert [request.json["response_format"] for request in llm.requests] == [{"type": "json_object"}] * 2
    assert Document.objects.get(run=run).format == "json"


def test_the_context_budget_drops_the_oldest_documents_first(engine_worker, user_api, workspace, threaded_server):
    llm = openai_server(threaded_server, text=lambda body: "x" * 400)  # about 100 tokens each
    credential_save(
        workspace_id=workspace, name="openai", kind="openai", value={"api_key": SECRET, "base_url": llm.base_url}
    )
    nodes = [
        {
            "key": key,
            "type": "document",
            "prompt": f"Write {key}",
            "config": {"credential": "openai", "context_tokens": 250},
        }
        for key in ("one", "two", "three", "four")
    ]
    workflow = create(user_api, {"name": "Long chain", "nodes": nodes})

    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=60)
    assert run.status == "succeeded", run.error

    last = llm.requests[-1].json["messages"]
    assert [message["content"].splitlines()[0] for message in last] == ["# two", "# three", "Write four"]
    context = Document.objects.get(run=run, node_key="four").metadata["context"]
    assert context["dropped"] == ["one"]
    assert context["documents"] == ["two", "three"]
    assert context["budget_tokens"] == 250


def test_a_cached_request_does_not_call_the_model_again(engine_worker, user_api, workspace, threaded_server):
    llm = openai_server(threaded_server, text="Cached answer", model="gpt-4o")
    credential_save(
        workspace_id=workspace, name="openai", kind="openai", value={"api_key": SECRET, "base_url": llm.base_url}
    )
    workflow = create(
        user_api,
        {
            "name": "Cached",
            "nodes": [
                {
                    "key": "doc",
                    "type": "document",
                    "prompt": "Same prompt {{ input.n | default(0) }}",
                    "config": {"credential": "openai", "model": "gpt-4o", "cache": True},
                }
            ],
        },
    )

    first = wait_for_run(start(user_api, workflow["id"], {"n": 7})["id"], timeout=60)
    second = wait_for_run(start(user_api, workflow["id"], {"n": 7})["id"], timeout=60)
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert len(llm.requests) == 1
    cached = Document.objects.get(run=second)
    assert cached.content == "Cached answer"
    assert cached.metadata["cached"] is True and cached.cost == 0
    assert Document.objects.get(run=first).cost > 0
    third = wait_for_run(start(user_api, workflow["id"], {"n": 8})["id"], timeout=60)
    assert third.status == "succeeded" and len(llm.requests) == 2


def test_a_missing_or_wrong_credential_fails_the_step_clearly(engine_worker, user_api, workspace):
    credential_save(workspace_id=workspace, name="bearer", kind="http_bearer", value={"token": "t"})
    # Saving refuses an unknown credential, so "nope" goes missing after the workflow was saved.
    nope = credential_save(workspace_id=workspace, name="nope", kind="openai", value={"api_key": "k"})
    workflow = create(
        user_api,
        {
            "name": "Bad credentials",
            "settings": {"on_failure": "continue"},
            "nodes": [
                {
                    "key": "missing",
                    "type": "document",
                    "prompt": "x",
                    "config": {"credential": "nope"},
                    "depends_on": [],
                },
                {
                    "key": "wrong",
                    "type": "document",
                    "prompt": "x",
                    "config": {"credential": "bearer"},
                    "depends_on": [],
                },
                {"key": "bare", "type": "document", "prompt": "x", "config": {"provider": "openai"}, "depends_on": []},
            ],
        },
    )
    assert user_api.delete(f"/api/v3/credentials/{nope.pk}?force=true").status_code == 204
    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=60)
    steps = steps_of(run.pk)
    assert "No credential named 'nope'" in steps["missing"].error["message"]
    assert "is a http_bearer credential" in steps["wrong"].error["message"]
    assert "needs a `credential`" in steps["bare"].error["message"]
    assert not Document.objects.filter(run=run).exists()


def test_succeeded_generations_count_tokens_and_cost_in_metrics():
    usage = {"provider": "openai", "model": "gpt-4o", "tokens_in": 10, "tokens_out": 4, "cost": 0.5}
    tokens_in = metrics.generation_tokens_total.labels(provider="openai", model="gpt-4o", direction="in")
    tokens_out = metrics.generation_tokens_total.labels(provider="openai", model="gpt-4o", direction="out")
    cost = metrics.generation_cost_total.labels(provider="openai", model="gpt-4o")
    before = (tokens_in._value.get(), tokens_out._value.get(), cost._value.get())

    event = {
        "type": "step.succeeded",
        "data": {"type": "document", "usage": usage},
        "workspace": "00000000-0000-0000-0000-000000000000",
        "workflow": "w",
        "run": "r",
    }
    events.publish([event])

    after = (tokens_in._value.get(), tokens_out._value.get(), cost._value.get())
    assert [round(b - a, 6) for a, b in zip(before, after, strict=True)] == [10, 4, 0.5]
    assert json.dumps(event)  # the envelope stays JSON
