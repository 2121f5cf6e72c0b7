from django.urls import path, re_path

from core.routers import OptionalSlashRouter
from notifications.api import preferences, push, views

# Channels, deliveries and push subscriptions first: the inbox's `notifications/{id}` would otherwise be
# tried on them.
router = OptionalSlashRouter()
router.register("notifications/channels", views.ChannelViewSet, basename="notification-channel")
router.register("notifications/deliveries", views.DeliveryViewSet, basename="notification-delivery")
router.register("notifications/rules", views.RuleViewSet, basename="notification-rule")
router.register("notifications/templates", views.TemplateViewSet, basename="notification-template")
router.register("notifications/push-subscriptions", push.PushSubscriptionViewSet, basename="push-subscription")
router.register("notifications", views.NotificationViewSet, basename="notification")

# Before the inbox's routes, for the same reason.
urlpatterns = [
    path("notifications/preferences", preferences.PreferenceView.as_view(), name="notification-preferences"),
    re_path(r"^notifications/push-key/?$", push.PushKeyView.as_view(), name="push-key"),
    *router.urls,
]
