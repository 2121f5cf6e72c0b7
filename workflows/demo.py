"""The demo workflow `make run` sets up: a blog series written as a chain of documents, offline.

Every document node names no credential, so the template provider writes it (the rendered prompt
is the document). Point it at a real model by creating an openai or anthropic credential and
setting `credential` and `model` on the nodes (see docs/generation.md).
"""

from accounts.models import User, Workspace
from workflows.models import Workflow
from workflows.services.workflows import workflow_create

DEMO_SLUG = "ai-blog-series"
DEFAULT_TOPIC = "AI in document automation"
# The input schema's default is what the dashboard's run dialog pre-fills; `default(..., true)` also
# stands in for an empty topic, so pressing Run on a cleared field still writes about something.
TOPIC = "{{ input.topic | default('" + DEFAULT_TOPIC + "', true) }}"


def _post(number: int, angle: str) -> dict:
    return {
        "key": f"post_{number}",
        "type": "document",
        "title": f"Post {number}: {angle}",
        "prompt": (
            f"Write post {number} of the blog series on {TOPIC}, about {angle.lower()}. Follow the outline:\n\n"
            "{{ nodes.outline.content }}"
        ),
        "depends_on": ["outline"],
    }


DEMO_DEFINITION = {
    "slug": DEMO_SLUG,
    "name": "AI Blog Series",
    "description": "An outline, three posts that follow it, and a summary of the three: a document chain.",
    "status": "active",
    "tags": ["demo", "blog"],
    "input_schema": {
        "type": "object",
        "properties": {
            "topic": {
                "type": "string",
                "maxLength": 200,
                "default": DEFAULT_TOPIC,
                "description": "What the blog series is about.",
            }
        },
    },
    "nodes": [
        {
            "key": "outline",
            "type": "document",
            "title": "Series outline",
            "prompt": f"Outline a three-part blog series on {TOPIC}: the why, the how, and what comes next.",
            "config": {"system": "You are a clear, concrete technical writer."},
            "depends_on": [],
        },
        _post(1, "The why"),
        _post(2, "The how"),
        _post(3, "What comes next"),
        {
            "key": "summary",
            "type": "document",
            "title": "Series summary",
            "prompt": (
                "Summarize the series in one paragraph per post:\n\n"
                "{% for key in ['post_1', 'post_2', 'post_3'] %}## {{ nodes[key].title }}\n"
                "{{ nodes[key].content }}\n\n{% endfor %}"
            ),
            "depends_on": ["post_1", "post_2", "post_3"],
        },
    ],
}


def demo_workflow_ensure(*, owner: User, workspace: Workspace) -> tuple[Workflow, bool]:
    """The demo workflow in `workspace`, created if missing (or soft-deleted). Returns (workflow, created)."""
    existing = Workflow.objects.filter(workspace=workspace, slug=DEMO_SLUG, deleted_at__isnull=True).first()
    if existing is not None:
        return existing, False
    return workflow_create(actor=owner, workspace=workspace, data=DEMO_DEFINITION, note="demo"), True
