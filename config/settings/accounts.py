"""Accounts: the user model, passwords, tokens, the login lockout, multi-factor authentication,
registration, and the admin site's IP allow-list."""

import os
from datetime import timedelta

from config.settings.environment import SECRET_KEY, env_bool, env_networks

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
# DWC_LOGIN_LOCKOUT_MINUTES lock that pair out for DWC_LOGIN_LOCKOUT_MINUTES. Beat prunes the rows
# that no longer count (CELERY_BEAT_SCHEDULE, config/settings/engine.py).
DWC_LOGIN_MAX_FAILURES = int(os.environ.get("DWC_LOGIN_MAX_FAILURES", "5"))
DWC_LOGIN_LOCKOUT_MINUTES = int(os.environ.get("DWC_LOGIN_LOCKOUT_MINUTES", "15"))

# --- Multi-factor authentication (accounts.mfa) --------------------------------------------
# The name authenticator apps show next to the account.
OTP_TOTP_ISSUER = os.environ.get("DWC_MFA_ISSUER", "Document Workflow Chain")
# How long the answer to a correct password (`mfa_token`, or the login form's pending step) waits for the code.
DWC_MFA_CHALLENGE_SECONDS = int(os.environ.get("DWC_MFA_CHALLENGE_SECONDS", "300"))

ACCOUNTS_ALLOW_REGISTRATION = env_bool("ACCOUNTS_ALLOW_REGISTRATION", True)

# --- The admin site's IP allow-list (accounts.ip_allow_lists) ----------------------------------
# Every /admin/ request (the login page too) from an address outside these comma-separated addresses
# and CIDR networks is refused (403, audited as access.ip_refused); empty: from anywhere. The client
# address is the throttles' (DWC_NUM_PROXIES). An entry that is not an address or network stops the start.
DWC_ADMIN_ALLOWED_IPS = env_networks("DWC_ADMIN_ALLOWED_IPS", "")
