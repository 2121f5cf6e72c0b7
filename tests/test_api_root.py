"""GET /api/v3/: the API root lists the resources, as JSON for clients and as a browsable page."""

import pytest
from rest_framework.test import APIClient

from tests.api_world import api_schema

pytestmark = pytest.mark.django_db

RESOURCES = ("workspaces", "workflows", "runs", "documents", "credentials", "schedules", "audit/events")


def test_the_api_root_lists_the_resources_and_each_link_answers(user_api):
    answer = user_api.get("/api/v3/")
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"] == "application/json"
    links = answer.json()
    for name in (*RESOURCES, "auth/token", "auth/me", "auth/api-keys", "trigger", "schema", "docs"):
        assert name in links, name
    assert links["workflows"] == "http://testserver/api/v3/workflows"
    for name in (*RESOURCES, "auth/me", "auth/api-keys", "schema"):
        assert user_api.get(links[name]).status_code == 200, name
    assert user_api.get("/api/v3").json() == links


def test_a_browser_gets_the_browsable_api_root(client, user):
    client.force_login(user)
    page = client.get("/api/v3/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert "API root" in html
    assert "http://testserver/api/v3/workflows" in html


def test_anyone_may_read_the_links_but_not_what_they_lead_to():
    anonymous = APIClient()
    links = anonymous.get("/api/v3/").json()
    assert links["workflows"] == "http://testserver/api/v3/workflows"
    for name in RESOURCES:
        assert anonymous.get(links[name]).status_code == 401, name


def test_the_api_root_is_not_an_operation_of_the_schema():
    assert not any(path.rstrip("/") == "/api/v3" for path in api_schema()["paths"])
