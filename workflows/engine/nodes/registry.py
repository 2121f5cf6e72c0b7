"""Node type names, as stored in `Node.type`, mapped to their classes (in the order of DESIGN §5)."""

from workflows.engine.nodes.approval import ApprovalNode
from workflows.engine.nodes.base import NodeType
from workflows.engine.nodes.condition import ConditionNode
from workflows.engine.nodes.delay import DelayNode
from workflows.engine.nodes.document import DocumentNode
from workflows.engine.nodes.email import EmailNode
from workflows.engine.nodes.http_request import HttpRequestNode
from workflows.engine.nodes.loop import LoopNode
from workflows.engine.nodes.notify import NotifyNode
from workflows.engine.nodes.subworkflow import SubworkflowNode
from workflows.engine.nodes.text import TextNode
from workflows.engine.nodes.transform import TransformNode
from workflows.engine.nodes.webhook import WebhookNode

NODE_TYPES: dict[str, type[NodeType]] = {
    "document": DocumentNode,
    "text": TextNode,
    "transform": TransformNode,
    "http_request": HttpRequestNode,
    "webhook": WebhookNode,
    "delay": DelayNode,
    "condition": ConditionNode,
    "loop": LoopNode,
    "subworkflow": SubworkflowNode,
    "approval": ApprovalNode,
    "email": EmailNode,
    "notify": NotifyNode,
}


def node_type_get(name: str) -> type[NodeType]:
    """The class of the node type called `name`; raises KeyError for an unknown name."""
    try:
        return NODE_TYPES[name]
    except KeyError:
        raise KeyError(f"Unknown node type {name!r}; expected one of {', '.join(NODE_TYPES)}.") from None
