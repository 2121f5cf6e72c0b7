"""The dashboard's Analytics pages: a workspace's figures and one workflow's. Each renders a shell;
static/dashboard/analytics.js reads the figures from the public API (analytics.api, and
workflows.api's GET analytics/workflows/{id}) with the session and redraws them as runs finish.

The workflow page does not look the workflow up: analytics know workflows by id only
(.importlinter), and the API that the page calls answers 404 for one the viewer cannot see.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts.access import Role, dashboard_workspace, ensure_role
from accounts.models import Workspace
from analytics.selectors import RANGES

DEFAULT_RANGE = "24h"
# The charts both pages draw (static/dashboard/analytics.js knows each by its id): id, heading.
CHARTS = [
    ("success-rate", "Success rate"),
    ("runs-by-status", "Runs by status"),
    ("duration", "Duration p50, p95 and p99"),
    ("queue-wait", "Queue wait p50 and p95"),
    ("cost-by-model", "Cost by model"),
    ("tokens-by-model", "Tokens in by model"),
]


def _context(request: HttpRequest, workspace: Workspace | None, **extra) -> dict:
    role = ensure_role(request.user, workspace, Role.VIEWER) if workspace else None
    chosen = request.GET.get("range")
    return {
        "workspace": workspace,
        "role": role or "",
        "ranges": list(RANGES),
        "range": chosen if chosen in RANGES else DEFAULT_RANGE,
        "charts": CHARTS,
        **extra,
    }


@login_required
@ensure_csrf_cookie
def workspace_analytics(request: HttpRequest) -> HttpResponse:
    """The chosen workspace's figures: `?workspace=`, else the personal or first workspace."""
    workspace = dashboard_workspace(request.user, request.GET.get("workspace"))
    return render(request, "dashboard/analytics.html", _context(request, workspace))


@login_required
@ensure_csrf_cookie
def workflow_analytics(request: HttpRequest, workflow_id) -> HttpResponse:
    """One workflow's figures. `?workspace=` (the workflow page's link passes it) fills the header."""
    chosen = request.GET.get("workspace")
    workspace = dashboard_workspace(request.user, chosen) if chosen else None
    context = _context(request, workspace, workflow_id=workflow_id)
    return render(request, "dashboard/analytics_workflow.html", context)
