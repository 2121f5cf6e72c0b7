from audit.api import views
from core.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("audit/events", views.AuditEventViewSet, basename="audit-event")

urlpatterns = router.urls
