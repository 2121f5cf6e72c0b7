"""The demo workflow ("AI Blog Series") as a new user meets it: open the run dialog, press Run."""

from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

from tests.conftest import client_for
from tests.factories import UserFactory
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.engine.test_runs import start
from workflows.models import Document, Workflow

pytestmark = pytest.mark.django_db(transaction=True)


def run_dialog_input(schema: dict) -> dict:
    """The input the dashboard's run dialog pre-fills (inputSkeleton in static/dashboard/run-start.js):
    each property's default, else an empty value of its type."""
    empty = {"string": "", "number": 0, "integer": 0, "boolean": False, "array": [], "object": {}}
    return {
        name: prop["default"] if "default" in prop else empty.get(prop.get("type"))
        for name, prop in schema.get("properties", {}).items()
    }


def test_the_run_dialog_pre_fills_the_schema_defaults():
    # The Run dialog and the builder's Run panel start from run-start.js's inputSkeleton.
    script = Path(finders.find("dashboard/run-start.js")).read_text()
    assert "property.default ??" in script


def test_pressing_run_on_the_demo_writes_about_its_default_topic(engine_worker):
    admin = UserFactory(is_superuser=True, is_staff=True)
    call_command("ensure_demo")
    api = client_for(admin)
    workflow = api.get(f"/api/v3/workflows/{Workflow.objects.get(slug='ai-blog-series').pk}").json()
    topic = workflow["input_schema"]["properties"]["topic"]["default"]
    assert topic.strip()

    pre_filled = run_dialog_input(workflow["input_schema"])
    assert pre_filled == {"topic": topic}
    for run_input in (pre_filled, {"topic": ""}):  # as pre-filled, and with the field cleared
        run = wait_for_run(start(api, workflow["id"], run_input)["id"], timeout=60)
        assert run.status == "succeeded", run.error
        documents = Document.objects.filter(run=run)
        assert documents.count() == 5
        for document in documents.exclude(node_key="summary"):
            assert f"blog series on {topic}" in document.content, document.content
        assert "blog series on ," not in " ".join(document.content for document in documents)
