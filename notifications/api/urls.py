from django.urls import path

from core.routers import OptionalSlashRouter
from notifications.api import preferences, views

# Channels and deliveries first: the inbox's `notifications/{id}` would otherwise be tried on them.
router = OptionalSlashRouter()
router.register("notifications/channels", views.ChannelViewSet, basename="notification-channel")
router.register("notifications/deliveries", views.DeliveryViewSet, basename="notification-delivery")
router.register("notifications", views.NotificationViewSet, basename="notification")

# Before the inbox's routes, for the same reason.
urlpatterns = [
    path("notifications/preferences", preferences.PreferenceView.as_view(), name="notification-preferences"),
    *router.urls,
]
