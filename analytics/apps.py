from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Observability: Prometheus metrics, health and readiness, and (later) run analytics."""

    name = "analytics"
    verbose_name = "Analytics and operations"

    def ready(self) -> None:
        # Registers the dwc_ metric families at start so /metrics shows them even while zero.
        from analytics import metrics  # noqa: F401
