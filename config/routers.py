from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """Routes answer with and without a trailing slash: `/api/v3/workspaces` is the documented form."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
