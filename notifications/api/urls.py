from core.routers import OptionalSlashRouter
from notifications.api import views

# Channels and deliveries first: the inbox's `notifications/{id}` would otherwise be tried on them.
router = OptionalSlashRouter()
router.register("notifications/channels", views.ChannelViewSet, basename="notification-channel")
router.register("notifications/deliveries", views.DeliveryViewSet, basename="notification-delivery")
router.register("notifications/rules", views.RuleViewSet, basename="notification-rule")
router.register("notifications/templates", views.TemplateViewSet, basename="notification-template")
router.register("notifications", views.NotificationViewSet, basename="notification")

urlpatterns = router.urls
