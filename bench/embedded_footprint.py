"""What `make run` costs: time to a healthy /health, and memory of both processes, idle and after 100 runs.

    .venv/bin/python bench/embedded_footprint.py [--runs 100]

Starts `manage.py start` (what `make run` runs) on a new var/ directory twice: the first start
initialises the embedded PostgreSQL server, the second finds it (the "warm" start; the virtualenv
exists both times, so neither includes `pip install`). Then, as a registered user, it runs a two-node
document workflow `--runs` times and reads the memory of the server process (Python) and of the
PostgreSQL processes: RSS, and PSS, which splits shared pages (PostgreSQL's shared buffers) among the
processes that map them, so that the PostgreSQL figure is not counted once per backend.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

# Run as a file, this script has bench/ on sys.path, not the project that holds bench/ and the apps.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import PROJECT
from bench.servers import free_port

PASSWORD = "Footprint-passphrase-42"  # noqa: S105 - a throwaway user of a throwaway database


def start(var_dir: Path, port: int) -> tuple[subprocess.Popen, float]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DWC_VAR_DIR=str(var_dir), PORT=str(port), LOG_LEVEL="WARNING", DWC_ADMIN_PASSWORD=PASSWORD)
    started = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "start"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server, time.monotonic() - started
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        time.sleep(0.05)


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)


def memory(server: subprocess.Popen, var_dir: Path) -> dict[str, float]:
    """MiB of RSS and PSS: the server process, and every PostgreSQL process of this data directory."""
    data_dir = str((var_dir / "postgres").resolve())
    postmaster = int((var_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    postgres = [psutil.Process(postmaster), *psutil.Process(postmaster).children(recursive=True)]
    assert Path(postgres[0].cwd()).resolve() == Path(data_dir)
    python = psutil.Process(server.pid)

    def mib(processes, field):
        return sum(getattr(process.memory_full_info(), field) for process in processes) / 2**20

    return {
        "python_rss": mib([python], "rss"),
        "python_pss": mib([python], "pss"),
        "postgres_rss": mib(postgres, "rss"),
        "postgres_pss": mib(postgres, "pss"),
        "postgres_processes": len(postgres),
    }


def run_workflows(base: str, runs: int) -> None:
    email = "footprint@example.com"
    assert httpx.post(f"{base}/api/v3/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    token = httpx.post(f"{base}/api/v3/auth/token", json={"email": email, "password": PASSWORD}).json()["access"]
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    workflow = api.post("/api/v3/workflows", json={"name": "Footprint"}).json()
    api.post(f"/api/v3/workflows/{workflow['id']}/nodes", json={"title": "Intro", "prompt": "About {{ input.n }}"})
    api.post(
        f"/api/v3/workflows/{workflow['id']}/nodes", json={"title": "More", "prompt": "{{ nodes.intro.content }}!"}
    )
    # One batch: single trigger calls are throttled per workflow (DWC_THROTTLE_TRIGGER, 60 a minute).
    started = api.post(
        f"/api/v3/workflows/{workflow['id']}/runs/batch", json={"inputs": [{"n": n} for n in range(runs)]}
    )
    ids = [run["id"] for run in started.json()]
    deadline = time.monotonic() + 300
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for run_id in list(pending):
            if api.get(f"/api/v3/runs/{run_id}").json()["status"] in {"succeeded", "failed", "cancelled"}:
                pending.discard(run_id)
        time.sleep(0.2)
    statuses = {api.get(f"/api/v3/runs/{run_id}").json()["status"] for run_id in ids}
    assert statuses == {"succeeded"}, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="dwc-footprint-")) / "var"
    try:
        port = free_port()
        server, first = start(var_dir, port)
        stop(server)
        server, warm = start(var_dir, port)
        print(f"start to /health: first (initdb) {first:.2f} s, warm {warm:.2f} s")
        time.sleep(3)
        idle = memory(server, var_dir)
        run_workflows(f"http://127.0.0.1:{port}", args.runs)
        time.sleep(3)
        after = memory(server, var_dir)
        for label, figures in (("idle", idle), (f"after {args.runs} runs", after)):
            print(
                f"{label:>16}: python RSS {figures['python_rss']:.0f} MiB (PSS {figures['python_pss']:.0f}), "
                f"postgres RSS {figures['postgres_rss']:.0f} MiB (PSS {figures['postgres_pss']:.0f}) "
                f"in {figures['postgres_processes']} processes"
            )
        stop(server)
    finally:
        shutil.rmtree(var_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
