"""What workflows send out of the server: language-model calls (and what they cost), HTTP requests,
and email."""

import json
import os

from config.settings.environment import VAR_DIR, env_bool, env_list

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

# --- Documents -------------------------------------------------------------------------------
# Tokens of earlier documents a document node sends as context by default (its `context_tokens`
# overrides it); the oldest are dropped first. Counted at about four characters per token.
DWC_CONTEXT_TOKEN_BUDGET = int(os.environ.get("DWC_CONTEXT_TOKEN_BUDGET", "16000"))
# What budgets reserve for a document node's output when it sets no `max_tokens` (the most a model
# may write is then the provider's own limit, which nothing here knows).
DWC_BUDGET_DEFAULT_MAX_TOKENS = int(os.environ.get("DWC_BUDGET_DEFAULT_MAX_TOKENS", "4096"))
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

# --- Outbound HTTP (workflows.engine.egress) ---
DWC_OUTBOUND_ALLOWLIST = env_list("DWC_OUTBOUND_ALLOWLIST", "")
DWC_OUTBOUND_MAX_RESPONSE_BYTES = int(os.environ.get("DWC_OUTBOUND_MAX_RESPONSE_BYTES", str(10 * 1024 * 1024)))

# --- Email ---------------------------------------------------------------------------------
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

# --- Notifications (notifications app) -------------------------------------------------------
# A delivery that failed transiently is tried again, up to DWC_NOTIFICATIONS_MAX_ATTEMPTS attempts in
# all, after a jittered backoff doubling from DWC_NOTIFICATIONS_BACKOFF_SECONDS (at most
# DWC_NOTIFICATIONS_MAX_BACKOFF_SECONDS), or after the receiver's Retry-After when that is longer (also
# capped). One still `sending` DWC_NOTIFICATIONS_LEASE_SECONDS after its attempt began lost its worker.
DWC_NOTIFICATIONS_MAX_ATTEMPTS = int(os.environ.get("DWC_NOTIFICATIONS_MAX_ATTEMPTS", "6"))
DWC_NOTIFICATIONS_BACKOFF_SECONDS = float(os.environ.get("DWC_NOTIFICATIONS_BACKOFF_SECONDS", "10"))
DWC_NOTIFICATIONS_MAX_BACKOFF_SECONDS = float(os.environ.get("DWC_NOTIFICATIONS_MAX_BACKOFF_SECONDS", "3600"))
DWC_NOTIFICATIONS_TIMEOUT_SECONDS = float(os.environ.get("DWC_NOTIFICATIONS_TIMEOUT_SECONDS", "10"))
DWC_NOTIFICATIONS_LEASE_SECONDS = float(os.environ.get("DWC_NOTIFICATIONS_LEASE_SECONDS", "120"))
# Deliveries made together (a rule's fan-out) are sent in batches of this many, one message each.
DWC_NOTIFICATIONS_SEND_BATCH = int(os.environ.get("DWC_NOTIFICATIONS_SEND_BATCH", "50"))
# Credentials with an `expires_at` raise `credential.expiring` this many days before (and once past).
DWC_CREDENTIAL_EXPIRY_WARNING_DAYS = float(os.environ.get("DWC_CREDENTIAL_EXPIRY_WARNING_DAYS", "7"))
# The address people reach this site at, for links in messages that leave it (an email's one-click
# unsubscribe). The default is where `make run` serves; set it to the public https URL in production.
_HOST = os.environ.get("HOST", "127.0.0.1")
DWC_PUBLIC_URL = os.environ.get(
    "DWC_PUBLIC_URL", f"http://{'localhost' if _HOST in ('0.0.0.0', '::') else _HOST}:{os.environ.get('PORT', '8000')}"
).rstrip("/")
# Where an email's List-Unsubscribe header points for addresses that are not users (config.to): a
# mailbox someone reads. A user's own email carries their signed one-click link instead.
DWC_NOTIFICATIONS_UNSUBSCRIBE_MAILTO = os.environ.get(
    "DWC_NOTIFICATIONS_UNSUBSCRIBE_MAILTO", os.environ.get("DEFAULT_FROM_EMAIL", "dwc@localhost")
)
# Web Push (notifications.channels.web_push): the server's VAPID key pair (RFC 8292), both base64url as
# `manage.py webpush_keys` prints them (the public key may be left out: it is derived from the private
# one), and the contact the push services are given (a mailto: or https: URL). Without a private key
# the web_push kind refuses to send and GET notifications/push-key answers `configured: false`.
DWC_WEBPUSH_VAPID_PRIVATE_KEY = os.environ.get("DWC_WEBPUSH_VAPID_PRIVATE_KEY", "")
DWC_WEBPUSH_VAPID_PUBLIC_KEY = os.environ.get("DWC_WEBPUSH_VAPID_PUBLIC_KEY", "")
DWC_WEBPUSH_SUBJECT = os.environ.get(
    "DWC_WEBPUSH_SUBJECT", "mailto:" + os.environ.get("DEFAULT_FROM_EMAIL", "dwc@localhost")
)
