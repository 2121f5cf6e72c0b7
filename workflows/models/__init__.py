"""The workflows app's tables, by topic; every model is importable from here, as Django and the
migrations expect (`workflows.models.Run`)."""

from workflows.models.budgets import Budget, BudgetReservation, BudgetUsage
from workflows.models.control import EngineDrain, RunsPause
from workflows.models.credentials import Credential
from workflows.models.definitions import (
    NODE_KEY_PATTERN,
    WORKFLOW_SLUG_PATTERN,
    Edge,
    Node,
    Workflow,
    WorkflowTag,
    WorkflowVersion,
)
from workflows.models.runs import Document, Run, RunEvent, StepRun
from workflows.models.triggers import EventTrigger, Schedule, ScheduleSlot, WebhookDelivery, WebhookTrigger

__all__ = [
    "NODE_KEY_PATTERN",
    "WORKFLOW_SLUG_PATTERN",
    "Budget",
    "BudgetReservation",
    "BudgetUsage",
    "Credential",
    "Document",
    "Edge",
    "EngineDrain",
    "EventTrigger",
    "Node",
    "Run",
    "RunEvent",
    "RunsPause",
    "Schedule",
    "ScheduleSlot",
    "StepRun",
    "WebhookDelivery",
    "WebhookTrigger",
    "Workflow",
    "WorkflowTag",
    "WorkflowVersion",
]
