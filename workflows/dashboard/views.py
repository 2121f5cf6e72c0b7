"""The live dashboard's pages. Each renders a shell with ids in data attributes; the page's module in
static/dashboard/ loads the rest from the REST API and follows the websocket (DESIGN §9).

A page decides only which write controls to draw, from the viewer's role; the API decides what is allowed.
"""

from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from accounts.access import Role, dashboard_workspace, ensure_role
from accounts.mfa import recovery_codes_left
from accounts.models import ROLE_RANK, Workspace
from accounts.selectors import mfa_enabled
from workflows import selectors
from workflows.services.budgets import budgets_spending


def _context(request: HttpRequest, workspace: Workspace | None, **extra) -> dict:
    role = ensure_role(request.user, workspace, Role.VIEWER) if workspace else None
    can_write = role is not None and ROLE_RANK[role] >= ROLE_RANK[Role.EDITOR]
    return {"workspace": workspace, "role": role or "", "can_write": can_write, **extra}


def _chosen_workspace(request: HttpRequest) -> Workspace | None:
    return dashboard_workspace(request.user, request.GET.get("workspace"))


@login_required
@ensure_csrf_cookie
def workflow_list(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/workflows.html", _context(request, _chosen_workspace(request)))


@login_required
@ensure_csrf_cookie
def run_list(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/runs.html", _context(request, _chosen_workspace(request)))


@login_required
@ensure_csrf_cookie
def workflow_detail(request: HttpRequest, workflow_id) -> HttpResponse:
    workflow = selectors.workflow_get(request.user, workflow_id)
    context = _context(
        request,
        workflow.workspace,
        workflow=workflow,
        budgets=budgets_spending(workspace=workflow.workspace, workflow=workflow),
    )
    return render(request, "dashboard/workflow.html", context)


@login_required
@ensure_csrf_cookie
def workflow_edit(request: HttpRequest, workflow_id) -> HttpResponse:
    """The visual builder (docs/builder.md): read-only for viewers; it reads and saves through the API."""
    workflow = selectors.workflow_get(request.user, workflow_id)
    context = _context(request, workflow.workspace, workflow=workflow)
    return render(request, "dashboard/builder.html", context)


@login_required
@ensure_csrf_cookie
def workflow_new(request: HttpRequest) -> HttpResponse:
    """The builder's first step: a name; the page creates the workflow through the API, then opens it."""
    return render(request, "dashboard/builder.html", _context(request, _chosen_workspace(request), workflow=None))


@login_required
@ensure_csrf_cookie
def budget_list(request: HttpRequest) -> HttpResponse:
    """The workspace's budgets against what their current periods spent. Rendered on the server: the
    figures are read once, and the page needs no script of its own."""
    workspace = _chosen_workspace(request)
    context = _context(request, workspace)
    context["budgets"] = budgets_spending(workspace=workspace) if workspace else []
    return render(request, "dashboard/budgets.html", context)


@login_required
@ensure_csrf_cookie
def run_detail(request: HttpRequest, run_id) -> HttpResponse:
    run = selectors.run_get(request.user, run_id)
    return render(request, "dashboard/run.html", _context(request, run.workspace, run=run))


@login_required
@ensure_csrf_cookie
def document_diff(request: HttpRequest, document_id) -> HttpResponse:
    """Two versions of a node's document side by side. `against` goes to the API as given; without
    it, the page compares with the version before (docs/generation.md, Document diff)."""
    document = selectors.document_get(request.user, document_id)
    against = request.GET.get("against")
    if against is None:
        before = selectors.document_version_before(document)
        against = str(before.pk) if before else "previous"  # none: the API says there is nothing before
    context = _context(request, document.workspace, document=document, against=against)
    return render(request, "dashboard/document_diff.html", context)


@login_required
@ensure_csrf_cookie
def account(request: HttpRequest) -> HttpResponse:
    """The signed-in person's own security: MFA and login sessions. The page changes them through the
    API's auth/mfa… and auth/sessions…; it renders the MFA state it starts from."""
    user = request.user
    context = _context(request, None, mfa_enabled=mfa_enabled(user), recovery_codes_left=recovery_codes_left(user))
    return render(request, "dashboard/account.html", context)


@require_safe
@cache_control(no_cache=True)
def notifications_worker(request: HttpRequest) -> HttpResponse:
    """The Web Push service worker (static/dashboard/notifications-sw.js), served from /dashboard/ because
    a worker's scope is at most its script's folder. Public: a logged-out browser keeps its worker."""
    script = Path(finders.find("dashboard/notifications-sw.js")).read_bytes()
    response = HttpResponse(script, content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/dashboard/"
    return response
