"""gunicorn's sync worker (the old command line) against config/gunicorn.py's thread pool (gthread).

    .venv/bin/python bench/http_threads.py [--seconds 10]

Starts each on PostgreSQL with 2 worker processes, then (1) drives GET /health and GET /api/v3/auth/me
at concurrency 10 for the given time each: requests per second and p50/p95 latency; (2) holds a row lock that two
requests wait on for 3 s and times GET /health meanwhile. BENCH_DATABASE_URL and BENCH_REDIS_URL
override the defaults, as in bench/webhook_throughput.py.
"""

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import configure, create_database
from bench.servers import free_port, start, wait_for_health

# As in bench/webhook_throughput.py: this process logs warnings whatever LOG_LEVEL says, the servers
# errors only (bench.servers.start), and their environment lifts the rates that would throttle the
# load: measure serving, not throttling.
DATABASE_URL, _ = configure()
os.environ["LOG_LEVEL"] = "WARNING"
ENV = {**os.environ, "DWC_WEBHOOK_RATE_PER_MINUTE": "1000000", "DWC_THROTTLE_USER": "100000000/hour"}

VARIANTS = {
    "sync (old)": ["config.wsgi", "--workers", "2"],
    "gthread (config/gunicorn.py)": ["-c", "config/gunicorn.py", "config.wsgi", "--workers", "2"],
}
LOCK_SECONDS = 3


async def drive(url: str, headers: dict, concurrency: int, seconds: float) -> list[float]:
    import httpx

    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def one_client(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = await client.get(url, headers=headers)
            assert answer.status_code == 200, answer.text
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(one_client(client) for _ in range(concurrency)))
    return latencies


def health_while_two_requests_wait(base: str, headers: dict, run_id) -> float:
    import httpx
    from django.db import transaction

    from workflows.models import Run

    waiting = []
    with transaction.atomic():
        Run.objects.select_for_update().get(pk=run_id)
        for _ in range(2):
            post = threading.Thread(target=lambda: httpx.post(f"{base}/api/v3/runs/{run_id}/cancel", headers=headers))
            post.start()
            waiting.append(post)
        time.sleep(0.5)
        started = time.perf_counter()
        health = threading.Thread(target=lambda: httpx.get(f"{base}/health", timeout=60))
        health.start()
        health.join(LOCK_SECONDS - 0.5)  # then the lock goes, and whatever waited behind it runs
    health.join()
    elapsed = time.perf_counter() - started
    for post in waiting:
        post.join()
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    options = parser.parse_args()

    create_database(DATABASE_URL)
    import django

    django.setup()
    import httpx
    from django.core.management import call_command

    from accounts.services import user_register
    from workflows.services.workflows import workflow_create

    call_command("migrate", verbosity=0)
    password = uuid.uuid4().hex + "-Aa1"
    user = user_register(email=f"threads-{uuid.uuid4().hex[:8]}@example.com", password=password)
    node = {"key": "first", "type": "transform", "config": {"values": {"x": "1"}}}
    data = {"name": "Threads bench", "status": "active", "nodes": [node]}
    workflow = workflow_create(actor=user, workspace=user.memberships.get().workspace, data=data)

    for name, args in VARIANTS.items():
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start([f"{sys.prefix}/bin/gunicorn", *args, "--bind", f"127.0.0.1:{port}"], "gunicorn", ENV)
        try:
            wait_for_health(base, server="gunicorn")
            tokens = httpx.post(f"{base}/api/v3/auth/token", json={"email": user.email, "password": password})
            headers = {"Authorization": f"Bearer {tokens.json()['access']}"}
            for path in ("/health", "/api/v3/auth/me"):
                asyncio.run(drive(f"{base}{path}", headers, 10, 2))  # warm every worker and thread
                latencies = asyncio.run(drive(f"{base}{path}", headers, 10, options.seconds))
                p50 = statistics.median(latencies) * 1000
                p95 = statistics.quantiles(latencies, n=20)[18] * 1000
                rate = len(latencies) / options.seconds
                print(f"{name}: GET {path} at concurrency 10: {rate:.0f} req/s, p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            run = httpx.post(f"{base}/api/v3/workflows/{workflow.pk}/runs", json={"input": {}}, headers=headers)
            stalled = health_while_two_requests_wait(base, headers, run.json()["id"])
            print(f"{name}: GET /health while 2 requests wait on a lock: {stalled:.0f} ms")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
