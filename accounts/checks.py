"""Deploy checks (`manage.py check --deploy`) for what must never ship turned off.

Errors: the API open to anonymous callers, no throttling, unbounded lists, refresh tokens that stay
valid after use, long-lived access tokens, or websockets accepted from any origin. Warnings, for
settings that depend on how the server is reached: client addresses behind a proxy, /metrics.
"""

import ipaddress
from datetime import timedelta

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.settings import api_settings
from rest_framework_simplejwt import settings as simplejwt_settings

MAX_ACCESS_TOKEN_LIFETIME = timedelta(minutes=15)


@register(Tags.security, deploy=True)
def check_api_permissions(app_configs=None, **kwargs) -> list[Error]:
    classes = [cls for cls in api_settings.DEFAULT_PERMISSION_CLASSES if isinstance(cls, type)]
    open_to_all = any(issubclass(cls, AllowAny) for cls in classes)
    if open_to_all or not any(issubclass(cls, (IsAuthenticated, IsAdminUser)) for cls in classes):
        return [
            Error(
                "REST_FRAMEWORK['DEFAULT_PERMISSION_CLASSES'] lets anonymous callers in.",
                hint="Keep rest_framework.permissions.IsAuthenticated in it; open single views explicitly.",
                id="dwc.E001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_api_throttling(app_configs=None, **kwargs) -> list[Error]:
    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    missing = [
        f"{cls.__name__} ({scope})"
        for cls in api_settings.DEFAULT_THROTTLE_CLASSES
        # A class counting under several scopes (per request) lists them in `scopes`.
        for scope in getattr(cls, "scopes", (getattr(cls, "scope", None),))
        if scope and scope not in rates
    ]
    if not api_settings.DEFAULT_THROTTLE_CLASSES or missing:
        return [
            Error(
                "The API is not throttled: "
                + (f"no rate for {', '.join(missing)}." if missing else "DEFAULT_THROTTLE_CLASSES is empty."),
                hint="Set REST_FRAMEWORK['DEFAULT_THROTTLE_CLASSES'] and a rate for each of their scopes.",
                id="dwc.E002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_api_pagination(app_configs=None, **kwargs) -> list[Error]:
    if not api_settings.DEFAULT_PAGINATION_CLASS or not api_settings.PAGE_SIZE:
        return [
            Error(
                "API lists are not paginated: one request could read a whole table.",
                hint="Set REST_FRAMEWORK['DEFAULT_PAGINATION_CLASS'] and ['PAGE_SIZE'].",
                id="dwc.E003",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_jwt_settings(app_configs=None, **kwargs) -> list[Error]:
    jwt_settings = simplejwt_settings.api_settings  # looked up each time: simplejwt replaces it on reload
    errors = []
    if not (jwt_settings.ROTATE_REFRESH_TOKENS and jwt_settings.BLACKLIST_AFTER_ROTATION):
        errors.append(
            Error(
                "Refresh tokens stay valid after use: a stolen one keeps working for its whole lifetime.",
                hint="Set SIMPLE_JWT['ROTATE_REFRESH_TOKENS'] and ['BLACKLIST_AFTER_ROTATION'] to True.",
                id="dwc.E004",
            )
        )
    if jwt_settings.ACCESS_TOKEN_LIFETIME > MAX_ACCESS_TOKEN_LIFETIME:
        errors.append(
            Error(
                f"Access tokens live {jwt_settings.ACCESS_TOKEN_LIFETIME}; as they cannot be revoked, "
                "they should live 15 minutes at most.",
                hint="Set JWT_ACCESS_MINUTES to 15 or less.",
                id="dwc.E005",
            )
        )
    return errors


@register(Tags.security, deploy=True)
def check_websocket_origins(app_configs=None, **kwargs) -> list[Error]:
    # Imported here: config.asgi builds the whole ASGI application, which only this check needs.
    from channels.security.websocket import OriginValidator

    from config import asgi

    websocket = getattr(asgi.application, "application_mapping", {}).get("websocket")
    if not isinstance(websocket, OriginValidator):
        return [
            Error(
                "The websocket router in config/asgi.py accepts connections from any origin.",
                hint="Wrap it in channels.security.websocket.AllowedHostsOriginValidator.",
                id="dwc.E006",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_client_addresses(app_configs=None, **kwargs) -> list[Warning]:
    # A TLS proxy in front that is trusted for the scheme almost always appends X-Forwarded-For too.
    if settings.SECURE_PROXY_SSL_HEADER and not api_settings.NUM_PROXIES:
        return [
            Warning(
                "A proxy terminates TLS (SECURE_PROXY_SSL_HEADER is set) but X-Forwarded-For is not trusted "
                "(DWC_NUM_PROXIES is 0): every client counts as the proxy's address, so all share one budget "
                "of the login throttle, and one attacker's failed logins lock an account out for everyone.",
                hint="Set DWC_NUM_PROXIES to the number of proxies that append to X-Forwarded-For (1 for "
                "deploy/nginx.conf), and make sure clients can reach the server through them only: one that "
                "reaches it directly could then choose the address it is counted under.",
                id="dwc.W001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_metrics_access(app_configs=None, **kwargs) -> list[Warning]:
    if any(ipaddress.ip_network(network).prefixlen == 0 for network in settings.DWC_METRICS_ALLOWED_IPS):
        return [
            Warning(
                "/metrics answers any address (DWC_METRICS_ALLOWED_IPS holds a /0): run counts, queue depths "
                "and request rates are there for anyone to read.",
                hint="List the scrapers' networks in DWC_METRICS_ALLOWED_IPS, or set DWC_METRICS_TOKEN and "
                "configure the scraper with it as a bearer token.",
                id="dwc.W002",
            )
        ]
    return []
