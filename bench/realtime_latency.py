"""Run event delivery latency, from a worker's transaction to websocket clients (distributed mode).

    .venv/bin/python bench/realtime_latency.py

Starts daphne and 2 Celery worker processes on PostgreSQL and Redis, and a workflow of 10 chained
delay nodes of 0 s: not inline, so every step is claimed and recorded by a worker in transactions
of its own and its events are published by both workers along the run (33 events a run). Runs are
started one after another through daphne's HTTP API (deployed, gunicorn serves it: a few requests a
phase) until at least 200 events have arrived, (1) with one client on /ws/dashboard/, (2) with 100
clients on /ws/dashboard/ in this process (asyncio).

Latency = arrival at the client - the event's `ts`. `ts` is RunEvent.created_at, taken in the
transaction just before it commits: the figure includes the rest of that transaction and its
COMMIT, so it overstates delivery slightly. Prints p50/p95/p99 next to the targets.
Needs PostgreSQL and Redis on localhost (BENCH_DATABASE_URL, BENCH_REDIS_URL override them).
"""

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import PROJECT, configure, create_database
from bench.servers import free_port

DATABASE_URL, REDIS_URL = configure(database="dwc_bench_rt", redis_db=7)
VENV_BIN = Path(sys.executable).parent

EVENTS_WANTED = 200
MANY_CLIENTS = 100
TARGET_P95_MS = {1: 50, MANY_CLIENTS: 200}
CHAIN_LENGTH = 10
RUN_TIMEOUT_SECONDS = 30


def start_processes(port: int, workers: int) -> list[subprocess.Popen]:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": PROJECT}
    daphne = [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
    processes = [subprocess.Popen(daphne, **quiet)]
    for index in range(workers):
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"]
        args += ["--queues", "engine,calls,generation,notifications", "--without-mingle", "--without-gossip"]
        args += ["--hostname", f"bench-rt{index}@%h", "--loglevel", "WARNING"]
        processes.append(subprocess.Popen(args, **quiet))
    return processes


def wait_for_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class Client:
    """One websocket on /ws/dashboard/: what arrived, when (time.time()), parsed only after the run."""

    def __init__(self, connection):
        self.connection = connection
        self.arrivals: list[tuple[float, str]] = []
        self.finished_runs: dict[str, asyncio.Event] = {}

    async def listen(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                raw = await self.connection.recv()
                self.arrivals.append((time.time(), raw))
                if '"run.succeeded"' in raw or '"run.failed"' in raw:
                    self.finished(json.loads(raw)["run"]).set()
        except ConnectionClosed:
            pass

    def finished(self, run_id: str) -> asyncio.Event:
        return self.finished_runs.setdefault(run_id, asyncio.Event())

    def events(self) -> list[tuple[float, dict]]:
        parsed = [(arrived, json.loads(raw)) for arrived, raw in self.arrivals]
        return [(arrived, event) for arrived, event in parsed if "seq" in event]


async def watch(
    base: str, token: str, workflow_id: str, clients: int, wanted: int = EVENTS_WANTED
) -> tuple[list[Client], list[str]]:
    """Connect `clients` dashboards, start runs one after another until `wanted` events arrived at each."""
    import httpx
    from websockets.asyncio.client import connect

    ws_url = f"{base.replace('http://', 'ws://')}/ws/dashboard/?token={token}"
    # Connected a few at a time: a burst of 100 handshakes is not what is measured here.
    connections = []
    for start in range(0, clients, 20):
        batch = [connect(ws_url, origin=base, max_queue=None) for _ in range(min(20, clients - start))]
        connections += await asyncio.gather(*batch)
    for connection in connections:
        hello = json.loads(await connection.recv())
        assert hello["type"] == "subscribed", hello
    watchers = [Client(connection) for connection in connections]
    listeners = [asyncio.create_task(watcher.listen()) for watcher in watchers]
    run_ids = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
        while min(len(watcher.arrivals) for watcher in watchers) < wanted:
            answer = await api.post(f"/api/v3/workflows/{workflow_id}/runs", json={"input": {}})
            assert answer.status_code == 202, answer.text
            run_id = answer.json()["id"]
            run_ids.append(run_id)
            await asyncio.wait_for(
                asyncio.gather(*(watcher.finished(run_id).wait() for watcher in watchers)), RUN_TIMEOUT_SECONDS
            )
    await asyncio.sleep(0.5)  # anything late (a duplicate, an out-of-order event) arrives too
    for connection in connections:
        await connection.close()
    await asyncio.gather(*listeners)
    return watchers, run_ids


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(label: str, clients: int, watchers: list[Client], run_ids: list[str]) -> None:
    from workflows.models import RunEvent

    expected = set(RunEvent.objects.filter(run_id__in=run_ids).values_list("run_id", "seq"))
    expected = {(str(run_id), seq) for run_id, seq in expected}
    latencies_ms, complete, disordered = [], 0, 0
    for watcher in watchers:
        seen, last_seq = set(), {}
        for arrived, event in watcher.events():
            key = (event["run"], event["seq"])
            if key not in expected:
                continue
            if key in seen or event["seq"] != last_seq.get(event["run"], 0) + 1:
                disordered += 1
            seen.add(key)
            last_seq[event["run"]] = event["seq"]
            latencies_ms.append((arrived - datetime.fromisoformat(event["ts"]).timestamp()) * 1000)
        complete += seen == expected
    p50, p95, p99 = (percentile(latencies_ms, fraction) for fraction in (0.50, 0.95, 0.99))
    verdict = "met" if p95 <= TARGET_P95_MS[clients] else "MISSED"
    print(f"{label}: {len(expected)} events of {len(run_ids)} runs, {len(latencies_ms)} deliveries")
    print(
        f"  latency p50 {p50:.1f} ms, p95 {p95:.1f} ms (target ≤ {TARGET_P95_MS[clients]} ms: {verdict}), "
        f"p99 {p99:.1f} ms, max {max(latencies_ms):.1f} ms, mean {statistics.fmean(latencies_ms):.1f} ms"
    )
    print(f"  clients that got every event: {complete} of {clients}; out of order or repeated: {disordered}")


def main() -> None:
    create_database(DATABASE_URL)
    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.services import user_register
    from workflows.services.workflows import workflow_create

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(REDIS_URL).flushdb()
    user = user_register(
        email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password=uuid.uuid4().hex + "-Aa1", name="Bench"
    )
    workspace = user.memberships.get().workspace
    nodes = [{"key": f"n{i}", "type": "delay", "config": {"seconds": 0}} for i in range(CHAIN_LENGTH)]
    workflow = workflow_create(actor=user, workspace=workspace, data={"name": "Delay chain", "nodes": nodes})
    token = str(AccessToken.for_user(user))

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes = start_processes(port, workers=2)
    try:
        wait_for_http(f"{base}/health")
        time.sleep(4)  # let both workers connect
        asyncio.run(watch(base, token, str(workflow.pk), 1, wanted=1))  # warm up daphne, the workers and their caches
        print("Latency = arrival - event ts; ts is taken just before the event's transaction commits (a proxy).")
        for clients, label in ((1, "(1) 1 client on /ws/dashboard/"), (MANY_CLIENTS, "(2) 100 clients")):
            watchers, run_ids = asyncio.run(watch(base, token, str(workflow.pk), clients))
            report(label, clients, watchers, run_ids)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


if __name__ == "__main__":
    main()
