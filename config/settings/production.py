"""Production: the distributed mode behind a TLS-terminating proxy.

Refuses to start without the secrets, instead of generating throwaway ones. `manage.py check --deploy`
passes with these settings (tests/test_security.py runs it), and accounts.checks adds our own checks.
"""

import os

from django.core.exceptions import ImproperlyConfigured

for _required in ("SECRET_KEY", "CREDENTIALS_KEY"):
    if not os.environ.get(_required):
        raise ImproperlyConfigured(f"{_required} must be set in production.")

from config.settings.base import *  # noqa: E402,F403
from config.settings.base import env_bool  # noqa: E402

DEBUG = False
WHITENOISE_USE_FINDERS = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# REST_FRAMEWORK["NUM_PROXIES"] stays base's DWC_NUM_PROXIES, 0 unless set: trusting X-Forwarded-For
# is for the operator to turn on (deploy/ and docker-compose.yml set 1 for their nginx). Trusted by
# default, a server reached without its proxy let every request pick its own address, so throttles
# and the login lockout never added up. The deploy check dwc.W001 says when 0 looks wrong.

# SECURE_COOKIES=false is for plain-HTTP setups (the local compose file): no secure cookies, and
# no redirect to an https:// that is not there either.
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SESSION_COOKIE_SECURE)
# Probes and scrapers call these over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^status$", r"^metrics$"]
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # Preloading puts the domain into browsers' built-in HTTPS-only lists, which is hard to undo: the
    # operator opts in with SECURE_HSTS_PRELOAD=true rather than Django nagging until they do.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
