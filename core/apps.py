from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The bottom layer every app stands on: HTTP and JSON plumbing, problem responses, throttling
    and request context, and the operations endpoints. It imports no other app of the project."""

    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        # The API's serializers take JSON values at their type (core.strict_json), for every app.
        from core import strict_json

        strict_json.install()
        # Registers the dwc_ metric families at start so /metrics shows them even while zero.
        # Tracing, when the OTEL_* variables ask for it: before the first request or task.
        from config import tracing
        from core import metrics  # noqa: F401

        tracing.configure()
