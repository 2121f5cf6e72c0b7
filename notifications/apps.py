from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Analytics may not import notifications: they announce new insights by a signal instead.
        from analytics.signals import insight_opened
        from notifications.services.insights import insights_opened_submit

        insight_opened.connect(insights_opened_submit, dispatch_uid="notifications.insight_opened")
