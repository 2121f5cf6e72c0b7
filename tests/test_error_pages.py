"""Errors Django answers by itself (before or outside DRF's views) are problem details under /api/
and /hooks/, as the API documents, and the usual HTML pages elsewhere."""

import pytest
from django.test import Client, override_settings

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def session_client() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory())
    return client


def test_a_session_post_under_the_api_without_its_csrf_token_is_a_problem():
    answer = session_client().post("/api/v3/no-such-thing", {"a": 1}, content_type="application/json")
    assert answer.status_code == 403
    assert answer["Content-Type"] == PROBLEM
    assert answer.json()["detail"].startswith("CSRF check failed")


def test_a_csrf_failure_on_a_page_stays_html():
    answer = session_client().post("/accounts/logout/")
    assert answer.status_code == 403
    assert answer["Content-Type"].startswith("text/html")


@override_settings(ALLOWED_HOSTS=["example.org"], DEBUG=False)
def test_a_disallowed_host_under_the_api_is_a_problem():
    answer = Client().get("/api/v3/workflows", HTTP_HOST="evil.example")
    assert answer.status_code == 400
    assert answer["Content-Type"] == PROBLEM
    assert answer.json()["status"] == 400


@override_settings(ALLOWED_HOSTS=["example.org"], DEBUG=False)
def test_a_disallowed_host_on_a_page_stays_html():
    answer = Client().get("/dashboard/", HTTP_HOST="evil.example")
    assert answer.status_code == 400
    assert answer["Content-Type"].startswith("text/html")
