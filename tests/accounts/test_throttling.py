"""Rates: logins, registrations and refreshes per address; other traffic per user or API key; run
starts per workflow. Over the rate: 429 problem+json with Retry-After."""

import itertools
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from tests.accounts.conftest import other_features_write_keys
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory
from tests.mode_settings import settings_of
from tests.workflows.helpers import chain_body, create

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
# Counts live in Redis for the whole session: every test uses addresses no other test uses.
_addresses = (f"198.51.100.{n}" for n in itertools.count(1))


def rates(**changed: str):
    base = {"auth": "1000/min", "user": "1000/min", "session": "1000/min", "trigger": "1000/min"}
    return override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**base, **changed}})


def assert_throttled(answer) -> None:
    assert answer.status_code == 429, answer.content
    assert answer["Content-Type"] == PROBLEM
    assert answer.json()["type"] == "/problems/throttled"
    assert answer.json()["detail"].startswith("Request was throttled.")
    assert int(answer["Retry-After"]) > 0


@rates(auth="3/min")
def test_logins_are_throttled_per_address(api, user):
    address, other = next(_addresses), next(_addresses)
    wrong = {"email": user.email, "password": "nope"}
    for _ in range(3):
        assert api.post("/api/v3/auth/token", wrong, format="json", REMOTE_ADDR=address).status_code == 401
    assert_throttled(api.post("/api/v3/auth/token", wrong, format="json", REMOTE_ADDR=address))
    right = {"email": user.email, "password": PASSWORD}
    assert_throttled(api.post("/api/v3/auth/token", right, format="json", REMOTE_ADDR=address))
    assert api.post("/api/v3/auth/token", right, format="json", REMOTE_ADDR=other).status_code == 200


@rates(auth="2/min")
def test_registration_and_refresh_are_throttled_each_on_its_own(api, user):
    address = next(_addresses)
    for n in range(2):
        body = {"email": f"throttled{n}.{address}@example.com", "password": "a-Sturdy-passphrase-42"}
        assert api.post("/api/v3/auth/register", body, format="json", REMOTE_ADDR=address).status_code == 201
    body = {"email": f"third.{address}@example.com", "password": "a-Sturdy-passphrase-42"}
    assert_throttled(api.post("/api/v3/auth/register", body, format="json", REMOTE_ADDR=address))

    for _ in range(2):
        answer = api.post("/api/v3/auth/token/refresh", {"refresh": "x"}, format="json", REMOTE_ADDR=address)
        assert answer.status_code == 401
    assert_throttled(api.post("/api/v3/auth/token/refresh", {"refresh": "x"}, format="json", REMOTE_ADDR=address))
    # The login endpoint has a budget of its own.
    login = {"email": user.email, "password": PASSWORD}
    assert api.post("/api/v3/auth/token", login, format="json", REMOTE_ADDR=address).status_code == 200


@rates(user="3/min")
def test_authenticated_traffic_is_throttled_per_user():
    user_api, other_api = client_for(UserFactory()), client_for(UserFactory())
    for _ in range(3):
        assert user_api.get("/api/v3/auth/me").status_code == 200
    assert_throttled(user_api.get("/api/v3/auth/me"))
    assert other_api.get("/api/v3/auth/me").status_code == 200


@rates(user="3/min")
def test_a_count_survives_whatever_else_the_embedded_mode_keeps_in_memory(embedded_caches):
    user_api = client_for(UserFactory())
    for _ in range(3):
        assert user_api.get("/api/v3/auth/me").status_code == 200
    other_features_write_keys(10_000)
    assert_throttled(user_api.get("/api/v3/auth/me"))


@rates(user="3/min", session="5/min")
def test_a_browser_session_counts_under_its_own_scope(client):
    """The dashboard's reads come in bursts; its budget is the session scope's, apart from the token one."""
    user = UserFactory()
    client.force_login(user)
    token_api = client_for(user)
    for _ in range(5):
        assert client.get("/api/v3/auth/me").status_code == 200
    assert_throttled(client.get("/api/v3/auth/me"))
    for _ in range(3):
        assert token_api.get("/api/v3/auth/me").status_code == 200
    assert_throttled(token_api.get("/api/v3/auth/me"))


def test_each_api_key_has_a_budget_of_its_own(user_api):
    keys = []
    for name in ("one", "two"):
        created = user_api.post("/api/v3/auth/api-keys", {"name": name, "scopes": ["read"]}, format="json")
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=created.json()["key"])
        keys.append(client)
    with rates(user="3/min"):
        for _ in range(3):
            assert keys[0].get("/api/v3/auth/me").status_code == 200
        assert_throttled(keys[0].get("/api/v3/auth/me"))
        assert keys[1].get("/api/v3/auth/me").status_code == 200
        # The user's own budget has the two key creations in it, and room for one more.
        assert user_api.get("/api/v3/auth/me").status_code == 200
        assert_throttled(user_api.get("/api/v3/auth/me"))


def test_run_starts_are_throttled_per_workflow(user_api):
    workflow, other = create(user_api, chain_body("a")), create(user_api, chain_body("b"))
    with rates(trigger="2/min"):
        runs = f"/api/v3/workflows/{workflow['id']}/runs"
        assert user_api.post(runs, {"input": {}}, format="json").status_code == 202
        assert user_api.post("/api/v3/trigger", {"workflow_id": workflow["id"]}, format="json").status_code == 202
        assert_throttled(user_api.post(runs, {"input": {}}, format="json"))
        assert_throttled(user_api.post(f"{runs}/batch", {"inputs": [{}]}, format="json"))
        assert_throttled(user_api.post("/api/v3/trigger", {"workflow_id": workflow["id"]}, format="json"))
        assert user_api.get(runs).status_code == 200  # reading runs is not starting them
        assert user_api.post(f"/api/v3/workflows/{other['id']}/runs", {}, format="json").status_code == 202


@rates(auth="1/min")
def test_x_forwarded_for_counts_only_behind_the_configured_proxies(api, user):
    address = next(_addresses)
    wrong = {"email": user.email, "password": "nope"}
    assert api.post("/api/v3/auth/token", wrong, format="json", REMOTE_ADDR=address).status_code == 401
    # Without proxies a client cannot pick its address by sending the header.
    forged = api.post(
        "/api/v3/auth/token", wrong, format="json", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=next(_addresses)
    )
    assert_throttled(forged)

    proxied = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxied["DEFAULT_THROTTLE_RATES"] = {**proxied["DEFAULT_THROTTLE_RATES"], "auth": "1/min"}
    with override_settings(REST_FRAMEWORK=proxied):
        proxy = next(_addresses)
        first, second = next(_addresses), next(_addresses)
        for client_address in (first, second):
            answer = api.post(
                "/api/v3/auth/token", wrong, format="json", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=client_address
            )
            assert answer.status_code == 401
        spoofed = api.post(
            "/api/v3/auth/token", wrong, format="json", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {first}"
        )
        assert_throttled(spoofed)


def test_with_the_production_defaults_a_forged_x_forwarded_for_does_not_escape_the_throttle(api, user, tmp_path):
    # Reached without its proxy, 300 wrong passwords with random X-Forwarded-For were never throttled.
    production = settings_of("config.settings.production", ["REST_FRAMEWORK"], tmp_path)["REST_FRAMEWORK"]
    address, wrong = next(_addresses), {"email": user.email, "password": "nope"}
    with (
        rates(auth="5/min"),
        override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": production["NUM_PROXIES"]}),
    ):
        answers = [
            api.post(
                "/api/v3/auth/token", wrong, format="json", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
            )
            for n in range(1, 11)
        ]
    assert [answer.status_code for answer in answers] == [401] * 5 + [429] * 5


def production_limits(var_dir) -> dict:
    """The rates and lockout config.settings.base sets when no DWC_THROTTLE_* or DWC_LOGIN_* variable is
    set (the test settings raise them all, so they are read in a process of their own)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DWC_THROTTLE_", "DWC_LOGIN_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DWC_VAR_DIR=str(var_dir),
        SECRET_KEY=settings.SECRET_KEY,
        CREDENTIALS_KEY=settings.CREDENTIALS_KEY,
    )
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'rates': s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'], 'max_failures': s.DWC_LOGIN_MAX_FAILURES, "
        "'lockout_minutes': s.DWC_LOGIN_LOCKOUT_MINUTES}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_with_the_default_limits_scripts_log_in_freely_and_a_password_guesser_is_locked_out(api, settings, tmp_path):
    limits = production_limits(tmp_path)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": limits["rates"]}
    settings.DWC_LOGIN_MAX_FAILURES = limits["max_failures"]
    settings.DWC_LOGIN_LOCKOUT_MINUTES = limits["lockout_minutes"]
    address = next(_addresses)

    def login(user, password=PASSWORD):
        body = {"email": user.email, "password": password}
        return api.post("/api/v3/auth/token", body, format="json", REMOTE_ADDR=address)

    # Three scripts on one machine, each logging in a dozen times within the minute.
    scripts = [UserFactory() for _ in range(3)]
    for _ in range(12):
        for user in scripts:
            assert login(user).status_code == 200

    guessed = scripts[0]
    for _ in range(limits["max_failures"]):
        assert login(guessed, "guess").status_code == 401
    for password in ("guess", PASSWORD):
        locked = login(guessed, password)
        assert locked.status_code == 429
        assert locked.json()["type"] == "/problems/locked-out"
    assert login(scripts[1]).status_code == 200  # only the guessed account is locked out
