"""Webhook throughput in the distributed mode: webhook → transform → transform, answered with ?wait=10.

    .venv/bin/python bench/webhook_throughput.py [--seconds 20]

Starts daphne (`manage.py serve`) and 2 Celery worker processes on PostgreSQL and Redis, then posts
at concurrency 10 and 50 for the given time each. Prints completed runs per second and p50/p95
latency. BENCH_DATABASE_URL and BENCH_REDIS_URL override the defaults.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import configure, create_database
from bench.servers import free_port, start, wait_for_health

# This process logs warnings whatever LOG_LEVEL says, the servers errors only (bench.servers.start).
# The servers' environment lifts the per-token webhook rate: measure serving, not throttling.
DATABASE_URL, _ = configure()
os.environ["LOG_LEVEL"] = "WARNING"
ENV = {**os.environ, "DWC_WEBHOOK_RATE_PER_MINUTE": "1000000"}


async def drive(url: str, concurrency: int, seconds: float) -> tuple[int, list[float], dict[str, int]]:
    import httpx

    latencies: list[float] = []
    failures: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def one_client(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = await client.post(url, json={"n": 2})
            if answer.status_code == 200 and answer.json().get("status") == "succeeded":
                latencies.append(time.perf_counter() - started)
            else:
                kind = str(answer.status_code) if answer.status_code != 200 else answer.json().get("status", "?")
                failures[kind] = failures.get(kind, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(one_client(client) for _ in range(concurrency)))
    return len(latencies), latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    options = parser.parse_args()

    create_database(DATABASE_URL)
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.services import user_register
    from workflows.services.webhooks import webhook_create
    from workflows.services.workflows import workflow_create

    call_command("migrate", verbosity=0)
    user = user_register(email=f"hook-{uuid.uuid4().hex[:8]}@example.com", password=uuid.uuid4().hex + "-Aa1")
    workspace = user.memberships.get().workspace
    nodes = [
        {"key": "first", "type": "transform", "config": {"values": {"x": "{{ input.n * 2 }}"}}},
        {"key": "second", "type": "transform", "config": {"values": {"y": "{{ nodes.first.output.x }}"}}},
    ]
    workflow = workflow_create(
        actor=user, workspace=workspace, data={"name": "Hook bench", "status": "active", "nodes": nodes}
    )
    _, token = webhook_create(workflow=workflow, actor=user)

    port = free_port()
    python = sys.executable
    processes = [start([python, "manage.py", "serve", "--port", str(port)], "server", ENV)]
    for index in range(2):
        worker = [
            python,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--hostname",
            f"hookbench{index}@%h",
        ]
        processes.append(start(worker, f"worker{index}", ENV))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, server="the server")
        time.sleep(3)  # workers connect
        url = f"{base}/hooks/{token}/?wait=10"
        for concurrency in (10, 50):
            done, latencies, failures = asyncio.run(drive(url, concurrency, options.seconds))
            p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
            p95 = statistics.quantiles(latencies, n=20)[18] * 1000 if len(latencies) >= 20 else float("nan")
            print(
                f"concurrency {concurrency}: {done / options.seconds:.1f} runs/s completed, "
                f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, not completed within the wait (by answer): {failures or 'none'}"
            )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


if __name__ == "__main__":
    main()
