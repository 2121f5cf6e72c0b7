"""Reading the workflow version a run pinned: its nodes, edges and settings.

Versions never change once written, so a process parses each snapshot once and keeps it.
"""

from functools import lru_cache

from workflows.graph import topological_order
from workflows.models import Run, Workflow, WorkflowVersion


@lru_cache(maxsize=512)
def version(version_id) -> WorkflowVersion:
    return WorkflowVersion.objects.get(pk=version_id)


@lru_cache(maxsize=256)
def _version_by_number(workflow_id, number: int) -> WorkflowVersion:
    return WorkflowVersion.objects.get(workflow_id=workflow_id, number=number)


def current_version(workflow: Workflow) -> WorkflowVersion:
    """The version a run of `workflow` started now pins."""
    return _version_by_number(workflow.pk, workflow.version)


def nodes_by_key(run: Run) -> dict[str, dict]:
    return {node["key"]: node for node in run.version.snapshot["nodes"]}


def node(run: Run, key: str) -> dict:
    return nodes_by_key(run)[key]


def parents(run: Run) -> dict[str, list[tuple[str, str]]]:
    """Each node's parents, as (parent key, edge label)."""
    snapshot = run.version.snapshot
    result: dict[str, list[tuple[str, str]]] = {node["key"]: [] for node in snapshot["nodes"]}
    for edge in snapshot["edges"]:
        result[edge["target"]].append((edge["source"], edge["label"]))
    return result


def descendants(run: Run, key: str) -> set[str]:
    """The keys of every node downstream of `key`."""
    children: dict[str, list[str]] = {}
    for edge in run.version.snapshot["edges"]:
        children.setdefault(edge["source"], []).append(edge["target"])
    found, stack = set(), [key]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def ancestors_in_order(run: Run, key: str) -> list[str]:
    """The keys of every node upstream of `key`, in the chain's (topological) order."""
    parent_keys = parents(run)
    found, stack = set(), [key]
    while stack:
        for parent, _label in parent_keys[stack.pop()]:
            if parent not in found:
                found.add(parent)
                stack.append(parent)
    snapshot = run.version.snapshot
    order = topological_order(
        [node["key"] for node in snapshot["nodes"]], [(edge["source"], edge["target"]) for edge in snapshot["edges"]]
    )
    return [key for key in order if key in found]


def roots(snapshot: dict) -> set[str]:
    """The keys of the nodes nothing depends on being before them."""
    targets = {edge["target"] for edge in snapshot["edges"]}
    return {node["key"] for node in snapshot["nodes"] if node["key"] not in targets}


def leaves(run: Run) -> set[str]:
    """The keys of the nodes nothing follows: the run's output is theirs."""
    sources = {edge["source"] for edge in run.version.snapshot["edges"]}
    return {node["key"] for node in run.version.snapshot["nodes"] if node["key"] not in sources}


def settings(run: Run) -> dict:
    return run.version.snapshot["settings"]
