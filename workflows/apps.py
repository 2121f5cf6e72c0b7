from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        from core import ops
        from workflows.services.run_control import engine_status_public

        # /status tells operators (and their deploy scripts) whether the engine drains.
        ops.STATUS_SECTIONS["engine"] = engine_status_public
