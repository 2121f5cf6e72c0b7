"""Settings for every mode, read from environment variables only.

The defaults run the embedded mode: an embedded PostgreSQL server with its data under var/, in-memory
broker, cache and channel layer, the Celery worker and beat inside the server process. Setting REDIS_URL
(and DATABASE_URL) switches to the distributed mode with the same code. See docs/configuration.md for every variable.
"""

import ipaddress
import json
import os
import re
import secrets
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from corsheaders.defaults import default_headers as cors_default_headers
from cryptography.fernet import Fernet
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from csp.constants import UNSAFE_INLINE as CSP_UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from config.embedded_db import database_settings as embedded_database_settings

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("DWC_VAR_DIR", BASE_DIR / "var"))
VERSION = "0.1.0"


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate ("10/min"); refused at start rather than failing every request later."""
    value = os.environ.get(name, default).strip()
    if not re.fullmatch(r"[0-9]+/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name} must look like 10/min, 1000/hour or 5/s, not {value!r}")
    return value


def env_networks(name: str, default: str) -> list[str]:
    """Comma-separated addresses or CIDR networks ("10.0.0.0/8,::1"); refused at start if one is not."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an IP address or network; write them comma-separated, "
                "such as 203.0.113.7,10.0.0.0/8,2001:db8::/32"
            ) from error
    return networks


def persistent_secret(name: str, make) -> str:
    """The env var's value, or one generated once and kept in var/ so restarts keep sessions.

    Only the embedded mode relies on this; production settings insist on the env var.
    """
    if os.environ.get(name):
        return os.environ[name]
    path = VAR_DIR / name.lower()
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


SECRET_KEY = persistent_secret("SECRET_KEY", lambda: secrets.token_urlsafe(50))
CREDENTIALS_KEY = persistent_secret("CREDENTIALS_KEY", lambda: Fernet.generate_key().decode())
try:  # a bad key would otherwise surface only when the first credential is encrypted
    for _key in CREDENTIALS_KEY.split(","):
        Fernet(_key.strip())
except ValueError as _error:
    raise ImproperlyConfigured(
        "CREDENTIALS_KEY must be one or more comma-separated Fernet keys (the first encrypts, all decrypt); "
        'make one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    ) from _error
DEBUG = env_bool("DEBUG", False)
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

REDIS_URL = os.environ.get("REDIS_URL", "")
# The embedded mode is "no Redis": everything that would cross processes stays in this one.
DWC_MODE = "distributed" if REDIS_URL else "embedded"

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
    # DWC_ADMIN_ALLOWED_IPS, and the client address workspaces' IP allow-lists are checked against.
    "accounts.middleware.IpAllowListMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
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

# One database engine everywhere: PostgreSQL. DATABASE_URL names a server of your own; without it
# the embedded server of var/ is used (config/embedded_db), started by the first process that connects.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
DWC_DATABASE_SERVER = "external" if DATABASE_URL else "embedded"
_database_lifetime = {
    "CONN_MAX_AGE": int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    "CONN_HEALTH_CHECKS": True,
}
if DATABASE_URL:
    if not DATABASE_URL.startswith(("postgres://", "postgresql://", "pgsql://")):
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a PostgreSQL URL (postgres://...), not {DATABASE_URL.split(':')[0]}:"
        )
    DATABASES = {"default": {**dj_database_url.parse(DATABASE_URL), **_database_lifetime}}
else:
    DATABASES = {"default": {**embedded_database_settings(VAR_DIR), **_database_lifetime}}
if os.environ.get("DATABASE_PREPARED_STATEMENTS", "on") != "off":
    # Parameters bound by the server, and a statement run 5 times on a connection kept prepared
    # there: the engine's hot statements skip parsing and planning, which halved PostgreSQL's CPU
    # per step (bench/engine_overhead.py). "off" for a pooler that cannot keep prepared statements
    # (PgBouncer before 1.21 in transaction mode).
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
# config.asgi gives an ASGI server's process a pool of PostgreSQL connections (see there).
DWC_ASGI_DATABASE_POOL = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
# The model backend plus the login lockout (accounts.lockout), for the token endpoint and every login form.
AUTHENTICATION_BACKENDS = ["accounts.backends.LockoutModelBackend"]
# Django's login view (/accounts/login/, the default LOGIN_URL) lands on the dashboard, not /accounts/profile/.
LOGIN_REDIRECT_URL = "dashboard:workflows"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

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

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "dwc",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    # Throttle counts (core.throttling) in the same Redis, which must not evict them: run it with
    # maxmemory-policy noeviction (its default) or without maxmemory. /ready reports one that evicts.
    # Login lockouts are in the database, in every mode.
    CACHES["throttles"] = CACHES["default"]
    # The pub/sub layer: one Redis connection per process whatever the number of clients, and a
    # group message is one PUBLISH (the default layer, measured at 100 clients in one daphne,
    # failed with "Too many connections"). Run events are fire-and-forget here: RunEvent is the
    # record, and clients resume from it.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "dwc-asgi"},
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        # Apart from the default cache, which drops entries to make room: a store that never drops a
        # live count (its memory bound is in core/throttle_cache.py).
        "throttles": {
            "BACKEND": "core.throttle_cache.ThrottleMemoryCache",
            "LOCATION": "throttles",
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        },
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://localhost/")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = (
    # The in-memory transport polls; a short interval keeps the embedded mode snappy.
    {"polling_interval": 0.05} if CELERY_BROKER_URL.startswith("memory") else {}
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection around every task unless this is set, so
# each engine step paid a new PostgreSQL connection. Workers close stale or broken connections
# the way Django does between requests instead (config/celery.py), honouring CONN_MAX_AGE.
CELERY_DB_REUSE_MAX = 1_000_000
# Control work (advancing runs, cheap steps, wake-ups, time-outs, recovery, schedules) travels on
# `engine`. Steps that wait on the outside world travel on queues of their own: `calls` (HTTP
# requests, webhooks), `generation` (language models), `notifications` (email, chat). Workers that
# consume only `engine` then start the next step within moments of a call ending, however many slow
# calls are under way (docs/operations.md: `make engine-worker` beside `make worker`).
DWC_CONTROL_QUEUE = "engine"
DWC_STEP_QUEUES = ("calls", "generation", "notifications")
CELERY_TASK_DEFAULT_QUEUE = DWC_CONTROL_QUEUE
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in (DWC_CONTROL_QUEUE, *DWC_STEP_QUEUES)]
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# django-celery-beat's, riding out a database outage (config/beat.py).
CELERY_BEAT_SCHEDULER = "config.beat:ResilientDatabaseScheduler"
# The engine's clock (workflows.engine.liveness, .recovery): a running step touches its heartbeat every
# DWC_HEARTBEAT_SECONDS; one silent for DWC_STEP_LEASE_SECONDS lost its worker; a queued step or a
# pending run untouched for DWC_LOST_MESSAGE_SECONDS lost its message. The recovery task that acts
# on them runs every DWC_RECOVER_EVERY_SECONDS.
DWC_HEARTBEAT_SECONDS = float(os.environ.get("DWC_HEARTBEAT_SECONDS", "5"))
DWC_STEP_LEASE_SECONDS = float(os.environ.get("DWC_STEP_LEASE_SECONDS", "30"))
DWC_LOST_MESSAGE_SECONDS = float(os.environ.get("DWC_LOST_MESSAGE_SECONDS", "30"))
DWC_RECOVER_EVERY_SECONDS = float(os.environ.get("DWC_RECOVER_EVERY_SECONDS", "15"))
# A step safe to run again is re-queued after its worker is lost, whatever its retry policy, up to
# this many times: a step that keeps killing its worker (a poison step) then fails.
DWC_STEP_CRASH_LIMIT = int(os.environ.get("DWC_STEP_CRASH_LIMIT", "3"))
# A worker that loses the database while recording a step's result keeps its lease and tries again
# for this long before giving the step up to recovery (the call is not made again meanwhile).
DWC_RECORD_RETRY_SECONDS = float(os.environ.get("DWC_RECORD_RETRY_SECONDS", "120"))
CELERY_BEAT_SCHEDULE = {
    "recover-runs": {
        "task": "workflows.tasks.recover_runs",
        "schedule": DWC_RECOVER_EVERY_SECONDS,
        "options": {"queue": "engine", "expires": DWC_RECOVER_EVERY_SECONDS},
    },
    # Signed inbound webhook deliveries are remembered while they could be replayed (minutes).
    "webhook-deliveries-prune": {
        "task": "workflows.tasks.webhook_deliveries_prune",
        "schedule": 60 * 60,
        "options": {"queue": "engine", "expires": 30 * 60},
    },
}
DWC_EMBEDDED_WORKER_CONCURRENCY = int(os.environ.get("DWC_EMBEDDED_WORKER_CONCURRENCY", "4"))

# --- Language-model providers (workflows.engine.providers) ---------------------------------
# A call may take DWC_PROVIDER_TIMEOUT_SECONDS. A call that failed transiently is tried again up to
# DWC_PROVIDER_MAX_RETRIES times, after a jittered backoff doubling from DWC_PROVIDER_BACKOFF_SECONDS,
# or after the server's Retry-After if that is at most DWC_PROVIDER_MAX_RETRY_AFTER_SECONDS (a longer
# wait is left to the step's own retry). DWC_PROVIDER_BREAKER_FAILURES failed attempts in a row at one
# provider and base URL stop calls there for DWC_PROVIDER_BREAKER_SECONDS (shared through the cache).
DWC_PROVIDER_TIMEOUT_SECONDS = float(os.environ.get("DWC_PROVIDER_TIMEOUT_SECONDS", "120"))
DWC_PROVIDER_MAX_RETRIES = int(os.environ.get("DWC_PROVIDER_MAX_RETRIES", "3"))
DWC_PROVIDER_BACKOFF_SECONDS = float(os.environ.get("DWC_PROVIDER_BACKOFF_SECONDS", "1"))
DWC_PROVIDER_MAX_RETRY_AFTER_SECONDS = float(os.environ.get("DWC_PROVIDER_MAX_RETRY_AFTER_SECONDS", "60"))
DWC_PROVIDER_BREAKER_FAILURES = int(os.environ.get("DWC_PROVIDER_BREAKER_FAILURES", "5"))
DWC_PROVIDER_BREAKER_SECONDS = float(os.environ.get("DWC_PROVIDER_BREAKER_SECONDS", "60"))
# How long a cached generation (document nodes with `cache` on) is reused.
DWC_GENERATION_CACHE_SECONDS = int(os.environ.get("DWC_GENERATION_CACHE_SECONDS", "86400"))
# The Messages API requires max_tokens; this is what it gets when the node sets none.
DWC_ANTHROPIC_MAX_TOKENS = int(os.environ.get("DWC_ANTHROPIC_MAX_TOKENS", "4096"))

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.JWTAuthentication",
        "accounts.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.api.permissions.ApiKeyScopePermission",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # DRF's parser, bounded in depth and refusing text PostgreSQL cannot store (400 instead of 500).
    "DEFAULT_PARSER_CLASSES": ["core.json_input.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    # Counted in the cache (Redis in the distributed mode, so every process shares the counts). The
    # login, registration and refresh views add the per-address "auth" throttle of their own.
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.throttling.UserOrKeyRateThrottle",
        "workflows.api.throttling.WorkflowTriggerThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "auth": env_rate("DWC_THROTTLE_AUTH", "60/min"),
        "user": env_rate("DWC_THROTTLE_USER", "1000/hour"),
        "session": env_rate("DWC_THROTTLE_SESSION", "10000/hour"),
        "trigger": env_rate("DWC_THROTTLE_TRIGGER", "60/min"),
    },
    # How many proxies in front of us append to X-Forwarded-For: the client address that throttles
    # and the login lockout count by is the one the outermost of them saw. 0 = REMOTE_ADDR, the
    # default in every mode: set it only where clients cannot reach the server but through them,
    # or each request could choose its own address (deploy check dwc.W001 explains).
    "NUM_PROXIES": int(os.environ.get("DWC_NUM_PROXIES", "0")),
    "DEFAULT_SCHEMA_CLASS": "core.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.problems.problem_exception_handler",
    "DATETIME_FORMAT": "iso-8601",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=int(os.environ.get("JWT_ACCESS_MINUTES", "15"))),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=int(os.environ.get("JWT_REFRESH_DAYS", "7"))),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    # A key of their own lets tokens be invalidated (rotated) without logging out every session
    # and breaking every signed value that SECRET_KEY protects.
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY") or SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# --- Login lockout (accounts.lockout) -------------------------------------------------------
# DWC_LOGIN_MAX_FAILURES failed logins for one account from one address within
# DWC_LOGIN_LOCKOUT_MINUTES lock that pair out for DWC_LOGIN_LOCKOUT_MINUTES.
DWC_LOGIN_MAX_FAILURES = int(os.environ.get("DWC_LOGIN_MAX_FAILURES", "5"))
DWC_LOGIN_LOCKOUT_MINUTES = int(os.environ.get("DWC_LOGIN_LOCKOUT_MINUTES", "15"))
# Their rows (and the sessions logout revoked, accounts.tokens) are deleted once they no longer count.
CELERY_BEAT_SCHEDULE["lockouts-prune"] = {
    "task": "accounts.tasks.lockouts_prune",
    "schedule": 60 * 60,
    "options": {"queue": "engine", "expires": 30 * 60},
}
CELERY_BEAT_SCHEDULE["login-sessions-prune"] = {
    "task": "accounts.tasks.login_sessions_prune",
    "schedule": 60 * 60,
    "options": {"queue": "engine", "expires": 30 * 60},
}

# --- Multi-factor authentication (accounts.mfa) --------------------------------------------
# The name authenticator apps show next to the account.
OTP_TOTP_ISSUER = os.environ.get("DWC_MFA_ISSUER", "Document Workflow Chain")
# How long the answer to a correct password (`mfa_token`, or the login form's pending step) waits for the code.
DWC_MFA_CHALLENGE_SECONDS = int(os.environ.get("DWC_MFA_CHALLENGE_SECONDS", "300"))

# --- Request limits, headers, CORS, CSP -----------------------------------------------------
# Bodies over this many bytes are refused with 413 before anything reads them (core.request_limits);
# inbound webhooks keep their own DWC_WEBHOOK_MAX_BODY_BYTES.
DWC_MAX_REQUEST_BYTES = int(os.environ.get("DWC_MAX_REQUEST_BYTES", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = DWC_MAX_REQUEST_BYTES
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Browsers on other origins may call the API only from these origins (none by default). Tokens and
# API keys travel in headers, so no credentials (cookies) are allowed cross-origin.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", "")
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = (*cors_default_headers, "x-api-key", "idempotency-key", "x-request-id", "last-event-id")
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-ID"]
# Every page (admin, /docs, the dashboard) loads its scripts from our own static files: no inline
# script runs. Inline styles are allowed: the admin, the browsable API and Swagger UI set some, and
# a style cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF],
        "style-src": [CSP_SELF, CSP_UNSAFE_INLINE],
        "img-src": [CSP_SELF, "data:"],
        "font-src": [CSP_SELF, "data:"],
        "connect-src": [CSP_SELF],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_SELF],
        "form-action": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
    }
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Document Workflow Chain API",
    "DESCRIPTION": "Define workflows of document and automation nodes, run them and watch them.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # JSON Schema 2020-12, which can say what request text may hold (core.openapi).
    "OAS_VERSION": "3.1.0",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["core.routers.schema_paths_without_trailing_slash"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.problems.schema_with_problem_responses",
        "core.openapi.schema_for_storable_input",
        "core.openapi.schema_with_links",
    ],
    "ENUM_NAME_OVERRIDES": {
        "WorkflowStatusEnum": "workflows.models.Workflow.Status",
        "RunStatusEnum": "workflows.models.Run.Status",
        "StepRunStatusEnum": "workflows.models.StepRun.Status",
        "LoginSessionKindEnum": "accounts.models.LoginSession.Kind",
        "CredentialKindEnum": "workflows.models.Credential.Kind",
    },
}

ACCOUNTS_ALLOW_REGISTRATION = env_bool("ACCOUNTS_ALLOW_REGISTRATION", True)

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "dwc@localhost")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))  # for the filebased backend
# For django.core.mail.backends.smtp.EmailBackend. The timeout bounds every connect, read and write,
# so a mail server that stops answering fails an email step (retried as transient) instead of
# holding its worker.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "30"))
# Whom email nodes may write to (workflows.engine.nodes.email): the members of the node's workspace,
# the domains listed here (for every workspace; * for any), and those an operator allows a workspace
# in the admin. Empty by default: with open registration, anyone could otherwise mail anyone through
# this server's mail account.
DWC_EMAIL_ALLOWED_DOMAINS = [domain.lower() for domain in env_list("DWC_EMAIL_ALLOWED_DOMAINS", "")]

# --- Outbound HTTP (workflows.engine.egress) ---
DWC_OUTBOUND_ALLOWLIST = env_list("DWC_OUTBOUND_ALLOWLIST", "")
DWC_OUTBOUND_MAX_RESPONSE_BYTES = int(os.environ.get("DWC_OUTBOUND_MAX_RESPONSE_BYTES", str(10 * 1024 * 1024)))

# --- Metrics (/metrics, core.ops) -----------------------------------------------------
# Served to a request with `Authorization: Bearer <DWC_METRICS_TOKEN>` (if set), or from an address
# in DWC_METRICS_ALLOWED_IPS (default: this machine only), the client address as the throttles see it.
DWC_METRICS_TOKEN = os.environ.get("DWC_METRICS_TOKEN", "")
DWC_METRICS_ALLOWED_IPS = env_networks("DWC_METRICS_ALLOWED_IPS", "127.0.0.0/8,::1")

# --- The admin site's IP allow-list (accounts.ip_allow_lists) ----------------------------------
# Every /admin/ request (the login page too) from an address outside these comma-separated addresses
# and CIDR networks is refused (403, audited as access.ip_refused); empty: from anywhere. The client
# address is the throttles' (DWC_NUM_PROXIES). An entry that is not an address or network stops the start.
DWC_ADMIN_ALLOWED_IPS = env_networks("DWC_ADMIN_ALLOWED_IPS", "")

# --- Logging: one JSON object per line on stdout ------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "core.request_context.RequestContextFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log replaces these; they would print the same request twice.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        # It logs every outbound request's URL (path and query may carry secrets) at INFO.
        "httpx2": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# --- Triggers ------------------------------------------------------------------------------
# A chain of event-triggered runs deeper than this is not started (A → B → A loops).
DWC_EVENT_TRIGGER_MAX_DEPTH = int(os.environ.get("DWC_EVENT_TRIGGER_MAX_DEPTH", "10"))
# Inbound webhooks: largest body accepted, and requests per token per minute.
DWC_WEBHOOK_MAX_BODY_BYTES = int(os.environ.get("DWC_WEBHOOK_MAX_BODY_BYTES", str(1024 * 1024)))
DWC_WEBHOOK_RATE_PER_MINUTE = int(os.environ.get("DWC_WEBHOOK_RATE_PER_MINUTE", "600"))
# Schedules: at most this many runs for missed slots (catchup: all) or one backfill.
DWC_SCHEDULE_MAX_CATCHUP = int(os.environ.get("DWC_SCHEDULE_MAX_CATCHUP", "100"))

# --- Documents -------------------------------------------------------------------------------
# Tokens of earlier documents a document node sends as context by default (its `context_tokens`
# overrides it); the oldest are dropped first. Counted at about four characters per token.
DWC_CONTEXT_TOKEN_BUDGET = int(os.environ.get("DWC_CONTEXT_TOKEN_BUDGET", "16000"))
# US dollars per million tokens, per provider and model (a model also matches the longest entry its
# name starts with). DWC_MODEL_PRICES (JSON of the same shape) adds to or overrides these entries.
DWC_MODEL_PRICES = {
    "openai": {
        "gpt-4o": {"input": 2.5, "output": 10},
        "gpt-4o-mini": {"input": 0.15, "output": 0.6},
        "gpt-4.1": {"input": 2, "output": 8},
        "gpt-4.1-mini": {"input": 0.4, "output": 1.6},
        "gpt-4.1-nano": {"input": 0.1, "output": 0.4},
    },
    "anthropic": {
        "claude-opus-4": {"input": 15, "output": 75},
        "claude-sonnet-4": {"input": 3, "output": 15},
        "claude-haiku-4": {"input": 1, "output": 5},
        "claude-3-5-haiku": {"input": 0.8, "output": 4},
    },
}
for _provider, _models in json.loads(os.environ.get("DWC_MODEL_PRICES", "{}")).items():
    DWC_MODEL_PRICES.setdefault(_provider, {}).update(_models)

# --- Audit trail (audit app) -----------------------------------------------------------------
# Events older than this many days are purged daily (a checkpoint keeps the chain verifiable);
# 0 keeps them forever. The client address recorded trusts X-Forwarded-For as NUM_PROXIES says.
AUDIT_RETENTION_DAYS = int(os.environ.get("AUDIT_RETENTION_DAYS", "365"))
CELERY_BEAT_SCHEDULE["audit-purge"] = {
    "task": "audit.tasks.audit_purge_expired",
    "schedule": 24 * 60 * 60,
    "options": {"queue": "engine", "expires": 60 * 60},
}
# The chain's head, logged hourly: kept outside the database, it shows a rewrite of the whole trail.
CELERY_BEAT_SCHEDULE["audit-anchor"] = {
    "task": "audit.tasks.audit_log_anchor",
    "schedule": 60 * 60,
    "options": {"queue": "engine", "expires": 30 * 60},
}
