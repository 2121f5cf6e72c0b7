from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import login
from core import ops
from core.problems import api_not_found
from core.routers import ApiRootView
from notifications.dashboard.unsubscribe import unsubscribe
from workflows.api.webhooks import inbound_hook

api_v3 = [
    path("", include("accounts.api.urls")),
    path("", include("analytics.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("core.api.urls")),
    path("", include("notifications.api.urls")),
    path("", include("workflows.api.urls")),
]

urlpatterns = [
    path("health", ops.health, name="health"),
    path("ready", ops.ready, name="ready"),
    path("status", ops.status, name="status"),
    path("metrics", ops.metrics, name="prometheus-django-metrics"),
    # The login forms ask users with MFA for their code (accounts.login); before the views they replace.
    path("admin/login/", login.admin_login),
    path("admin/login/code/", login.admin_login_code, name="admin-login-code"),
    path("accounts/login/", login.PasswordStepView.as_view()),
    path("accounts/login/code/", login.CodeStepView.as_view(), name="login-code"),
    path("api-auth/login/", login.PasswordStepView.as_view(template_name="rest_framework/login.html")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("dashboard/analytics/", include("analytics.dashboard.urls")),
    path("dashboard/notifications/", include("notifications.dashboard.urls")),
    path("dashboard/", include("workflows.dashboard.urls")),
    path("notifications/unsubscribe/<str:token>", unsubscribe, name="notifications-unsubscribe"),
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (/docs?script=): the CSP runs no inline script.
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    re_path(r"^api/v3/?$", ApiRootView.as_view(), name="api-root"),
    path("api/v3/", include(api_v3)),
    path("hooks/<str:token>/", inbound_hook, name="inbound-hook"),
    re_path(r"^api/", api_not_found),
]

handler500 = "core.problems.server_error"
handler400 = "core.problems.bad_request"
handler403 = "core.problems.permission_denied"
