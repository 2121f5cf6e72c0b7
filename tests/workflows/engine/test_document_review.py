"""A person reviews the documents an approval names: approves them as they are, edits them first, or
asks for changes — run by a real worker against a fake OpenAI server."""

import pytest

from accounts.access import personal_workspace
from accounts.models import Membership
from analytics.models import Event
from audit.models import AuditEvent
from tests.conftest import client_for
from tests.factories import MembershipFactory
from tests.processes import wait_until
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.engine.test_runs import start, steps_of
from tests.workflows.helpers import create
from tests.workflows.llm_servers import openai_server
from workflows.models import Document, RunEvent, WorkflowVersion
from workflows.services.credentials import credential_save

pytestmark = pytest.mark.django_db(transaction=True)

COMMENT = "Shorter, and mention the sea."


def answer(body: dict) -> str:
    """The fake model's answer: a chapter that repeats the prompt it was given; an outline, the second
    once a reviewer asked for changes."""
    prompt = body["messages"][-1]["content"]
    if prompt.startswith("Chapter"):
        return f"Chapter written from: {prompt}"
    return "Outline v2" if COMMENT in prompt else "Outline v1"


@pytest.fixture
def llm(threaded_server, user):
    server = openai_server(threaded_server, text=answer, model="gpt-4o-mini")
    credential_save(
        workspace_id=personal_workspace(user).pk,
        name="openai",
        kind="openai",
        value={"api_key": "sk-t", "base_url": server.base_url},
    )
    return server


def reviewed_chain(api, **approval_config) -> dict:
    return create(
        api,
        {
            "name": "Reviewed chain",
            "nodes": [
                {
                    "key": "outline",
                    "type": "document",
                    "title": "Outline",
                    "prompt": "Outline a story about {{ input.topic }}",
                    "config": {"credential": "openai"},
                },
                {"key": "review", "type": "approval", "config": {"documents": ["outline"], **approval_config}},
                {
                    "key": "chapter",
                    "type": "document",
                    "title": "Chapter",
                    "prompt": "Chapter after: {{ nodes.outline.content }}",
                    "config": {"credential": "openai"},
                },
            ],
        },
    )


def waiting_run(api, **approval_config) -> str:
    run_id = start(api, reviewed_chain(api, **approval_config)["id"], {"topic": "boats"})["id"]
    wait_for_run(run_id, statuses={"waiting"})
    return run_id


def chapter_requests(llm) -> list:
    return [request for request in llm.requests if request.json["messages"][-1]["content"].startswith("Chapter")]


def test_the_waiting_approval_shows_the_documents_under_review(engine_worker, llm, user_api):
    run_id = waiting_run(user_api)
    steps = {step["key"]: step for step in user_api.get(f"/api/v3/runs/{run_id}/steps").json()}
    generated = Document.objects.get(run_id=run_id, node_key="outline")
    assert steps["review"]["status"] == "waiting"
    assert steps["review"]["state"]["review"] == [
        {"node_key": "outline", "document_id": str(generated.pk), "version": 1, "title": "Outline"}
    ]
    document = user_api.get(f"/api/v3/documents/{generated.pk}").json()
    assert document["content"] == "Outline v1"


def test_approving_with_edits_makes_a_new_version_that_the_next_steps_read(engine_worker, llm, user, user_api):
    run_id = waiting_run(user_api)
    generated = Document.objects.get(run_id=run_id, node_key="outline")

    reply = user_api.post(
        f"/api/v3/runs/{run_id}/steps/review/approve",
        {"approved": True, "comment": "Better now", "edits": {"outline": "A lighthouse keeper's outline"}},
        format="json",
    )
    assert reply.status_code == 200, reply.content
    run = wait_for_run(run_id)
    assert run.status == "succeeded", run.error

    edited = Document.objects.get(run_id=run_id, node_key="outline", version=2)
    assert (edited.previous_id, edited.provider, edited.content) == (
        generated.pk,
        "human",
        "A lighthouse keeper's outline",
    )
    assert edited.metadata["edited_by"] == user.email
    assert reply.json()["output"]["edits"] == {"outline": {"document_id": str(edited.pk), "version": 2}}
    # The chapter's prompt (an expression) and its context (the ancestors' documents) both hold the edit.
    [request] = chapter_requests(llm)
    messages = request.json["messages"]
    assert messages[-1]["content"] == "Chapter after: A lighthouse keeper's outline"
    assert {"role": "user", "content": "# Outline\n\nA lighthouse keeper's outline"} in messages
    chapter = Document.objects.get(run_id=run_id, node_key="chapter")
    assert list(chapter.sources.all()) == [edited]
    steps = steps_of(run_id)
    assert steps["outline"].output["document_id"] == str(edited.pk)
    assert RunEvent.objects.filter(run_id=run_id, type="document.created", step="outline", data__version=2).exists()
    audit = AuditEvent.objects.filter(action="run.approved").latest("id")
    assert audit.changes["edits"][1] == {"outline": {"document_id": str(edited.pk), "version": 2}}
    # Stored versions never change: an edit is always a new one.
    for method in (user_api.patch, user_api.put):
        assert method(f"/api/v3/documents/{generated.pk}", {"content": "x"}, format="json").status_code == 405
    generated.refresh_from_db()
    assert generated.content == "Outline v1"
    # Analytics count generations: the edit is none.
    wait_until(lambda: Event.objects.filter(type="run.finished", subject=run_id).exists(), timeout=20)
    generated = Event.objects.filter(type="document.generated", workflow_id=run.workflow_id)
    assert sorted(event.data["node_key"] for event in generated) == ["chapter", "outline"]


def test_approving_as_is_keeps_the_generated_document(engine_worker, llm, user_api):
    run_id = waiting_run(user_api)
    reply = user_api.post(
        f"/api/v3/runs/{run_id}/steps/review/approve",
        {"approved": True, "edits": {"outline": "Outline v1"}},  # unchanged: no edit
        format="json",
    )
    assert reply.status_code == 200, reply.content
    assert wait_for_run(run_id).status == "succeeded"
    assert Document.objects.filter(run_id=run_id, node_key="outline").count() == 1
    assert chapter_requests(llm)[0].json["messages"][-1]["content"] == "Chapter after: Outline v1"


def test_requesting_changes_writes_the_document_again_with_the_comment_then_waits_again(
    engine_worker, llm, user, user_api
):
    run_id = waiting_run(user_api)
    first = Document.objects.get(run_id=run_id, node_key="outline")

    reply = user_api.post(f"/api/v3/runs/{run_id}/steps/review/request-changes", {"comment": COMMENT}, format="json")
    assert reply.status_code == 202, reply.content
    wait_for_run(run_id, statuses={"waiting"})

    outline_requests = [r.json["messages"] for r in llm.requests if r not in chapter_requests(llm)]
    assert len(outline_requests) == 2
    # The model sees its prompt, the draft under review as its own answer, then the reviewer's request.
    prompt, draft, request = outline_requests[-1]
    assert (prompt, draft) == (
        {"role": "user", "content": "Outline a story about boats"},
        {"role": "assistant", "content": "Outline v1"},
    )
    assert request["role"] == "user" and COMMENT in request["content"]
    second = Document.objects.get(run_id=run_id, node_key="outline", version=2)
    assert (second.previous_id, second.content, second.metadata["review_comment"]) == (first.pk, "Outline v2", COMMENT)
    steps = steps_of(run_id)
    assert steps["review"].status == "waiting"
    assert steps["review"].state["review"][0]["document_id"] == str(second.pk)
    assert steps["chapter"].status == "pending" and not chapter_requests(llm)
    event = RunEvent.objects.get(run_id=run_id, type="run.changes_requested")
    assert event.data == {
        "steps": ["outline", "review"],
        "documents": ["outline"],
        "by": user.email,
        "comment": COMMENT,
    }
    assert AuditEvent.objects.filter(action="run.changes_requested", target_id=run_id).exists()

    reply = user_api.post(f"/api/v3/runs/{run_id}/steps/review/approve", {"approved": True}, format="json")
    assert reply.status_code == 200, reply.content
    assert wait_for_run(run_id).status == "succeeded"
    assert chapter_requests(llm)[0].json["messages"][-1]["content"] == "Chapter after: Outline v2"


def test_bad_review_requests_are_refused_and_change_nothing(engine_worker, llm, user_api):
    run_id = waiting_run(user_api)
    url = f"/api/v3/runs/{run_id}/steps/review"
    refused = [
        (f"{url}/approve", {"approved": True, "edits": {"chapter": "Mine"}}, "edits"),
        (f"{url}/approve", {"approved": True, "edits": {"nope": "Mine"}}, "edits"),
        (f"{url}/approve", {"approved": False, "edits": {"outline": "Mine"}}, "edits"),
        (f"{url}/approve", {"approved": True, "edits": {"outline": ["x"]}}, "edits.outline"),
        (f"{url}/approve", {"approved": True, "edits": ["outline"]}, "edits"),
        (f"{url}/request-changes", {}, "comment"),
        (f"{url}/request-changes", {"comment": ""}, "comment"),
    ]
    for path, body, field in refused:
        reply = user_api.post(path, body, format="json")
        assert reply.status_code == 400, (body, reply.content)
        assert field in reply.json()["errors"], (body, reply.json())
    assert Document.objects.filter(run_id=run_id).count() == 1
    assert steps_of(run_id)["review"].status == "waiting"
    assert not RunEvent.objects.filter(run_id=run_id, type="run.changes_requested").exists()
    chapter_path = f"/api/v3/runs/{run_id}/steps/chapter/request-changes"
    assert user_api.post(chapter_path, {"comment": "x"}, format="json").status_code == 409


def test_an_approval_without_documents_cannot_send_anything_back(engine_worker, user_api):
    workflow = create(user_api, {"name": "Plain", "nodes": [{"key": "ask", "type": "approval"}]})
    run_id = start(user_api, workflow["id"])["id"]
    wait_for_run(run_id, statuses={"waiting"})
    reply = user_api.post(f"/api/v3/runs/{run_id}/steps/ask/request-changes", {"comment": "x"}, format="json")
    assert reply.status_code == 409
    assert "reviews no documents" in reply.json()["detail"]
    edits = user_api.post(
        f"/api/v3/runs/{run_id}/steps/ask/approve", {"approved": True, "edits": {"x": "y"}}, format="json"
    )
    assert edits.status_code == 400 and "edits" in edits.json()["errors"]


def test_only_named_approvers_review_and_viewers_and_strangers_cannot(engine_worker, llm, user, user_api):
    run_id = waiting_run(user_api, approvers=["boss@example.com"])
    workspace = Membership.objects.get(user=user).workspace
    viewer = client_for(MembershipFactory(workspace=workspace, role="viewer").user)
    stranger = client_for(MembershipFactory().user)
    boss = client_for(MembershipFactory(workspace=workspace, user__email="boss@example.com", role="editor").user)
    url = f"/api/v3/runs/{run_id}/steps/review"
    edit = {"approved": True, "edits": {"outline": "Mine"}}
    for client, status in ((user_api, 403), (viewer, 403), (stranger, 404)):
        assert client.post(f"{url}/approve", edit, format="json").status_code == status
        assert client.post(f"{url}/request-changes", {"comment": "x"}, format="json").status_code == status
    assert Document.objects.filter(run_id=run_id).count() == 1

    assert boss.post(f"{url}/request-changes", {"comment": COMMENT}, format="json").status_code == 202
    wait_for_run(run_id, statuses={"waiting"})
    assert boss.post(f"{url}/approve", edit, format="json").status_code == 200
    assert wait_for_run(run_id).status == "succeeded"
    assert (
        Document.objects.get(run_id=run_id, node_key="outline", version=3).metadata["edited_by"] == "boss@example.com"
    )


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        (["ghost"], "'ghost', which is not a node of this workflow"),
        (["notes"], "'notes', a text node; only document nodes are reviewed"),
        (["chapter"], "'chapter', which does not come before this approval"),
    ],
)
def test_an_approval_may_review_only_document_nodes_before_it(user_api, documents, message):
    body = {
        "name": "Misreviewed",
        "nodes": [
            {"key": "outline", "type": "document", "prompt": "Outline"},
            {"key": "notes", "type": "text", "content": "Notes"},
            {"key": "review", "type": "approval", "config": {"documents": documents}},
            {"key": "chapter", "type": "document", "prompt": "Chapter"},
        ],
    }
    reply = user_api.post("/api/v3/workflows", body, format="json")
    assert reply.status_code == 400
    [error] = reply.json()["errors"]["nodes.review.config.documents"]
    assert message in error


def test_names_the_save_checks_missed_are_not_reviewed(engine_worker, llm, user_api):
    """The admin's graph forms do not check `documents`: a name that is no upstream document node
    is neither edited nor sent back."""
    workflow = reviewed_chain(user_api)
    version = WorkflowVersion.objects.get(workflow_id=workflow["id"])
    review = next(node for node in version.snapshot["nodes"] if node["key"] == "review")
    review["config"]["documents"] = ["ghost", "outline", "chapter"]
    version.save(update_fields=["snapshot"])
    run_id = start(user_api, workflow["id"], {"topic": "boats"})["id"]
    wait_for_run(run_id, statuses={"waiting"})
    url = f"/api/v3/runs/{run_id}/steps/review"

    for key in ("ghost", "chapter"):
        reply = user_api.post(f"{url}/approve", {"approved": True, "edits": {key: "Mine"}}, format="json")
        assert reply.status_code == 400 and "edits" in reply.json()["errors"]
    assert user_api.post(f"{url}/request-changes", {"comment": COMMENT}, format="json").status_code == 202
    event = RunEvent.objects.get(run_id=run_id, type="run.changes_requested")
    assert (event.data["steps"], event.data["documents"]) == (["outline", "review"], ["outline"])
    wait_for_run(run_id, statuses={"waiting"})
    assert user_api.post(f"{url}/approve", {"approved": True}, format="json").status_code == 200
    assert wait_for_run(run_id).status == "succeeded"
