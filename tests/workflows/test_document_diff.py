"""GET documents/{id}/diff: a unified and a word-level diff between versions of one node's document."""

import itertools
import uuid

import pytest
from django.test import override_settings

from accounts.models import Workspace
from tests.conftest import client_for
from tests.factories import UserFactory
from workflows.models import Document
from workflows.services import document_diff
from workflows.services.document_diff import unified_diff, word_diff, word_stats
from workflows.services.runs import run_trigger
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

FIRST = "The quick brown fox jumps over the lazy dog.\nIt was a sunny day.\n"
SECOND = "The slow brown fox jumps over the lazy dog!\nIt was a sunny day.\nThe end.\n"


def versions(user, *contents: str, node_key: str = "doc") -> list[Document]:
    """A workflow of the user's workspace with one document per content, each the next version of the
    one before it, each written by its own run (as regenerations and reruns write them)."""
    workspace = Workspace.objects.get(memberships__user=user)
    nodes = [{"key": "doc", "type": "document", "prompt": "Hi"}, {"key": "other", "type": "document", "prompt": "Yo"}]
    workflow = workflow_create(actor=user, workspace=workspace, data={"name": "W", "status": "active", "nodes": nodes})
    documents: list[Document] = []
    for number, content in enumerate(contents, start=1):
        run, _ = run_trigger(workflow=workflow, input={}, trigger="api", actor=user)
        documents.append(
            Document.objects.create(
                workspace=workspace,
                workflow=workflow,
                run=run,
                node_key=node_key,
                version=number,
                previous=documents[-1] if documents else None,
                title=f"Doc v{number}",
                content=content,
                provider="template",
            )
        )
    return documents


def diff(api, document: Document, **query):
    return api.get(f"/api/v3/documents/{document.pk}/diff", query)


def test_against_previous_compares_with_the_version_it_replaced(user, user_api):
    first, second = versions(user, FIRST, SECOND)

    answer = diff(user_api, second, against="previous")

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["document"]["id"] == str(second.pk) and body["document"]["version"] == 2
    assert body["against"]["id"] == str(first.pk) and body["against"]["version"] == 1
    assert body["against"]["run"] == str(first.run_id)
    assert body["words"] == [
        {"op": "equal", "text": "The "},
        {"op": "delete", "text": "quick"},
        {"op": "insert", "text": "slow"},
        {"op": "equal", "text": " brown fox jumps over the lazy dog"},
        {"op": "delete", "text": "."},
        {"op": "insert", "text": "!"},
        {"op": "equal", "text": "\nIt was a sunny day.\n"},
        {"op": "insert", "text": "The end.\n"},
    ]
    assert body["stats"] == {"insertions": 5, "deletions": 2, "unchanged": 14}
    assert body["unified"].splitlines() == [
        "--- v1",
        "+++ v2",
        "@@ -1,2 +1,3 @@",
        "-The quick brown fox jumps over the lazy dog.",
        "+The slow brown fox jumps over the lazy dog!",
        " It was a sunny day.",
        "+The end.",
    ]


def test_against_defaults_to_previous(user, user_api):
    first, second = versions(user, FIRST, SECOND)

    body = diff(user_api, second).json()

    assert body["against"]["id"] == str(first.pk)


def test_against_an_id_compares_across_runs_in_either_direction(user, user_api):
    first, _second, third = versions(user, FIRST, SECOND, "It was a sunny day.\n")

    answer = diff(user_api, first, against=str(third.pk))

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["document"]["version"], body["against"]["version"]) == (1, 3)
    assert body["against"]["run"] != body["document"]["run"]
    # From the third version (old side) to the first (new side): the first line comes back.
    assert body["words"][0] == {"op": "insert", "text": "The quick brown fox jumps over the lazy dog.\n"}
    assert body["stats"] == {"insertions": 10, "deletions": 0, "unchanged": 6}
    assert "--- v3\n+++ v1\n" in body["unified"]


def test_equal_versions_have_an_empty_unified_diff_and_one_equal_span(user, user_api):
    _first, second = versions(user, FIRST, FIRST)

    body = diff(user_api, second).json()

    assert body["unified"] == ""
    assert body["words"] == [{"op": "equal", "text": FIRST}]
    assert body["stats"] == {"insertions": 0, "deletions": 0, "unchanged": 16}


@override_settings(DEBUG=False)
def test_a_first_version_has_no_previous_to_compare_with(user, user_api):
    (first,) = versions(user, FIRST)

    answer = diff(user_api, first, against="previous")

    assert answer.status_code == 400
    assert answer.json()["errors"] == {"against": [document_diff.NO_PREVIOUS]}


@override_settings(DEBUG=False)
def test_another_nodes_document_cannot_be_compared(user, user_api):
    (document,) = versions(user, FIRST)
    (other_workflows,) = versions(user, SECOND)
    same_workflow_other_node = Document.objects.create(
        workspace=document.workspace,
        workflow=document.workflow,
        run=document.run,
        node_key="other",
        version=1,
        title="Other",
        content=SECOND,
        provider="template",
    )

    for against in (same_workflow_other_node, other_workflows):
        answer = diff(user_api, document, against=str(against.pk))

        assert answer.status_code == 400, answer.content
        assert answer.json()["errors"] == {"against": ["Only versions of the same node's document can be compared."]}


@override_settings(DEBUG=False)
# Fixed values: pytest-xdist processes must collect the same test ids.
@pytest.mark.parametrize(
    "against", ["", "latest", "12", "not-a-uuid", "50fd87bf-6c73-4fbb-8583-bfb60e6051cax", "PREVIOUS"]
)
def test_a_malformed_against_is_a_400_naming_it(user, user_api, against):
    _first, second = versions(user, FIRST, SECOND)

    answer = diff(user_api, second, against=against)

    assert answer.status_code == 400, answer.content
    assert answer.json()["errors"] == {"against": [document_diff.NOT_AN_AGAINST]}


@override_settings(DEBUG=False)
def test_a_stranger_gets_404_for_the_document_and_for_against(user, user_api):
    first, second = versions(user, FIRST, SECOND)
    stranger = UserFactory()
    (theirs,) = versions(stranger, FIRST)
    unknown = uuid.uuid4()

    assert diff(client_for(stranger), second).status_code == 404
    # Naming someone else's version answers as an unknown id does: no existence leak.
    foreign = diff(user_api, second, against=str(theirs.pk))
    missing = diff(user_api, second, against=str(unknown))
    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert foreign.json() == missing.json()
    assert diff(client_for(stranger), theirs, against=str(first.pk)).status_code == 404


@override_settings(DEBUG=False)
def test_texts_over_the_limit_are_refused(user, user_api, monkeypatch):
    monkeypatch.setattr(document_diff, "MAX_DIFF_CHARS", len(FIRST))
    _first, second = versions(user, FIRST, SECOND)

    answer = diff(user_api, second)

    assert answer.status_code == 400
    assert "are not compared" in answer.json()["detail"] + str(answer.json().get("errors"))


def test_word_spans_give_both_texts_back():
    old = "  Leading space.\n\n\nTwo blank lines, then tabs\tand  double  spaces.\nUnicode: café, naïve — ok"
    new = "Leading space!\n\nOne blank line, then tabs\tand double spaces.\nUnicode: café, naive — ok\n"

    spans = word_diff(old, new)

    assert "".join(span["text"] for span in spans if span["op"] != "insert") == old
    assert "".join(span["text"] for span in spans if span["op"] != "delete") == new
    # Neighbours never share an op: spans are merged.
    assert all(a["op"] != b["op"] for a, b in itertools.pairwise(spans))
    assert spans[-5:] == [
        {"op": "equal", "text": "spaces.\nUnicode: café, "},
        {"op": "delete", "text": "naïve"},
        {"op": "insert", "text": "naive"},
        {"op": "equal", "text": " — ok"},
        {"op": "insert", "text": "\n"},
    ]
    # A word whose following whitespace changed is the same word: only the whitespace is marked.
    assert spans[7:10] == [
        {"op": "equal", "text": ", then tabs\tand "},
        {"op": "delete", "text": " "},
        {"op": "equal", "text": "double "},
    ]


def test_a_long_block_changed_all_through_is_matched_line_by_line():
    old = "".join(f"line {number} says alpha beta gamma delta\n" for number in range(2000))
    new = old.replace("gamma", "GAMMA")

    spans = word_diff(old, new)

    assert word_stats(spans) == {"insertions": 2000, "deletions": 2000, "unchanged": 2000 * 6}
    assert spans[:3] == [
        {"op": "equal", "text": "line 0 says alpha beta "},
        {"op": "delete", "text": "gamma"},
        {"op": "insert", "text": "GAMMA"},
    ]


def test_unified_diff_labels_and_context():
    text = unified_diff("a\nb\nc\nd\ne\nf\ng\n", "a\nb\nc\nD\ne\nf\ng\n", "v3", "v4", context=1)

    assert text == "--- v3\n+++ v4\n@@ -3,3 +3,3 @@\n c\n-d\n+D\n e\n"


def test_the_dashboard_page_compares_with_the_version_before_by_default(user, client):
    first, second = versions(user, FIRST, SECOND)
    second.previous = None  # written by a later run: its version before is the other run's
    second.save()
    client.force_login(user)

    page = client.get(f"/dashboard/documents/{second.pk}/diff/")
    chosen = client.get(f"/dashboard/documents/{second.pk}/diff/", {"against": "previous"})

    assert page.status_code == 200
    assert f'data-against="{first.pk}"' in page.content.decode()
    assert 'data-against="previous"' in chosen.content.decode()
    assert "dashboard/document-diff.js" in page.content.decode()


@override_settings(DEBUG=False)
def test_the_dashboard_page_is_a_404_for_a_stranger(user, client):
    _first, second = versions(user, FIRST, SECOND)
    client.force_login(UserFactory())

    assert client.get(f"/dashboard/documents/{second.pk}/diff/").status_code == 404
