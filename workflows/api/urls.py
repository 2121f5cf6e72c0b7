from config.routers import OptionalSlashRouter
from workflows.api import views

router = OptionalSlashRouter()
router.register("workflows", views.WorkflowViewSet, basename="workflow")
router.register("nodes", views.NodeViewSet, basename="node")

urlpatterns = router.urls
