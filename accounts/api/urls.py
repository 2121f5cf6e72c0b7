from django.urls import path

from accounts.api import mfa, views
from core.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("auth/api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("auth/sessions", views.LoginSessionViewSet, basename="login-session")
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register(r"workspaces/(?P<workspace_pk>[0-9a-f-]{36})/members", views.MembershipViewSet, basename="member")

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="auth-register"),
    path("auth/token", views.TokenObtainView.as_view(), name="auth-token"),
    path("auth/token/refresh", views.TokenRefreshThrottledView.as_view(), name="auth-token-refresh"),
    path("auth/token/mfa", mfa.TokenMfaView.as_view(), name="auth-token-mfa"),
    path("auth/mfa", mfa.MfaView.as_view(), name="auth-mfa"),
    path("auth/mfa/totp", mfa.TotpEnrolmentView.as_view(), name="auth-mfa-totp"),
    path("auth/mfa/totp/confirm", mfa.TotpConfirmView.as_view(), name="auth-mfa-totp-confirm"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/me", views.MeView.as_view(), name="auth-me"),
    path("auth/password", views.PasswordChangeView.as_view(), name="auth-password"),
    *router.urls,
]
