"""The dashboard's notification pages through Django's test client: login, the bell and the links on
every page, and what the pages reference."""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PAGES = ("/dashboard/notifications/", "/dashboard/notifications/preferences/")


def test_the_pages_need_a_login(client):
    for url in PAGES:
        answer = client.get(url)
        assert (answer.status_code, answer["Location"]) == (302, f"/accounts/login/?next={url}")


def test_every_dashboard_page_has_the_bell_and_links_to_the_inbox_and_preferences(client):
    client.force_login(UserFactory())
    for url in (*PAGES, "/dashboard/", "/dashboard/runs/", "/dashboard/account/"):
        html = client.get(url).content.decode()
        assert 'id="bell"' in html and 'id="bell-count"' in html, url
        assert 'href="/dashboard/notifications/"' in html and 'href="/dashboard/notifications/preferences/"' in html
        assert "/static/dashboard/bell.js" in html, url


def test_the_pages_reference_only_static_files_that_exist_and_no_inline_scripts(client):
    client.force_login(UserFactory())
    referenced = set()
    for url in PAGES:
        html = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"{url} has an inline script"
        assert " style=" not in html and "onclick=" not in html, url
        referenced |= set(re.findall(r'src="/static/([^"]+\.js)"', html))
    assert {"dashboard/bell.js", "dashboard/notifications.js", "dashboard/notification-preferences.js"} <= referenced
    for path in referenced:
        found = finders.find(path)
        assert found, path
        for name in re.findall(r'from "\./([\w.-]+\.js)"', Path(found).read_text()):
            assert finders.find(f"dashboard/{name}"), name
