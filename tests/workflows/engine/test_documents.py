"""Documents written by document steps (template provider here): versions, lineage, regeneration, the API."""

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Membership
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.engine.test_runs import start, steps_of
from tests.workflows.helpers import create
from workflows.models import Document, RunEvent, Workflow

pytestmark = pytest.mark.django_db(transaction=True)


def chain_workflow(api, **config) -> dict:
    """outline → draft → summary, each prompt quoting the document before it."""
    return create(
        api,
        {
            "name": "Chain of documents",
            "nodes": [
                {
                    "key": "outline",
                    "type": "document",
                    "title": "Outline",
                    "prompt": "Outline about {{ input.topic }}",
                    "config": config,
                },
                {
                    "key": "draft",
                    "type": "document",
                    "title": "Draft",
                    "prompt": "Draft from [{{ nodes.outline.content }}]",
                    "config": config,
                },
                {
                    "key": "summary",
                    "type": "document",
                    "title": "Summary",
                    "prompt": "Summary of [{{ nodes.draft.content }}]",
                    "config": config,
                },
            ],
        },
    )


def run_chain(api, workflow, topic="tides"):
    run = wait_for_run(start(api, workflow["id"], {"topic": topic})["id"])
    assert run.status == "succeeded", run.error
    return run


def test_each_document_step_stores_a_versioned_document_with_its_lineage(engine_worker, user_api):
    workflow = chain_workflow(user_api)
    run = run_chain(user_api, workflow)

    documents = {doc.node_key: doc for doc in Document.objects.filter(run=run)}
    assert documents["summary"].content == "Summary of [Draft from [Outline about tides]]"
    assert documents["outline"].title == "Outline"
    assert {doc.version for doc in documents.values()} == {1}
    assert list(documents["draft"].sources.all()) == [documents["outline"]]
    assert set(documents["summary"].sources.all()) == {documents["outline"], documents["draft"]}
    assert documents["outline"].provider == "template"
    assert steps_of(run.pk)["draft"].output["document_id"] == str(documents["draft"].pk)
    created = RunEvent.objects.filter(run=run, type="document.created").values_list("step", flat=True)
    assert sorted(created) == ["draft", "outline", "summary"]

    second = run_chain(user_api, workflow, topic="reefs")
    assert Document.objects.get(run=second, node_key="summary").version == 2

    answer = user_api.get(f"/api/v3/documents/{documents['draft'].pk}")
    assert answer.status_code == 200
    body = answer.json()
    assert body["content"] == "Draft from [Outline about tides]"
    assert [source["node_key"] for source in body["sources"]] == ["outline"]
    assert [derived["node_key"] for derived in body["derived"]] == ["summary"]

    versions = user_api.get(f"/api/v3/documents/{documents['summary'].pk}/versions").json()["results"]
    assert [item["version"] for item in versions] == [2, 1]

    detail = user_api.get(f"/api/v3/runs/{run.pk}").json()
    assert detail["usage"] == {"tokens_in": 0, "tokens_out": 0, "cost": 0}


def test_documents_list_filters_and_full_text_search(engine_worker, user_api):
    workflow = chain_workflow(user_api)
    first = run_chain(user_api, workflow, topic="migrating salmon")
    run_chain(user_api, workflow, topic="volcanic islands")

    assert user_api.get("/api/v3/documents").json()["count"] == 6
    by_run = user_api.get(f"/api/v3/documents?run={first.pk}&node_key=outline").json()["results"]
    assert [(item["node_key"], item["run"]) for item in by_run] == [("outline", str(first.pk))]

    found = user_api.get('/api/v3/documents?search="migrating salmon"').json()["results"]
    assert {item["run"] for item in found} == {str(first.pk)}
    assert len(found) == 3
    # Stemming: "islands" matches "island".
    assert user_api.get("/api/v3/documents?search=island").json()["count"] == 3
    assert user_api.get("/api/v3/documents?search=nonexistentword").json()["count"] == 0
    assert user_api.get("/api/v3/documents?created_after=not-a-date").status_code == 400


def test_download_is_a_markdown_attachment_with_a_safe_filename(engine_worker, user_api):
    workflow = create(
        user_api,
        {
            "name": "Odd title",
            "nodes": [
                {
                    "key": "doc",
                    "type": "document",
                    "prompt": "# Heading\n\nBody",
                    "config": {"title": '../../etc/passwd"; evil=1 — Ünïcode'},
                }
            ],
        },
    )
    run = wait_for_run(start(user_api, workflow["id"])["id"])
    document = Document.objects.get(run=run)

    answer = user_api.get(f"/api/v3/documents/{document.pk}/download")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/markdown; charset=utf-8"
    disposition = answer["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "/" not in disposition and '"; evil' not in disposition
    assert "etcpasswd-evil1-unicode-v1.md" in disposition
    assert answer.content.decode() == "# Heading\n\nBody"


def test_regenerate_without_cascade_makes_a_new_version_of_that_step_only(engine_worker, user_api):
    workflow = chain_workflow(user_api)
    run = run_chain(user_api, workflow)
    before = {doc.node_key: doc for doc in Document.objects.filter(run=run)}

    answer = user_api.post(
        f"/api/v3/runs/{run.pk}/steps/draft/regenerate", {"prompt": "Shorter draft of {{ input.topic }}"}, format="json"
    )
    assert answer.status_code == 202, answer.content
    run = wait_for_run(run.pk)
    assert run.status == "succeeded", run.error

    drafts = Document.objects.filter(run=run, node_key="draft").order_by("version")
    assert [(doc.version, doc.content) for doc in drafts] == [
        (1, before["draft"].content),
        (2, "Shorter draft of tides"),
    ]
    assert drafts[1].previous == drafts[0]
    assert drafts[1].metadata["prompt"] == "Shorter draft of {{ input.topic }}"
    # Without cascade the summary keeps its document; the outline was not generated again.
    assert Document.objects.filter(run=run, node_key="summary").count() == 1
    assert Document.objects.filter(run=run, node_key="outline").count() == 1
    assert RunEvent.objects.filter(run=run, type="run.regenerating").exists()


def test_regenerate_with_cascade_reruns_every_following_step(engine_worker, user_api):
    workflow = chain_workflow(user_api)
    run = run_chain(user_api, workflow)

    answer = user_api.post(
        f"/api/v3/runs/{run.pk}/steps/draft/regenerate",
        {"prompt": "New draft from [{{ nodes.outline.content }}]", "cascade": True},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    run = wait_for_run(run.pk)
    assert run.status == "succeeded", run.error

    summary = Document.objects.filter(run=run, node_key="summary").order_by("-version").first()
    assert summary.version == 2
    assert summary.content == "Summary of [New draft from [Outline about tides]]"
    assert Document.objects.filter(run=run, node_key="outline").count() == 1
    assert run.output["summary"]["content"] == summary.content


def test_regenerate_refuses_what_it_cannot_do_and_changes_nothing(engine_worker, user_api, user):
    workflow = create(
        user_api,
        {
            "name": "Mixed",
            "nodes": [
                {"key": "doc", "type": "document", "prompt": "Hello"},
                {"key": "shape", "type": "transform", "config": {"values": {"a": 1}}},
                {"key": "wait", "type": "delay", "config": {"seconds": 30}},
            ],
        },
    )
    run_id = start(user_api, workflow["id"])["id"]
    assert user_api.post(f"/api/v3/runs/{run_id}/steps/doc/regenerate", {}, format="json").status_code == 409
    user_api.post(f"/api/v3/runs/{run_id}/cancel")
    run = wait_for_run(run_id)

    def regenerate(key, body=None, api=user_api):
        return api.post(f"/api/v3/runs/{run_id}/steps/{key}/regenerate", body or {}, format="json")

    assert regenerate("shape").status_code == 409
    assert regenerate("nope").status_code == 404
    broken = regenerate("doc", {"prompt": "{{ unclosed"})
    assert broken.status_code == 400 and "prompt" in broken.json()["errors"]
    viewer = UserFactory()
    MembershipFactory(user=viewer, workspace_id=run.workspace_id, role=Membership.Role.VIEWER)
    assert regenerate("doc", api=client_for(viewer)).status_code == 403
    assert regenerate("doc", api=client_for(UserFactory())).status_code == 404
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert Document.objects.filter(run=run).count() == 1


def test_documents_are_private_to_their_workspace(engine_worker, user_api):
    workflow = chain_workflow(user_api)
    run = run_chain(user_api, workflow)
    document = Document.objects.filter(run=run).first()
    stranger = client_for(UserFactory())

    assert stranger.get("/api/v3/documents").json()["count"] == 0
    for path in ("", "/download", "/versions"):
        assert stranger.get(f"/api/v3/documents/{document.pk}{path}").status_code == 404
    assert user_api.get("/api/v3/documents/not-a-uuid").status_code == 404


def test_the_demo_blog_series_is_created_once_and_runs_offline(engine_worker):
    with pytest.raises(CommandError, match="No superuser"):
        call_command("ensure_demo")
    admin = UserFactory(is_superuser=True, is_staff=True)
    call_command("ensure_demo")
    call_command("ensure_demo")
    workflow = Workflow.objects.get(slug="ai-blog-series")
    assert Workflow.objects.filter(name="AI Blog Series").count() == 1

    api = client_for(admin)
    run = wait_for_run(start(api, workflow.pk, {"topic": "tide pools"})["id"], timeout=60)
    assert run.status == "succeeded", run.error
    documents = {doc.node_key: doc for doc in Document.objects.filter(run=run)}
    assert set(documents) == {"outline", "post_1", "post_2", "post_3", "summary"}
    assert "tide pools" in documents["outline"].content
    assert documents["outline"].content in documents["post_2"].content
    assert "## Post 3: What comes next" in documents["summary"].content
    assert set(documents["summary"].sources.all()) == {
        documents[key] for key in ("outline", "post_1", "post_2", "post_3")
    }


def test_the_admin_shows_documents_read_only_with_their_lineage(engine_worker, user_api, client):
    workflow = chain_workflow(user_api)
    run = run_chain(user_api, workflow)
    draft = Document.objects.get(run=run, node_key="draft")
    outline = Document.objects.get(run=run, node_key="outline")
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    listing = client.get("/admin/workflows/document/?q=tides")
    assert listing.status_code == 200
    assert "Draft" in listing.content.decode()
    page = client.get(f"/admin/workflows/document/{draft.pk}/change/").content.decode()
    assert f"/admin/workflows/document/{outline.pk}/change/" in page  # generated from
    assert "Draft from [Outline about tides]" in page
    assert 'name="_save"' not in page  # read-only
    assert client.get("/admin/workflows/document/add/").status_code == 403
    assert client.post(f"/admin/workflows/document/{draft.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Document.objects.filter(pk=draft.pk).exists()


def test_concurrent_runs_number_their_documents_one_to_n_and_all_succeed(engine_worker, user_api):
    """Many runs finish the same document node at once: none fails, each document takes the next version."""
    count = 200
    workflow = create(user_api, {"name": "Burst", "nodes": [{"key": "draft", "prompt": "Draft {{ input.n }}"}]})
    answer = user_api.post(
        f"/api/v3/workflows/{workflow['id']}/runs/batch", {"inputs": [{"n": n} for n in range(count)]}, format="json"
    )
    assert answer.status_code == 202, answer.content
    runs = [wait_for_run(item["id"], timeout=60) for item in answer.json()]

    assert [(run.status, run.error) for run in runs if run.status != "succeeded"] == []
    versions = Document.objects.filter(workflow_id=workflow["id"], node_key="draft").values_list("version", flat=True)
    assert sorted(versions) == list(range(1, count + 1))
