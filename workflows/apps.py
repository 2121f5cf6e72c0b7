from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # The API's serializers take JSON values at their type (config.strict_json), for every app.
        from config import strict_json

        strict_json.install()
