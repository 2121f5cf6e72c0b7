"""What every settings module shares: the project's paths and version, the parsers of environment
variables, the secrets, and the mode (REDIS_URL).

The topic modules import from here, never from base.py: base.py imports them all.
"""

import ipaddress
import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

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
# Earlier SECRET_KEYs (comma-separated), still accepted for what they signed (sessions, password reset
# and unsubscribe links) while rotating: Django signs with SECRET_KEY alone (docs/operations.md).
SECRET_KEY_FALLBACKS = [key.strip() for key in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if key.strip()]
CREDENTIALS_KEY = persistent_secret("CREDENTIALS_KEY", lambda: Fernet.generate_key().decode())
try:  # a bad key would otherwise surface only when the first credential is encrypted
    for _key in CREDENTIALS_KEY.split(","):
        Fernet(_key.strip())
except ValueError as _error:
    raise ImproperlyConfigured(
        "CREDENTIALS_KEY must be one or more comma-separated Fernet keys (the first encrypts, all decrypt); "
        'make one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
    ) from _error

REDIS_URL = os.environ.get("REDIS_URL", "")
# The embedded mode is "no Redis": everything that would cross processes stays in this one.
DWC_MODE = "distributed" if REDIS_URL else "embedded"
