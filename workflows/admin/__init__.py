"""The operators' view of workflows, runs, credentials, documents, triggers and budgets. Forms validate
through the node registry and the graph rules; actions and versions go through the services, as API
edits do. Importing the modules registers their admins."""

from workflows.admin import (  # noqa: F401
    budgets,
    credentials,
    documents,
    engine,
    events,
    runs,
    schedules,
    webhooks,
    workflows,
)
