from django.urls import path

from accounts.api import views
from config.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("auth/api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register(r"workspaces/(?P<workspace_pk>[0-9a-f-]{36})/members", views.MembershipViewSet, basename="member")

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="auth-register"),
    path("auth/token", views.TokenObtainView.as_view(), name="auth-token"),
    path("auth/token/refresh", views.TokenRefreshThrottledView.as_view(), name="auth-token-refresh"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/me", views.MeView.as_view(), name="auth-me"),
    path("auth/password", views.PasswordChangeView.as_view(), name="auth-password"),
    *router.urls,
]
