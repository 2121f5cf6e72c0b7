"""The database or Redis going away under a running server or beat: every answer is a 503 problem with
Retry-After (never a 500 with a traceback in the logs as a bug), and the server recovers by itself
once the dependency is back. The dependency is taken away with a proxy the test cuts
(tests/fault_proxy.py), so the test database and Redis stay up for everything else."""

import time
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings

from accounts.services import user_register
from tests.fault_proxy import FaultProxy, database_upstream, database_url_through
from tests.processes import Process, serving, wait_until
from tests.workflows.workers import worker_env
from workflows.models import Workflow
from workflows.services.webhooks import webhook_create
from workflows.services.workflows import workflow_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

PASSWORD = "a-Sturdy-passphrase-42"
NODE = {"key": "t", "type": "transform", "config": {"values": {"x": "1"}}}


@pytest.fixture
def proxies():
    redis_url = urlsplit(settings.REDIS_URL)
    database, redis = FaultProxy(database_upstream()), FaultProxy((redis_url.hostname, redis_url.port or 6379))
    urls = {
        "DATABASE_URL": database_url_through(database),
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}{redis_url.path}",
    }
    yield {"database": database, "redis": redis, "urls": urls}
    database.close()
    redis.close()


@pytest.fixture(params=["gunicorn", "daphne"])
def server(request, proxies):
    # daphne's pool waits this long for a connection before the request fails (the default is 10 s).
    with serving(request.param, worker_env(**proxies["urls"], DATABASE_POOL_TIMEOUT="2")) as served:
        yield served


@pytest.fixture
def member(server):
    base, _ = server
    user = user_register(email="outage@example.com", password=PASSWORD)
    tokens = httpx.post(f"{base}/api/v3/auth/token", json={"email": user.email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    headers = {"Authorization": f"Bearer {tokens.json()['access']}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
        yield api, user


def assert_unavailable(answer: httpx.Response, dependency: str) -> None:
    assert answer.status_code == 503, answer.text[:500]
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "5"
    problem = answer.json()
    assert problem["type"] == "/problems/unavailable"
    assert f"cannot reach its {dependency}" in problem["detail"]


def test_the_api_answers_503_while_the_database_is_down_and_recovers(member, proxies, server):
    api, user = member
    assert api.get("/api/v3/auth/me").status_code == 200

    proxies["database"].cut()
    assert_unavailable(api.get("/api/v3/auth/me"), "database")
    assert_unavailable(api.get("/api/v3/workflows"), "database")
    login = httpx.post(f"{server[0]}/api/v3/auth/token", json={"email": user.email, "password": PASSWORD}, timeout=60)
    assert_unavailable(login, "database")

    proxies["database"].restore()
    assert api.get("/api/v3/auth/me").status_code == 200


def test_the_api_answers_503_while_redis_is_down_and_recovers(member, proxies):
    api, _ = member
    assert api.get("/api/v3/auth/me").status_code == 200

    proxies["redis"].cut()
    assert_unavailable(api.get("/api/v3/auth/me"), "cache")

    proxies["redis"].restore()
    assert api.get("/api/v3/auth/me").status_code == 200


@pytest.mark.parametrize("server", ["daphne"], indirect=True)
def test_a_webhook_delivery_gets_503_while_the_database_is_down(member, proxies, server):
    _, user = member
    workflow = workflow_create(
        actor=user,
        workspace=user.memberships.get().workspace,
        data={"name": "Hooked", "status": "active", "nodes": [NODE]},
    )
    _, token = webhook_create(workflow=Workflow.objects.get(pk=workflow.pk), actor=user)
    assert httpx.post(f"{server[0]}/hooks/{token}/", json={}, timeout=60).status_code == 202

    proxies["database"].cut()
    assert_unavailable(httpx.post(f"{server[0]}/hooks/{token}/", json={}, timeout=60), "database")

    proxies["database"].restore()
    assert httpx.post(f"{server[0]}/hooks/{token}/", json={}, timeout=60).status_code == 202


def sent_tasks(beat: Process) -> int:
    return beat.output().count("Sending due task recover-runs")


def test_beat_rides_out_database_outages_and_keeps_sending_recovery(proxies):
    # Started while the database is away: it waits for it instead of exiting.
    proxies["database"].cut()
    env = worker_env(**proxies["urls"], DWC_RECOVER_EVERY_SECONDS="1")
    beat = Process([".venv/bin/celery", "-A", "config", "beat", "--loglevel", "INFO"], env, "beat")
    try:
        time.sleep(8)
        assert beat.popen.poll() is None, beat.output()
        assert "beat started while the database is unreachable" in beat.output()

        proxies["database"].restore()
        wait_until(lambda: sent_tasks(beat) >= 2, timeout=30, message="beat sends recovery once the database is back")

        # Away again while it runs: it keeps sending from the schedule it holds.
        proxies["database"].cut()
        before = sent_tasks(beat)
        time.sleep(12)
        assert beat.popen.poll() is None, beat.output()
        assert sent_tasks(beat) >= before + 5, beat.output()[-3000:]

        proxies["database"].restore()
        after = sent_tasks(beat)
        wait_until(lambda: sent_tasks(beat) > after, timeout=30, message="beat goes on after the second outage")
    finally:
        beat.stop()
