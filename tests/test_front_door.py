"""The front door: the product started exactly as the README's `make run` starts it (embedded
PostgreSQL in DWC_VAR_DIR, in-process worker), used over real HTTP and a real websocket by a newly
registered user who is not an admin, then stopped and started again on the same var/ directory.

One server serves the whole module; the tests share what they create through module fixtures, and
the last one restarts the server."""

import json
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import pytest
from pytest_httpserver import HTTPServer
from websockets.sync.client import connect

from config.embedded_db.server import EmbeddedServer
from tests.processes import PROJECT_DIR, VENV_BIN, Process, clean_env, free_port, wait_for_http, wait_until

ADMIN_PASSWORD = "a-Sturdy-admin-passphrase-42"
EMAIL = "front-door@example.com"
PASSWORD = "Front-door-passphrase-7"
FINISHED = {"succeeded", "failed", "cancelled"}
HELLO = {"message": "Hello from workflow!"}
DELAY_SECONDS = 2


class Product:
    """`make run` on one var/ directory, on one port, started and stopped as a person would."""

    def __init__(self, var_dir: Path):
        self.var_dir = var_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: Process | None = None

    def start(self) -> None:
        env = clean_env(
            HOST="127.0.0.1",
            PORT=str(self.port),
            DWC_VAR_DIR=str(self.var_dir),
            DWC_ADMIN_PASSWORD=ADMIN_PASSWORD,
            DWC_OUTBOUND_ALLOWLIST="127.0.0.1,localhost",
        )
        self.process = Process(["make", "run"], env, "front-door")
        wait_for_http(f"{self.base}/health", self.process)

    def stop(self) -> float:
        return self.process.stop(timeout=10)


def assert_stops_cleanly(product: Product) -> None:
    """SIGTERM to the group: the server, its worker and then its PostgreSQL server stop in order."""
    assert product.stop() < 10, product.process
    output = product.process.output()
    # make dies of the SIGTERM its group got, after `manage.py start` exited.
    assert product.process.popen.returncode in (0, -signal.SIGTERM), output[-3000:]
    assert '"message": "stopped"' in output, output[-3000:]
    assert "embedded database stopped" in output, output[-3000:]
    assert "Traceback" not in output and "make: ***" not in output, output[-3000:]


def postmaster_pid(var_dir: Path) -> int | None:
    pid_file = var_dir / "postgres" / "postmaster.pid"
    return int(pid_file.read_text().splitlines()[0]) if pid_file.exists() else None


def is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def dbserver_stop(var_dir: Path) -> None:
    completed = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "dbserver", "stop"],
        cwd=PROJECT_DIR,
        env=clean_env(DWC_VAR_DIR=str(var_dir)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def wait_for_run(api: httpx.Client, run_id: str, product: Product, timeout: float = 30) -> dict:
    return wait_until(
        lambda: (run := api.get(f"/api/v3/runs/{run_id}").json())["status"] in FINISHED and run,
        timeout=timeout,
        interval=0.2,
        message=lambda: f"run {run_id} to finish: {api.get(f'/api/v3/runs/{run_id}').text}\n{product.process!r}",
    )


def documents_of(api: httpx.Client, run_id: str) -> dict[str, dict]:
    """The run's documents by node key, each with its content (the list leaves it out)."""
    listed = api.get("/api/v3/documents", params={"run": run_id})
    assert listed.status_code == 200, listed.text
    return {row["node_key"]: api.get(f"/api/v3/documents/{row['id']}").json() for row in listed.json()["results"]}


def elapsed(run: dict) -> float:
    return (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()


@pytest.fixture(scope="module")
def product():
    # Not under pytest's tmp_path: every pytest session that starts takes the others' "x" off
    # /tmp/pytest-of-<user>, and as root the embedded server runs as a user of its own, which could
    # then no longer reach its data directory to stop it.
    home = Path(tempfile.mkdtemp(prefix="dwc-front-door-var-"))
    product = Product(home / "var")
    try:
        product.start()
        yield product
        assert_stops_cleanly(product)
    finally:
        if product.process is not None:
            product.stop()
        if postmaster_pid(product.var_dir) is not None:
            dbserver_stop(product.var_dir)  # never leave a server behind, whatever failed
        shutil.rmtree(home)


@pytest.fixture(scope="module")
def receiver():
    """The webhook's destination: a real HTTP server in this process."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/notify", method="POST").respond_with_json({"ok": True})
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture(scope="module")
def access(product) -> str:
    """The access token of the user this module registers."""
    created = httpx.post(
        f"{product.base}/api/v3/auth/register",
        json={"email": EMAIL, "password": PASSWORD, "name": "Front Door"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    tokens = httpx.post(f"{product.base}/api/v3/auth/token", json={"email": EMAIL, "password": PASSWORD}, timeout=10)
    assert tokens.status_code == 200, tokens.text
    return tokens.json()["access"]


@pytest.fixture(scope="module")
def api(product, access):
    with httpx.Client(base_url=product.base, headers={"Authorization": f"Bearer {access}"}, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def browser(product, access):
    """A browser's session: logged in through the login form, with its CSRF token."""
    with httpx.Client(base_url=product.base, timeout=10) as client:
        assert client.get("/accounts/login/").status_code == 200
        logged_in = client.post(
            "/accounts/login/",
            data={"username": EMAIL, "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        )
        assert (logged_in.status_code, logged_in.headers.get("location")) == (302, "/dashboard/"), logged_in.text
        yield client


@pytest.fixture(scope="module")
def document_chain(product, api) -> dict:
    """Seed body A: a workflow, two document nodes added one by one (the second quotes the first), a run."""
    created = api.post(
        "/api/v3/workflows",
        json={
            "name": "AI Blog Series",
            "description": "A series of AI-related blog posts",
            "settings": {"max_nodes": 100, "timeout": 300},
        },
    )
    assert created.status_code == 201, created.text
    workflow = created.json()
    nodes_url = f"/api/v3/workflows/{workflow['id']}/nodes"
    first = api.post(
        nodes_url,
        json={
            "title": "Introduction to AI",
            "content": "An introduction to artificial intelligence.",
            "prompt": "Write an introduction to AI",
            "priority": 2,
            "tags": ["ai", "introduction"],
        },
    )
    assert first.status_code == 201, first.text
    key = first.json()["key"]
    second = api.post(
        nodes_url, json={"title": "Deep dive", "prompt": "Go deeper, building on: {{ nodes." + key + ".content }}"}
    )
    assert second.status_code == 201, second.text
    started = api.post(f"/api/v3/workflows/{workflow['id']}/runs", json={"input": {}})
    assert started.status_code == 202, started.text
    run = wait_for_run(api, started.json()["id"], product)
    return {"workflow": workflow, "nodes": [first.json(), second.json()], "run": run}


@pytest.fixture(scope="module")
def webhook_chain(product, api, receiver) -> dict:
    """Seed body B: an older client's `steps` (a delay, then a webhook), started through /trigger."""
    created = api.post(
        "/api/v3/workflows",
        json={
            "id": "my-workflow",
            "name": "Demo Workflow",
            "steps": [
                {"name": "wait", "type": "delay", "config": {"duration": DELAY_SECONDS}},
                {
                    "name": "notify",
                    "type": "webhook",
                    "config": {
                        "url": receiver.url_for("/notify"),
                        "method": "POST",
                        "headers": {"Content-Type": "application/json"},
                        "body": HELLO,
                    },
                },
            ],
        },
    )
    assert created.status_code == 201, created.text
    workflow = created.json()
    started_at = time.monotonic()
    triggered = api.post("/api/v3/trigger", json={"workflow_id": workflow["id"], "payload": {"user": "demo"}})
    assert triggered.status_code == 202, triggered.text
    run = wait_for_run(api, triggered.json()["run_id"], product)
    return {"workflow": workflow, "run": run, "wall_seconds": time.monotonic() - started_at}


def test_a_registered_user_is_not_staff(api):
    me = api.get("/api/v3/auth/me")
    assert me.status_code == 200, me.text
    assert (me.json()["email"], me.json()["is_staff"]) == (EMAIL, False)
    assert [workspace["role"] for workspace in me.json()["workspaces"]] == ["owner"]


def test_document_nodes_chain_through_the_offline_template_provider(api, document_chain):
    first, second = document_chain["nodes"]
    assert (first["key"], first["type"], first["depends_on"]) == ("introduction_to_ai", "document", [])
    assert (second["type"], second["depends_on"]) == ("document", [first["key"]])
    run = document_chain["run"]
    assert run["status"] == "succeeded", run
    assert [step["status"] for step in run["steps"]] == ["succeeded", "succeeded"]

    documents = documents_of(api, run["id"])
    assert set(documents) == {first["key"], second["key"]}
    introduction, deep_dive = documents[first["key"]], documents[second["key"]]
    assert {introduction["provider"], deep_dive["provider"]} == {"template"}
    # Without a model credential the document is the rendered prompt.
    assert introduction["content"] == "Write an introduction to AI"
    assert deep_dive["content"] == f"Go deeper, building on: {introduction['content']}"


def test_a_delay_then_a_webhook_started_by_an_older_clients_trigger(webhook_chain, receiver):
    workflow, run = webhook_chain["workflow"], webhook_chain["run"]
    assert workflow["slug"] == "my-workflow"
    assert [node["key"] for node in workflow["nodes"]] == ["wait", "notify"]
    assert run["status"] == "succeeded", run
    assert (run["trigger"], run["input"]) == ("api", {"user": "demo"})
    assert elapsed(run) >= DELAY_SECONDS
    assert webhook_chain["wall_seconds"] >= DELAY_SECONDS
    assert run["output"]["notify"] == {"status": 200, "body": {"ok": True}}

    deliveries = [request for request, _ in receiver.log if request.path == "/notify"]
    assert deliveries, "the webhook never reached the receiver"
    assert deliveries[0].headers["Content-Type"] == "application/json"
    assert deliveries[0].get_json() == HELLO


def test_a_websocket_follows_a_run_from_start_to_success(product, api, access, webhook_chain):
    started = api.post(f"/api/v3/workflows/{webhook_chain['workflow']['id']}/runs", json={"input": {}})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    ws_base = product.base.replace("http://", "ws://")

    received = []
    with connect(f"{ws_base}/ws/runs/{run_id}/?token={access}", origin=product.base) as socket:
        assert json.loads(socket.recv(timeout=10)) == {"type": "subscribed", "scope": "run", "run": run_id}
        socket.send(json.dumps({"action": "resume", "after_seq": 0}))  # the shape DESIGN §9 gives
        types = set()
        while not {"resumed", "run.succeeded"} <= types:
            message = json.loads(socket.recv(timeout=DELAY_SECONDS + 10))
            assert message["type"] not in {"error", "run.failed", "run.cancelled"}, message
            received.append(message)
            types.add(message["type"])

    # What arrived live during the resume may come twice; by seq it is the whole log, in order.
    events = {message["seq"]: message for message in received if message["type"] != "resumed"}
    assert list(events) == sorted(events) == list(range(1, len(events) + 1))
    kinds = [event["type"] for event in events.values()]
    assert kinds[:2] == ["run.created", "run.started"]
    assert kinds[-1] == "run.succeeded"
    assert {event["run"] for event in events.values()} == {run_id}
    assert ("step.succeeded", "notify") in [(event["type"], event["step"]) for event in events.values()]


def test_the_dashboard_answers_a_logged_in_user(browser, document_chain):
    for path in (
        "/dashboard/",
        "/dashboard/runs/",
        f"/dashboard/workflows/{document_chain['workflow']['id']}/",
        f"/dashboard/runs/{document_chain['run']['id']}/",
    ):
        page = browser.get(path)
        assert (page.status_code, page.history) == (200, []), (path, page.status_code, page.text[:500])
        assert page.headers["Content-Type"].startswith("text/html")


def test_stopped_and_started_again_on_the_same_var_dir_everything_is_still_there(
    product, api, browser, document_chain, webhook_chain
):
    postmaster = postmaster_pid(product.var_dir)
    assert postmaster is not None and is_alive(postmaster)
    assert_stops_cleanly(product)
    assert postmaster_pid(product.var_dir) is None
    wait_until(lambda: not is_alive(postmaster), timeout=10, message="the embedded PostgreSQL server to exit")
    status = EmbeddedServer(product.var_dir).status()  # what `manage.py dbserver status` prints
    assert (status["running"], status["pid"], status["users"]) == (False, None, [])

    product.start()
    tokens = httpx.post(f"{product.base}/api/v3/auth/token", json={"email": EMAIL, "password": PASSWORD}, timeout=10)
    assert tokens.status_code == 200, tokens.text
    me = api.get("/api/v3/auth/me")  # the token from before the restart still counts
    assert (me.status_code, me.json()["email"], me.json()["is_staff"]) == (200, EMAIL, False)

    listed = {workflow["id"]: workflow for workflow in api.get("/api/v3/workflows").json()["results"]}
    assert listed[document_chain["workflow"]["id"]]["node_count"] == 2
    assert listed[webhook_chain["workflow"]["id"]]["slug"] == "my-workflow"
    for before in (document_chain["run"], webhook_chain["run"]):
        after = api.get(f"/api/v3/runs/{before['id']}").json()
        assert (after["status"], after["finished_at"]) == ("succeeded", before["finished_at"])
    documents = documents_of(api, document_chain["run"]["id"])
    assert set(documents) == {"introduction_to_ai", "deep_dive"}
    assert documents["deep_dive"]["content"] == "Go deeper, building on: Write an introduction to AI"
    assert browser.get("/dashboard/").status_code == 200  # the session outlived the restart

    # And the restarted worker runs the workflow again.
    again = api.post(f"/api/v3/workflows/{document_chain['workflow']['id']}/runs", json={"input": {}})
    assert again.status_code == 202, again.text
    assert wait_for_run(api, again.json()["id"], product)["status"] == "succeeded"
    assert len(documents_of(api, again.json()["id"])) == 2
