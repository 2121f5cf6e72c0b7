"""Pages of every list: `?page=N&page_size=M`, the count, the links, and out-of-range pages."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.workflows.helpers import chain_body, create

pytestmark = pytest.mark.django_db


@pytest.fixture
def seven(user_api) -> list[str]:
    return [create(user_api, chain_body("a", name=f"W{n}"))["id"] for n in range(7)]


def page(api, query: str):
    with CaptureQueriesContext(connection) as queries:
        answer = api.get(f"/api/v3/workflows?{query}")
    counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]
    return answer, counts


@pytest.mark.parametrize(
    ("query", "count", "rows", "has_next", "has_previous", "counted"),
    [
        ("page_size=10", 7, 7, False, False, False),  # room to spare: the page is the last, no COUNT
        ("page_size=7", 7, 7, False, False, True),  # a full page may have more after it
        ("page_size=3", 7, 3, True, False, True),
        ("page_size=3&page=2", 7, 3, True, True, True),
        ("page_size=3&page=3", 7, 1, False, True, False),
        ("page_size=3&page=last", 7, 1, False, True, True),
    ],
)
def test_pages_count_and_link_alike_whether_counted_or_not(
    user_api, seven, query, count, rows, has_next, has_previous, counted
):
    answer, counts = page(user_api, query)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["count"] == count
    assert len(body["results"]) == rows
    assert (body["next"] is not None, body["previous"] is not None) == (has_next, has_previous)
    assert bool(counts) == counted


def test_the_pages_hold_every_row_once(user_api, seven):
    ids = [row["id"] for n in (1, 2, 3) for row in page(user_api, f"page_size=3&page={n}")[0].json()["results"]]
    assert sorted(ids) == sorted(seven)


@pytest.mark.parametrize(
    "query",
    ["page=2", "page_size=3&page=4", "page_size=3&page=99", "page=0", "page=x", f"page={2**63}", f"page={10**30}"],
)
def test_a_page_out_of_range_or_not_a_number_is_404(user_api, seven, query):
    answer, _ = page(user_api, query)
    assert answer.status_code == 404
    assert answer.json()["detail"].startswith("Invalid page")


def test_an_empty_list_has_one_empty_page(user_api):
    answer, counts = page(user_api, "")
    assert answer.status_code == 200
    assert answer.json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert counts == []
