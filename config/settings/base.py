"""Settings for every mode, read from environment variables only.

The defaults run the embedded mode: an embedded PostgreSQL server with its data under var/, in-memory
broker, cache and channel layer, the Celery worker and beat inside the server process. Setting REDIS_URL
(and DATABASE_URL) switches to the distributed mode with the same code. See docs/configuration.md for every variable.

This module holds what the site is made of (apps, middleware, templates, static files) and gathers the
topic modules beside it, so that every setting is config.settings.base.X whichever module sets it.
"""

import os
import warnings

from config.settings.environment import *  # noqa: F403
from config.settings.environment import BASE_DIR, env_bool, env_list

DEBUG = env_bool("DEBUG", False)
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
# On Kubernetes a pod learns its address (the downward API: deploy/k8s): Prometheus scrapes /metrics
# there, with the pod's address as the Host.
if os.environ.get("POD_IP"):
    ALLOWED_HOSTS.append(os.environ["POD_IP"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "csp",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "django_celery_beat",
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "core",
    "accounts",
    "workflows",
    "audit",
    "notifications",
    "analytics",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.request_context.RequestContextMiddleware",
    # Before anything that answers by itself (413, redirects), so that those answers carry CORS headers.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "core.request_limits.RequestBodyLimitMiddleware",
    "core.request_limits.UnstorableTextMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.LoginSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # DWC_ADMIN_ALLOWED_IPS, and the client address workspaces' IP allow-lists are checked against.
    # Last because it is synchronous only: under ASGI a middleware that can be either takes the kind
    # of the one below it, and Django's own, on the event loop, cross to the request's thread and back
    # for each of their hooks. Below this one they stay in that thread (bench/README.md, issue 19).
    "accounts.middleware.IpAllowListMiddleware",
]

ROOT_URLCONF = "config.urls"
CSRF_FAILURE_VIEW = "core.problems.csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Without collectstatic (the embedded mode) WhiteNoise serves straight from the app folders,
# and its warning about the missing collectstatic folder is noise there.
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at: ")

# One module per topic, read after the core and in the order their first sections had when all of
# this was one module, so that of several wrong variables the same one is usually reported first. No
# topic module sets a name that another one sets: the order changes no value.
# isort: off
from config.settings.database import *  # noqa: E402, F403
from config.settings.caches import *  # noqa: E402, F403
from config.settings.engine import *  # noqa: E402, F403
from config.settings.outbound import *  # noqa: E402, F403
from config.settings.api import *  # noqa: E402, F403
from config.settings.accounts import *  # noqa: E402, F403
from config.settings.security import *  # noqa: E402, F403
from config.settings.observability import *  # noqa: E402, F403
# isort: on
