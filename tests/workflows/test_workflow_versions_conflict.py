"""Two people editing one workflow: the second save names the version it was made to (If-Match, the
ETag of the GET it started from) and gets a 409 with the newer version instead of overwriting it."""

import pytest

from tests.workflows.helpers import create

pytestmark = pytest.mark.django_db


def test_the_second_save_of_the_same_version_is_a_conflict_naming_the_newer_version(user_api):
    workflow = create(user_api, {"name": "Shared", "nodes": [{"key": "a", "content": "first"}]})
    read = user_api.get(f"/api/v3/workflows/{workflow['id']}")
    etag = read["ETag"]
    assert etag == f'"{read.json()["version"]}"'

    first = user_api.patch(
        f"/api/v3/workflows/{workflow['id']}", {"description": "mine"}, format="json", HTTP_IF_MATCH=etag
    )
    assert first.status_code == 200, first.content
    assert first["ETag"] == f'"{first.json()["version"]}"' != etag

    second = user_api.put(
        f"/api/v3/workflows/{workflow['id']}",
        {"name": "Shared", "nodes": [{"key": "a", "content": "theirs"}]},
        format="json",
        HTTP_IF_MATCH=etag,
    )
    assert second.status_code == 409, second.content
    assert second.json()["version"] == first.json()["version"]
    assert "changed since you read it" in second.json()["detail"]
    # Nothing of the refused save was written.
    current = user_api.get(f"/api/v3/workflows/{workflow['id']}").json()
    assert current["version"] == first.json()["version"]
    assert current["nodes"][0]["content"] == "first" and current["description"] == "mine"


def test_if_match_is_optional_and_checked(user_api):
    workflow = create(user_api, {"name": "Shared"})
    url = f"/api/v3/workflows/{workflow['id']}"
    assert user_api.patch(url, {"description": "no precondition"}, format="json").status_code == 200
    assert user_api.patch(url, {"description": "any"}, format="json", HTTP_IF_MATCH="*").status_code == 200
    weak = f'W/"{user_api.get(url).json()["version"]}"'
    assert user_api.patch(url, {"description": "weak"}, format="json", HTTP_IF_MATCH=weak).status_code == 200
    answer = user_api.patch(url, {"description": "x"}, format="json", HTTP_IF_MATCH='"seven"')
    assert answer.status_code == 400 and list(answer.json()["errors"]) == ["If-Match"]
