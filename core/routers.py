from rest_framework.permissions import AllowAny
from rest_framework.routers import APIRootView, SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """Routes answer with and without a trailing slash: `/api/v3/workspaces` is the documented form."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


class ApiRootView(APIRootView):
    """The resources of the Document Workflow Chain API. Send `Authorization: Bearer <access>` (from
    `auth/token`) or `X-API-Key: <key>`; the OpenAPI schema is at `schema`, Swagger UI at `docs`."""

    # Only links, as the public OpenAPI schema already lists: every resource behind them needs a login.
    permission_classes = [AllowAny]
    # Each app has routers of its own, so the root lists them by URL name, as DefaultRouter's does.
    api_root_dict = {
        "auth/token": "auth-token",
        "auth/me": "auth-me",
        "auth/api-keys": "api-key-list",
        "workspaces": "workspace-list",
        "workflows": "workflow-list",
        "runs": "run-list",
        "documents": "document-list",
        "credentials": "credential-list",
        "schedules": "schedule-list",
        "trigger": "trigger",
        "audit/events": "audit-event-list",
        "system/worker-pings": "worker-ping-list",
        "schema": "schema",
        "docs": "docs",
    }

    def get_view_name(self) -> str:
        return "API root"


def schema_paths_without_trailing_slash(endpoints: list, **kwargs) -> list:
    """drf-spectacular hook: document `/api/v3/workspaces`, the form our clients use."""
    return [
        (path.rstrip("/") if path != "/" else path, path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
    ]
