"""What every response and request is held to: body limits, security headers and cookies, CORS,
the content security policy; and how long the audit trail is kept."""

import os

from corsheaders.defaults import default_headers as cors_default_headers
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from csp.constants import UNSAFE_INLINE as CSP_UNSAFE_INLINE

from config.settings.environment import env_list

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

# --- Audit trail (audit app) -----------------------------------------------------------------
# Events older than this many days are purged daily (a checkpoint keeps the chain verifiable);
# 0 keeps them forever. The client address recorded trusts X-Forwarded-For as NUM_PROXIES says.
# Beat runs the purge and logs the chain's head (CELERY_BEAT_SCHEDULE, config/settings/engine.py).
AUDIT_RETENTION_DAYS = int(os.environ.get("AUDIT_RETENTION_DAYS", "365"))
