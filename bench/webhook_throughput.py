"""Webhook throughput in the distributed mode: webhook → transform → transform, answered with ?wait=10.

    .venv/bin/python bench/webhook_throughput.py [--seconds 20]

Starts daphne (`manage.py serve`) and 2 Celery worker processes on PostgreSQL and Redis, then posts
at concurrency 10 and 50 for the given time each. Prints completed runs per second and p50/p95
latency. BENCH_DATABASE_URL and BENCH_REDIS_URL override the defaults.
"""

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dwc_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "config.settings.base",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "LOG_LEVEL": "WARNING",
    "DWC_WEBHOOK_RATE_PER_MINUTE": "1000000",
}
os.environ.update({key: ENV[key] for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "LOG_LEVEL")})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(args: list[str], name: str) -> subprocess.Popen:
    log = open(Path(tempfile.gettempdir()) / f"dwc-bench-{name}.log", "w")  # noqa: SIM115
    return subprocess.Popen(args, cwd=PROJECT, env={**ENV, "LOG_LEVEL": "ERROR"}, stdout=log, stderr=subprocess.STDOUT)


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

    from bench.engine_overhead import create_database

    create_database()
    import django

    django.setup()
    import httpx
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
    processes = [start([python, "manage.py", "serve", "--port", str(port)], "server")]
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
        processes.append(start(worker, f"worker{index}"))
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            time.sleep(0.2)
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
