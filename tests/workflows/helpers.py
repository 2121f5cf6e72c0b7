from rest_framework.test import APIClient

from workflows.models import Workflow

BLOG_BODY = {
    "name": "AI Blog Series",
    "description": "A series of AI-related blog posts",
    "settings": {"max_nodes": 100, "timeout": 300},
}
DEMO_BODY = {
    "id": "my-workflow",
    "name": "Demo Workflow",
    "description": "A sample workflow",
    "steps": [
        {"name": "delay", "type": "delay", "config": {"duration": 2}},
        {
            "name": "notify",
            "type": "webhook",
            "config": {
                "url": "https://example.org/post",
                "method": "POST",
                "headers": {"Content-Type": "application/json"},
                "body": {"message": "Hello from workflow!"},
            },
        },
    ],
}
INTRO_NODE = {
    "title": "Introduction to AI",
    "content": "Artificial Intelligence is revolutionizing...",
    "prompt": "Write an introduction to AI",
    "priority": 2,
    "tags": ["ai", "introduction"],
}


def chain_body(*keys: str, **fields) -> dict:
    """A workflow whose nodes are text nodes chained in the order given."""
    return {
        "name": fields.pop("name", "Chain"),
        "nodes": [{"key": key, "type": "text", "content": f"{key} text"} for key in keys],
        **fields,
    }


def create(api: APIClient, body: dict) -> dict:
    answer = api.post("/api/v3/workflows", body, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def snapshot_counts() -> tuple[int, ...]:
    """Rows that a rejected request must leave untouched."""
    from workflows.models import Edge, Node, WorkflowTag, WorkflowVersion

    return tuple(model.objects.count() for model in (Workflow, Node, Edge, WorkflowVersion, WorkflowTag))


def node_keys(workflow_json: dict) -> list[str]:
    return [node["key"] for node in workflow_json["nodes"]]
