"""Headers, CSP, CORS, body and page size limits, CSRF, production settings and our deploy checks."""

import io
import json
import re
import secrets
import subprocess

import pytest
from channels.routing import ProtocolTypeRouter, URLRouter
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse
from django.test import Client, override_settings
from rest_framework.test import APIClient

from accounts import checks
from accounts.models import ApiKey
from config import asgi
from core.request_limits import RequestBodyLimitMiddleware
from tests.factories import UserFactory
from tests.processes import PROJECT_DIR, VENV_BIN, clean_env
from tests.workflows.helpers import chain_body, create
from workflows.models import Workflow

PROBLEM = "application/problem+json"
# An executable inline script: a <script> without src (JSON data blocks do not run, and are fine).
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/(?:ld\+)?json)[^>]*>", re.IGNORECASE)


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_strict_csp(response) -> None:
    directives = csp_directives(response)
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]


# --- headers and CSP ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_responses_carry_the_security_headers(user_api):
    for response in (Client().get("/admin/login/"), user_api.get("/api/v3/auth/me")):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        assert_strict_csp(response)


@pytest.mark.django_db
def test_the_admin_runs_no_inline_script_under_the_csp():
    browser = Client()
    browser.force_login(UserFactory(is_staff=True, is_superuser=True))
    for path in ("/admin/login/", "/admin/", "/admin/accounts/user/", "/admin/accounts/user/add/"):
        page = Client().get(path) if path == "/admin/login/" else browser.get(path)
        assert page.status_code == 200, path
        assert_strict_csp(page)
        assert not INLINE_SCRIPT.search(page.content.decode()), path


@pytest.mark.django_db
def test_swagger_ui_loads_its_start_up_script_as_a_file():
    page = Client().get("/docs")
    assert page.status_code == 200
    assert_strict_csp(page)
    html = page.content.decode()
    assert not INLINE_SCRIPT.search(html)
    script = re.search(r'<script src="(/docs\?[^"]*script=[^"]*)"', html)
    assert script, html
    init = Client().get(script.group(1).replace("&amp;", "&"))
    assert init.status_code == 200
    assert init["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in init.content.decode()


@pytest.mark.django_db
def test_the_dashboard_and_the_browsable_api_run_no_inline_script(user):
    browser = Client()
    browser.force_login(user)
    for path in ("/dashboard/", "/api/v3/auth/me"):
        page = browser.get(path, headers={"accept": "text/html"})
        assert page.status_code == 200, path
        assert_strict_csp(page)
        html = page.content.decode()
        assert not INLINE_SCRIPT.search(html), path
        assert not re.search(r"\son[a-z]+=", html), path  # no inline event handlers either


# --- CORS --------------------------------------------------------------------------------------


def preflight(origin: str):
    return APIClient().options(
        "/api/v3/workflows",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-api-key, content-type",
    )


@pytest.mark.django_db
def test_no_origin_is_allowed_by_default():
    assert "Access-Control-Allow-Origin" not in preflight("https://app.example.com")


@pytest.mark.django_db
@override_settings(CORS_ALLOWED_ORIGINS=["https://app.example.com"])
def test_cors_preflight_allows_only_the_listed_origins():
    allowed = preflight("https://app.example.com")
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "x-api-key" in allowed["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in allowed

    refused = preflight("https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in refused


# --- request body and page size ----------------------------------------------------------------


@pytest.mark.django_db
@override_settings(DWC_MAX_REQUEST_BYTES=2000)
def test_a_body_over_the_limit_is_a_413_problem_and_writes_nothing(user_api):
    body = {**chain_body("a"), "description": "x" * 3000}
    answer = user_api.post("/api/v3/workflows", body, format="json")
    assert answer.status_code == 413
    assert answer["Content-Type"] == PROBLEM
    assert answer.json()["detail"] == "The request body is over the limit of 2000 bytes."
    assert not Workflow.objects.exists()
    assert user_api.post("/api/v3/workflows", chain_body("a"), format="json").status_code == 201


def chunked_request(body: bytes) -> ASGIRequest:
    """A request as an ASGI server passes on a chunked upload: a body, but no Content-Length."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v3/workflows",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
    }
    return ASGIRequest(scope, io.BytesIO(body))


@override_settings(DWC_MAX_REQUEST_BYTES=100)
def test_a_chunked_body_is_cut_off_at_the_limit_and_a_small_one_reaches_the_view():
    echo = RequestBodyLimitMiddleware(lambda request: HttpResponse(request.body))
    assert echo(chunked_request(b"x" * 101)).status_code == 413
    small = echo(chunked_request(b'{"a": 1}'))
    assert small.status_code == 200
    assert small.content == b'{"a": 1}'


@pytest.mark.django_db
def test_page_size_is_honoured_up_to_200(user, user_api):
    for name in ("a", "b", "c"):
        create(user_api, chain_body(name, name=name))
    page = user_api.get("/api/v3/workflows?page_size=2").json()
    assert (page["count"], len(page["results"])) == (3, 2)
    assert "page_size=2" in page["next"]

    ApiKey.objects.bulk_create(
        [
            ApiKey(user=user, name=f"k{n}", prefix=f"dwc_p{n:07d}", key_hash="0" * 64, scopes=["read"])
            for n in range(205)
        ]
    )
    capped = user_api.get("/api/v3/auth/api-keys?page_size=1000").json()
    assert (capped["count"], len(capped["results"])) == (205, 200)
    assert len(user_api.get("/api/v3/auth/api-keys").json()["results"]) == settings.REST_FRAMEWORK["PAGE_SIZE"]


# --- CSRF --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_session_authenticated_change_needs_the_csrf_token(user):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    refused = browser.post("/api/v3/workflows", chain_body("a"), format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert not Workflow.objects.exists()

    browser.get("/admin/login/")  # sets the csrftoken cookie, as any page with a form does
    token = browser.cookies["csrftoken"].value
    accepted = browser.post("/api/v3/workflows", chain_body("a"), format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


# --- production settings and checks ------------------------------------------------------------


def production_env(tmp_path, **extra: str) -> dict[str, str]:
    return clean_env(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DWC_VAR_DIR=str(tmp_path),
        SECRET_KEY=secrets.token_urlsafe(50),
        CREDENTIALS_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="dwc.example.com",
        **extra,
    )


def test_check_deploy_passes_with_production_settings(tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        # Behind its proxy, as deploy/ and docker-compose.yml run it.
        env=production_env(tmp_path, DWC_NUM_PROXIES="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "ERRORS" not in output
    assert "System check identified no issues" in output


SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "hsts": s.SECURE_HSTS_SECONDS, "hsts_subdomains": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "ssl_redirect": s.SECURE_SSL_REDIRECT, "session_secure": s.SESSION_COOKIE_SECURE,
    "csrf_secure": s.CSRF_COOKIE_SECURE, "session_httponly": s.SESSION_COOKIE_HTTPONLY,
    "session_samesite": s.SESSION_COOKIE_SAMESITE, "csrf_samesite": s.CSRF_COOKIE_SAMESITE,
    "num_proxies": s.REST_FRAMEWORK["NUM_PROXIES"], "jwt_key": s.SIMPLE_JWT["SIGNING_KEY"],
    "jwt_key_is_secret_key": s.SIMPLE_JWT["SIGNING_KEY"] == s.SECRET_KEY,
    "access_minutes": s.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds() / 60,
}))
"""


def production_settings(tmp_path, **extra: str) -> dict:
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", SHOW_SETTINGS],
        cwd=PROJECT_DIR,
        env=production_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_sends_hsts_and_secure_http_only_same_site_cookies(tmp_path):
    shown = production_settings(tmp_path)
    assert shown["hsts"] >= 365 * 24 * 3600 and shown["hsts_subdomains"]
    assert shown["ssl_redirect"] and shown["session_secure"] and shown["csrf_secure"]
    assert shown["session_httponly"]
    assert shown["session_samesite"] == shown["csrf_samesite"] == "Lax"
    assert shown["num_proxies"] == 0  # trusting X-Forwarded-For is for the operator to turn on
    assert shown["access_minutes"] <= 15
    assert shown["jwt_key_is_secret_key"]


def test_production_trusts_x_forwarded_for_only_when_told_how_many_proxies_append_to_it(tmp_path):
    assert production_settings(tmp_path, DWC_NUM_PROXIES="1")["num_proxies"] == 1


def test_a_separate_jwt_signing_key_replaces_the_secret_key(tmp_path):
    shown = production_settings(tmp_path, JWT_SIGNING_KEY="j" * 64)
    assert shown["jwt_key"] == "j" * 64
    assert not shown["jwt_key_is_secret_key"]


def test_plain_http_setups_turn_secure_cookies_and_the_redirect_off_together(tmp_path):
    shown = production_settings(tmp_path, SECURE_COOKIES="false")
    assert not (shown["ssl_redirect"] or shown["session_secure"] or shown["csrf_secure"])


def rest_framework(**changed) -> dict:
    return {**settings.REST_FRAMEWORK, **changed}


def error_ids(errors) -> list[str]:
    return [error.id for error in errors]


def test_the_deploy_checks_pass_with_our_settings():
    for check in (
        checks.check_api_permissions,
        checks.check_api_throttling,
        checks.check_api_pagination,
        checks.check_jwt_settings,
        checks.check_websocket_origins,
        checks.check_client_addresses,
        checks.check_metrics_access,
    ):
        assert check() == [], check.__name__


def test_the_deploy_check_warns_of_a_tls_proxy_whose_x_forwarded_for_is_ignored():
    behind_tls_proxy = {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")}
    with override_settings(REST_FRAMEWORK=rest_framework(NUM_PROXIES=0), **behind_tls_proxy):
        [warning] = checks.check_client_addresses()
    assert warning.id == "dwc.W001"
    assert "DWC_NUM_PROXIES" in warning.hint
    with override_settings(REST_FRAMEWORK=rest_framework(NUM_PROXIES=1), **behind_tls_proxy):
        assert checks.check_client_addresses() == []
    with override_settings(REST_FRAMEWORK=rest_framework(NUM_PROXIES=0), SECURE_PROXY_SSL_HEADER=None):
        assert checks.check_client_addresses() == []


@pytest.mark.parametrize("everyone", [["0.0.0.0/0"], ["::/0", "127.0.0.1/32"]])
def test_the_deploy_check_warns_of_metrics_open_to_everyone(settings, everyone):
    settings.DWC_METRICS_ALLOWED_IPS = everyone
    settings.DWC_METRICS_TOKEN = ""
    assert error_ids(checks.check_metrics_access()) == ["dwc.W002"]
    settings.DWC_METRICS_TOKEN = "t" * 40
    settings.DWC_METRICS_ALLOWED_IPS = []
    assert checks.check_metrics_access() == []


@pytest.mark.parametrize(
    "permissions",
    [[], ["rest_framework.permissions.AllowAny"], ["accounts.api.permissions.ApiKeyScopePermission"]],
)
def test_an_open_default_permission_fails_the_deploy_check(permissions):
    with override_settings(REST_FRAMEWORK=rest_framework(DEFAULT_PERMISSION_CLASSES=permissions)):
        assert error_ids(checks.check_api_permissions()) == ["dwc.E001"]


@pytest.mark.parametrize(
    "changed",
    [
        {"DEFAULT_THROTTLE_CLASSES": []},
        {"DEFAULT_THROTTLE_RATES": {"user": "10/min", "session": "10/min"}},  # no rate for the trigger throttle
        {"DEFAULT_THROTTLE_RATES": {"user": "10/min", "trigger": "10/min"}},  # none for browser sessions
    ],
)
def test_missing_throttles_fail_the_deploy_check(changed):
    with override_settings(REST_FRAMEWORK=rest_framework(**changed)):
        assert error_ids(checks.check_api_throttling()) == ["dwc.E002"]


@pytest.mark.parametrize("changed", [{"PAGE_SIZE": None}, {"DEFAULT_PAGINATION_CLASS": None}])
def test_unpaginated_lists_fail_the_deploy_check(changed):
    with override_settings(REST_FRAMEWORK=rest_framework(**changed)):
        assert error_ids(checks.check_api_pagination()) == ["dwc.E003"]


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ({"ROTATE_REFRESH_TOKENS": False}, ["dwc.E004"]),
        ({"BLACKLIST_AFTER_ROTATION": False}, ["dwc.E004"]),
        ({"ACCESS_TOKEN_LIFETIME": settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] * 4}, ["dwc.E005"]),
    ],
)
def test_weak_jwt_settings_fail_the_deploy_check(changed, expected):
    with override_settings(SIMPLE_JWT={**settings.SIMPLE_JWT, **changed}):
        assert error_ids(checks.check_jwt_settings()) == expected


def test_websockets_without_the_origin_validator_fail_the_deploy_check(monkeypatch):
    monkeypatch.setattr(asgi, "application", ProtocolTypeRouter({"websocket": URLRouter([])}))
    assert error_ids(checks.check_websocket_origins()) == ["dwc.E006"]
