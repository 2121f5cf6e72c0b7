from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """Routes answer with and without a trailing slash: `/api/v3/workspaces` is the documented form."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


def schema_paths_without_trailing_slash(endpoints: list, **kwargs) -> list:
    """drf-spectacular hook: document `/api/v3/workspaces`, the form our clients use."""
    return [
        (path.rstrip("/") if path != "/" else path, path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
    ]
