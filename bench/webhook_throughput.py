"""Webhook throughput in the distributed mode: webhook → transform → transform, answered with ?wait=10.

    .venv/bin/python bench/webhook_throughput.py [--seconds 20] [--compare REV] [--rounds 2]

Starts daphne (`manage.py serve`) and 2 Celery worker processes on PostgreSQL and Redis, then posts
at concurrency 10 and 50 for the given time each. Prints completed runs per second, p50/p95
latency, and the CPU time the server and the workers spent per completed run: on a machine shared
with other work the CPU per run holds still where runs/s and latencies do not.
BENCH_DATABASE_URL and BENCH_REDIS_URL override the defaults.

`--compare REV` measures the code of git revision REV too, checked out into a temporary worktree
(removed at the end), in rounds that alternate old and new (the first to go changes each round),
so that both meet the same load on a shared machine. Only one side's server and workers run at a
time, on the same database, Redis and webhook; REV must have this checkout's database schema. It
prints every round with the load average, then per side and concurrency the runs/s and p50/p95 over
all rounds, and the ratio new/old.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import PROJECT, configure, create_database
from bench.servers import free_port, start, wait_for_health

# This process logs warnings whatever LOG_LEVEL says, the servers errors only (bench.servers.start).
# The servers' environment lifts the per-token webhook rate: measure serving, not throttling.
DATABASE_URL, _ = configure()
os.environ["LOG_LEVEL"] = "WARNING"
ENV = {**os.environ, "DWC_WEBHOOK_RATE_PER_MINUTE": "1000000"}
CONCURRENCIES = (10, 50)


@dataclass
class Tally:
    """What one side answered at one concurrency, over every round."""

    seconds: float = 0
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    server_cpu: float = 0  # seconds
    workers_cpu: float = 0

    def add(self, seconds: float, driven: "Driven") -> None:
        self.seconds += seconds
        self.latencies += driven.latencies
        for kind, count in driven.failures.items():
            self.failures[kind] = self.failures.get(kind, 0) + count
        self.server_cpu += driven.server_cpu
        self.workers_cpu += driven.workers_cpu

    def runs_per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        latencies = self.latencies
        p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
        p95 = statistics.quantiles(latencies, n=20)[18] * 1000 if len(latencies) >= 20 else float("nan")
        runs = max(len(latencies), 1)
        return (
            f"{self.runs_per_second():.1f} runs/s completed, p50 {p50:.0f} ms, p95 {p95:.0f} ms, CPU per run: "
            f"server {self.server_cpu / runs * 1000:.1f} ms, workers {self.workers_cpu / runs * 1000:.1f} ms, "
            f"not completed within the wait (by answer): {self.failures or 'none'}"
        )

    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[18] if len(self.latencies) >= 20 else float("nan")


@dataclass
class Driven:
    latencies: list[float]
    failures: dict[str, int]
    server_cpu: float = 0
    workers_cpu: float = 0


def cpu_seconds(process: subprocess.Popen) -> float:
    import psutil

    times = psutil.Process(process.pid).cpu_times()
    return times.user + times.system


async def drive(url: str, concurrency: int, seconds: float) -> tuple[list[float], dict[str, int]]:
    import httpx

    latencies: list[float] = []
    failures: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def one_client(client: httpx.AsyncClient) -> None:
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
    return latencies, failures


def seed() -> str:
    """A user, the workflow and its webhook, in the benchmark's database; returns the webhook's token."""
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
    return token


def measure(tree: Path, label: str, token: str, seconds: float) -> dict[int, Driven]:
    """Start the server and 2 workers of the checkout `tree`, drive them at each concurrency, stop them."""
    port = free_port()
    python = sys.executable
    processes = [start([python, "manage.py", "serve", "--port", str(port)], f"server-{label}", ENV, cwd=tree)]
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
        processes.append(start(worker, f"worker{index}-{label}", ENV, cwd=tree))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, server="the server")
        time.sleep(3)  # workers connect
        url = f"{base}/hooks/{token}/?wait=10"
        results = {}
        for concurrency in CONCURRENCIES:
            before = [cpu_seconds(process) for process in processes]
            driven = Driven(*asyncio.run(drive(url, concurrency, seconds)))
            spent = [cpu_seconds(process) - start for process, start in zip(processes, before, strict=True)]
            driven.server_cpu, driven.workers_cpu = spent[0], sum(spent[1:])
            results[concurrency] = driven
        return results
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--compare", metavar="REV", help="also measure git revision REV, alternately")
    parser.add_argument("--rounds", type=int, default=2, help="with --compare: rounds of old and new")
    options = parser.parse_args()
    token = seed()

    if not options.compare:
        for concurrency, driven in measure(PROJECT, "new", token, options.seconds).items():
            tally = Tally()
            tally.add(options.seconds, driven)
            print(f"concurrency {concurrency}: {tally.line()}")
        print(load())
        return

    old_tree = Path(tempfile.mkdtemp(prefix="dwc-bench-old-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), options.compare], cwd=PROJECT, check=True)
    sides = {"old": old_tree, "new": PROJECT}
    tallies = {(side, concurrency): Tally() for side in sides for concurrency in CONCURRENCIES}
    rates: dict[tuple[str, int], list[float]] = {key: [] for key in tallies}
    try:
        for round_number in range(options.rounds):
            order = ["old", "new"] if round_number % 2 == 0 else ["new", "old"]
            for side in order:
                results = measure(sides[side], side, token, options.seconds)
                for concurrency, driven in results.items():
                    tally = Tally()
                    tally.add(options.seconds, driven)
                    tallies[side, concurrency].add(options.seconds, driven)
                    rates[side, concurrency].append(tally.runs_per_second())
                    print(f"round {round_number + 1} {side} concurrency {concurrency}: {tally.line()}; {load()}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=PROJECT, check=False)
    print(f"\nall rounds ({options.compare} is old, this checkout new):")
    for concurrency in CONCURRENCIES:
        old, new = tallies["old", concurrency], tallies["new", concurrency]
        print(f"concurrency {concurrency} old: {old.line()}")
        print(f"concurrency {concurrency} new: {new.line()}")
        ratio = new.runs_per_second() / old.runs_per_second() if old.runs_per_second() else float("nan")
        cpu_ratio = (new.server_cpu / max(len(new.latencies), 1)) / (old.server_cpu / max(len(old.latencies), 1))
        per_round = [
            f"{new_rate / old_rate:.2f}"
            for old_rate, new_rate in zip(rates["old", concurrency], rates["new", concurrency], strict=True)
        ]
        print(
            f"concurrency {concurrency}: runs/s new/old {ratio:.2f} (by round: {', '.join(per_round)}), "
            f"p95 {old.p95() * 1000:.0f} ms old → {new.p95() * 1000:.0f} ms new, "
            f"server CPU per run new/old {cpu_ratio:.2f}"
        )


if __name__ == "__main__":
    main()
