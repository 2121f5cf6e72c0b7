"""What the product's API costs per request, against a bare DRF view served the same way (issue 19).

    .venv/bin/python bench/api_overhead.py [--seconds 5] [--rounds 3] [--concurrency 10] [--only CASE]
    .venv/bin/python bench/api_overhead.py --queries     # SQL statements of one request per case, no servers
    .venv/bin/python bench/api_overhead.py --compare REV # also the product at git revision REV, every round

Starts two gunicorns with config/gunicorn.py (gthread, 2 worker processes, DWC_HTTP_THREADS threads each)
on production settings, PostgreSQL and Redis: one serving the product (config.settings.production),
one serving a bare DRF view (bench/bare_site.py through bench/bare_settings.py, production settings
with only ROOT_URLCONF changed; that URLconf also holds the admin site's URLs, which the IP allow-list
middleware reverses on every request). Both have the same middleware, apps, REST_FRAMEWORK defaults (renderers,
exception handler), database and cache, and get the same environment, so the ratio product/bare is
what the product's views, authentication, permissions, throttles, queries and serializers add, not
a different middleware stack. The bare view has no authentication, permission or throttle classes
and returns {"id": ..., "name": "bare", "ok": true}.

Seeded through the project's services in this process (django.setup() on the same DATABASE_URL): a
user, a workflow of 5 nodes and 50 more workflows in its workspace, one run of a 10-node transform
chain (executed to completion by a Celery worker started for that only) and a read-scoped API key
(sent as X-API-Key). The JWT comes from the product's own POST /api/v3/auth/token.

Cases (--only takes the name): workflow-detail GET /api/v3/workflows/{id}; workflow-list
GET /api/v3/workflows?page_size=50; run-detail GET /api/v3/runs/{id} (10 steps); auth-me
GET /api/v3/auth/me; health GET /health; apikey-workflow-detail GET /api/v3/workflows/{id} with the
API key. Each case is driven for --rounds rounds of --seconds at --concurrency, alternating with a
round of the bare view (product first in odd rounds, bare first in even ones), by the same in-process
load generator: one thread and one keep-alive httpx.Client per concurrent client.

With --compare REV, a third gunicorn serves the product as it was at REV (checked out into a temporary
git worktree, on the same database: REV must not need other migrations), driven in every round
beside the other two (the order rotating), and printed under each case as "before (REV)".

Printed per case: req/s (median of rounds), p50 and p95 (ms, over all rounds' requests), non-2xx
answers, the server's CPU per request (ms; its gunicorn workers' user+system time over the requests
answered, which holds steadier than req/s on a shared machine; PostgreSQL's and Redis's CPU is not in
it), the SQL queries one request makes (counted in-process with django.test.Client and
CaptureQueriesContext, after one warm-up request), and the ratios product/bare (medians of the
rounds' ratios, each round paired with the bare round next to it): time per request (bare req/s /
product req/s), p50, and server CPU per request. The load generator runs on the same CPUs as the
servers: its own CPU per request on the bare view is printed too, to tell whether it is the bottleneck.

Every request carries X-Forwarded-Proto: https, as the TLS-terminating proxy production settings
expect sends it (otherwise SECURE_SSL_REDIRECT answers 301). The access log is off on both servers
(LOG_LEVEL=WARNING), the per-user throttle rate is raised out of reach (DWC_THROTTLE_USER) but the
throttle still counts in Redis. SECRET_KEY and CREDENTIALS_KEY are generated per invocation.
BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/dwc_bench_api, created if missing) and
BENCH_REDIS_URL (default redis://127.0.0.1:6379/12, flushed at the start) override the defaults.
Exits non-zero if a server does not start or a case answers anything but 2xx.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.environment import PROJECT, configure, create_database
from bench.servers import free_port

# The base settings configure() names are replaced by production's in ENV below.
DATABASE_URL, REDIS_URL = configure(database="dwc_bench_api", redis_db=12)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "SECRET_KEY": secrets.token_urlsafe(50),
    "CREDENTIALS_KEY": _fernet_key(),
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "LOG_LEVEL": "WARNING",
    # Measure serving, not throttling: the throttle still runs (and counts in Redis), it never refuses.
    "DWC_THROTTLE_USER": "100000000/hour",
    # The access token must outlive a full-length run.
    "JWT_ACCESS_MINUTES": "600",
}
os.environ.update(ENV)

# The proxy's header: production settings redirect plain HTTP to https:// without it.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
BARE_SETTINGS = "bench.bare_settings"
START_TIMEOUT = 60
RUN_TIMEOUT = 60
WORKFLOW_NODES = 5
MORE_WORKFLOWS = 50
RUN_STEPS = 10


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    auth: str  # "jwt", "api-key" or "none"


@dataclass
class Round:
    requests: int
    seconds: float
    latencies: list[float]
    failures: int
    failure_sample: str
    server_cpu: float  # seconds of the server's worker processes
    driver_cpu: float  # seconds of this process

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def server_cpu_per_request(self) -> float:
        return self.server_cpu / max(self.requests, 1)

    @property
    def driver_cpu_per_request(self) -> float:
        return self.driver_cpu / max(self.requests, 1)


@dataclass
class Result:
    product: list[Round] = field(default_factory=list)
    bare: list[Round] = field(default_factory=list)
    before: list[Round] = field(default_factory=list)  # the product at --compare's revision


@dataclass
class Server:
    name: str
    base: str
    process: subprocess.Popen
    log: Path

    def worker_cpu(self) -> float:
        import psutil

        total = 0.0
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-characters:]
        except OSError:
            return "(no log)"


def fail(message: str) -> None:
    sys.exit(f"error: {message}")


# --- seeding ---------------------------------------------------------------------------------


def start_engine_worker() -> tuple[subprocess.Popen, Path]:
    """One Celery worker on every queue, only to execute the seeded run."""
    log = Path(tempfile.gettempdir()) / "dwc-bench-api-worker.log"
    args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"]
    args += ["--queues", "engine,calls,generation,notifications", "--without-mingle", "--without-gossip"]
    args += ["--hostname", f"apibench-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "WARNING"]
    with open(log, "w") as output:
        worker = subprocess.Popen(args, cwd=PROJECT, env=ENV, stdout=output, stderr=subprocess.STDOUT)
    return worker, log


def seed() -> dict:
    """The user, workflows, run and API key the cases read, through the project's services."""
    import redis
    from django.core.management import call_command

    from accounts.api_keys import api_key_create
    from accounts.services import user_register
    from workflows.models import Run
    from workflows.services.runs import run_trigger
    from workflows.services.workflows import workflow_create

    redis.Redis.from_url(REDIS_URL).flushdb()  # leftover messages, cache entries and throttle counts
    call_command("migrate", verbosity=0)
    worker, worker_log = start_engine_worker()
    try:
        password = uuid.uuid4().hex + "-Aa1"
        user = user_register(email=f"api-{uuid.uuid4().hex[:8]}@example.com", password=password, name="API bench")
        workspace = user.memberships.get().workspace

        def transform_chain(count: int) -> list[dict]:
            # Without depends_on each node follows the one before it.
            return [
                {"key": f"step{index}", "type": "transform", "config": {"values": {"i": str(index)}}}
                for index in range(1, count + 1)
            ]

        data = {"name": "API bench", "description": "Five nodes", "status": "active"}
        workflow = workflow_create(actor=user, workspace=workspace, data={**data, "nodes": transform_chain(5)})
        for index in range(MORE_WORKFLOWS):
            more = {"name": f"API bench {index:02d}", "description": f"Workflow {index}", "status": "active"}
            workflow_create(actor=user, workspace=workspace, data={**more, "nodes": transform_chain(2)})
        chain = workflow_create(
            actor=user,
            workspace=workspace,
            data={"name": "API bench chain", "status": "active", "nodes": transform_chain(RUN_STEPS)},
        )
        # The chain is one of the 51+ workflows too: the list's first page of 50 stays full.
        run, _ = run_trigger(workflow=chain, input={}, trigger=Run.Trigger.API, actor=user)
        deadline = time.monotonic() + RUN_TIMEOUT
        while run.status not in Run.FINISHED:
            if worker.poll() is not None:
                fail(
                    f"the Celery worker exited (status {worker.returncode}); its log, {worker_log}:\n"
                    + worker_log.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() > deadline:
                fail(f"the seeded run is still {run.status} after {RUN_TIMEOUT} s; worker log: {worker_log}")
            time.sleep(0.1)
            run.refresh_from_db()
    finally:
        worker.terminate()
        worker.wait(30)
    steps = run.steps.count()
    if run.status != Run.Status.SUCCEEDED or steps != RUN_STEPS:
        fail(f"the seeded run ended {run.status} with {steps} steps (expected succeeded, {RUN_STEPS})")
    _, raw_key = api_key_create(user=user, name="API bench", scopes=["read"])
    return {"user": user, "password": password, "workflow": workflow, "run": run, "api_key": raw_key}


def cases_for(world: dict) -> list[Case]:
    workflow, run = world["workflow"].pk, world["run"].pk
    return [
        Case("workflow-detail", f"/api/v3/workflows/{workflow}", "jwt"),
        Case("workflow-list", "/api/v3/workflows?page_size=50", "jwt"),
        Case("run-detail", f"/api/v3/runs/{run}", "jwt"),
        Case("auth-me", "/api/v3/auth/me", "jwt"),
        Case("health", "/health", "none"),
        Case("apikey-workflow-detail", f"/api/v3/workflows/{workflow}", "api-key"),
    ]


CASE_NAMES = [
    "workflow-detail",
    "workflow-list",
    "run-detail",
    "auth-me",
    "health",
    "apikey-workflow-detail",
]


def headers_for(case: Case, world: dict) -> dict[str, str]:
    if case.auth == "jwt":
        return {**PROXY_HEADERS, "Authorization": f"Bearer {world['access']}"}
    if case.auth == "api-key":
        from accounts.api.authentication import API_KEY_HEADER

        return {**PROXY_HEADERS, API_KEY_HEADER: world["api_key"]}
    return dict(PROXY_HEADERS)


# --- queries, in-process -----------------------------------------------------------------------


def count_queries(path: str, headers: dict[str, str], urlconf: str | None = None) -> tuple[int, list[str], int]:
    """(queries, their SQL, status) of one GET, after a warm-up GET (caches, the key's last use)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    client = Client(headers={"Host": "127.0.0.1", **headers})
    overrides = {"ROOT_URLCONF": urlconf} if urlconf else {}
    with override_settings(**overrides):
        client.get(path)
        with CaptureQueriesContext(connection) as captured:
            answer = client.get(path)
    return len(captured.captured_queries), [query["sql"] for query in captured.captured_queries], answer.status_code


def access_token_in_process(world: dict) -> str:
    """The product's own token endpoint, called in-process (for --queries, which starts no server)."""
    from django.test import Client

    client = Client(headers={"Host": "127.0.0.1", **PROXY_HEADERS})
    answer = client.post(
        "/api/v3/auth/token",
        {"email": world["user"].email, "password": world["password"]},
        content_type="application/json",
    )
    if answer.status_code != 200:
        fail(f"POST /api/v3/auth/token answered {answer.status_code}: {answer.content[:300]!r}")
    return answer.json()["access"]


# --- servers and load --------------------------------------------------------------------------


def checkout(revision: str) -> Path:
    """The project at `revision`, in a temporary git worktree (removed at the end)."""
    tree = Path(tempfile.mkdtemp(prefix="dwc-bench-before-")) / "project"
    try:
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), revision],
            cwd=PROJECT,
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as error:
        fail(f"--compare {revision}: git worktree add failed: {error.stderr.strip()}")
    return tree


def start_server(name: str, settings_module: str, ready_path: str, tree: Path = PROJECT) -> Server:
    """gunicorn serving the project in `tree` (this checkout, or --compare's revision)."""
    import httpx

    port = free_port()
    log = Path(tempfile.gettempdir()) / f"dwc-bench-api-{name}.log"
    args = [f"{sys.prefix}/bin/gunicorn", "-c", "config/gunicorn.py", "config.wsgi", "--workers", "2"]
    args += ["--bind", f"127.0.0.1:{port}"]
    with open(log, "w") as output:
        process = subprocess.Popen(
            args,
            cwd=tree,
            env={**ENV, "DJANGO_SETTINGS_MODULE": settings_module},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        state = ""
        try:
            answer = httpx.get(server.base + ready_path, headers=PROXY_HEADERS, timeout=2)
            if answer.status_code == 200:
                return server
            state = f"answered {answer.status_code}"  # it is up: waiting longer would not change that
        except httpx.TransportError:
            if process.poll() is not None:
                state = f"exited with status {process.returncode}"
            elif time.monotonic() > deadline:
                state = f"did not answer within {START_TIMEOUT} s"
        if state:
            stop_server(server)
            fail(
                f"the {name} server (gunicorn, {settings_module}) {state} on GET {ready_path}; "
                f"the end of its log, {log}:\n{server.log_tail()}"
            )
        time.sleep(0.2)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def drive(server: Server, path: str, headers: dict[str, str], concurrency: int, seconds: float) -> Round:
    """`concurrency` threads, each with its own keep-alive httpx.Client, GET `path` for `seconds`."""
    import httpx

    barrier = threading.Barrier(concurrency + 1)
    results: list[tuple[list[float], int, str, float]] = [([], 0, "", 0.0)] * concurrency

    def one_client(index: int) -> None:
        latencies: list[float] = []
        failures, sample = 0, ""
        with httpx.Client(base_url=server.base, headers=headers, timeout=60) as client:
            barrier.wait()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    answer = client.get(path)
                    status, text = answer.status_code, answer.text
                except httpx.HTTPError as error:
                    status, text = 0, f"{type(error).__name__}: {error}"
                latencies.append(time.perf_counter() - started)
                if not 200 <= status < 300:
                    failures += 1
                    sample = sample or f"{status} {text[:300]}"
        results[index] = (latencies, failures, sample, time.perf_counter())

    threads = [threading.Thread(target=one_client, args=(index,), daemon=True) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    server_cpu, driver_cpu = server.worker_cpu(), time.process_time()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    server_cpu, driver_cpu = server.worker_cpu() - server_cpu, time.process_time() - driver_cpu
    latencies = [latency for result in results for latency in result[0]]
    return Round(
        requests=len(latencies),
        seconds=max(result[3] for result in results) - started,
        latencies=latencies,
        failures=sum(result[1] for result in results),
        failure_sample=next((result[2] for result in results if result[2]), ""),
        server_cpu=server_cpu,
        driver_cpu=driver_cpu,
    )


def check_answers(server: Server, path: str, headers: dict[str, str], name: str) -> None:
    import httpx

    answer = httpx.get(server.base + path, headers=headers, timeout=30)
    if not 200 <= answer.status_code < 300:
        fail(f"{name}: GET {path} on the {server.name} server answered {answer.status_code}: {answer.text[:500]}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(rounds: list[Round]) -> dict:
    latencies = [latency for one in rounds for latency in one.latencies]
    return {
        "rate": statistics.median(one.rate for one in rounds),
        "p50": percentile(latencies, 0.50) * 1000,
        "p95": percentile(latencies, 0.95) * 1000,
        "failures": sum(one.failures for one in rounds),
        "cpu": statistics.median(one.server_cpu_per_request for one in rounds) * 1000,
        "driver": statistics.median(one.driver_cpu_per_request for one in rounds) * 1000,
        "driver_share": statistics.median(one.driver_cpu / one.seconds for one in rounds) * 100,
    }


def ratios(rounds: list[Round], bare_rounds: list[Round]) -> dict:
    pairs = list(zip(rounds, bare_rounds, strict=True))
    return {
        "time": statistics.median(bare.rate / product.rate for product, bare in pairs),
        "p50": statistics.median(product.p50 / bare.p50 for product, bare in pairs),
        "cpu": statistics.median(
            product.server_cpu_per_request / bare.server_cpu_per_request for product, bare in pairs
        ),
    }


# --- main --------------------------------------------------------------------------------------


def print_queries(cases: list[Case], world: dict) -> None:
    from bench.bare_site import BARE_PATH

    for case in cases:
        count, statements, status = count_queries(case.path, headers_for(case, world))
        print(f"{case.name}: GET {case.path} -> {status}, {count} queries")
        for sql in statements:
            print(f"    {' '.join(sql.split())[:200]}")
    count, statements, status = count_queries(BARE_PATH, dict(PROXY_HEADERS), urlconf="bench.bare_site")
    print(f"bare: GET {BARE_PATH} -> {status}, {count} queries")
    for sql in statements:
        print(f"    {' '.join(sql.split())[:200]}")


def print_profiles(cases: list[Case], world: dict, requests: int = 300) -> None:
    """Where one request of each case spends its time, in-process (pyinstrument, a statistical
    profiler): `requests` GETs after a warm-up, the call tree down to 2 % of the time."""
    from django.test import Client
    from pyinstrument import Profiler

    for case in cases:
        client = Client(headers={"Host": "127.0.0.1", **headers_for(case, world)})
        client.get(case.path)
        profiler = Profiler(interval=0.0002)
        started = time.perf_counter()
        with profiler:
            for _ in range(requests):
                client.get(case.path)
        per_request = (time.perf_counter() - started) / requests * 1000
        print(f"=== {case.name}: GET {case.path}: {per_request:.2f} ms per request in-process")
        print(profiler.output_text(unicode=False, color=False, show_all=False, time="percent_of_total"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5, help="length of each round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case, each beside a bare round (default 3)")
    parser.add_argument("--concurrency", type=int, default=10, help="concurrent clients (default 10)")
    parser.add_argument("--only", choices=CASE_NAMES, help="run this case only")
    parser.add_argument("--queries", action="store_true", help="print each case's SQL statements, start no server")
    parser.add_argument("--profile", action="store_true", help="profile each case in-process, start no server")
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="also serve the product at git revision REV (a temporary worktree; same database) in every round",
    )
    options = parser.parse_args()
    if options.seconds <= 0 or options.rounds < 1 or options.concurrency < 1:
        parser.error("--seconds, --rounds and --concurrency must be positive")

    create_database(DATABASE_URL)
    import django

    django.setup()
    import httpx

    from bench.bare_site import BARE_PATH
    from config.startup import masked_url

    started = time.monotonic()
    world = seed()
    cases = [case for case in cases_for(world) if options.only in (None, case.name)]
    print(
        f"seeded in {time.monotonic() - started:.1f} s: workflow {world['workflow'].pk} ({WORKFLOW_NODES} nodes, "
        f"+{MORE_WORKFLOWS} more), run {world['run'].pk} ({RUN_STEPS} steps), database {masked_url(DATABASE_URL)}",
        flush=True,
    )
    if options.queries or options.profile:
        world["access"] = access_token_in_process(world)
        (print_profiles if options.profile else print_queries)(cases, world)
        return

    product = bare = before = None
    before_tree = checkout(options.compare) if options.compare else None
    try:
        product = start_server("product", "config.settings.production", "/health")
        bare = start_server("bare", BARE_SETTINGS, BARE_PATH)
        if before_tree is not None:
            before = start_server("before", "config.settings.production", "/health", tree=before_tree)
        tokens = httpx.post(
            f"{product.base}/api/v3/auth/token",
            json={"email": world["user"].email, "password": world["password"]},
            headers=PROXY_HEADERS,
            timeout=30,
        )
        if tokens.status_code != 200:
            fail(f"POST /api/v3/auth/token answered {tokens.status_code}: {tokens.text[:500]}")
        world["access"] = tokens.json()["access"]

        queries = {case.name: count_queries(case.path, headers_for(case, world))[0] for case in cases}
        queries["bare"] = count_queries(BARE_PATH, dict(PROXY_HEADERS), urlconf="bench.bare_site")[0]

        bare_headers = dict(PROXY_HEADERS)
        check_answers(bare, BARE_PATH, bare_headers, "bare")
        for case in cases:
            for server in (product, before) if before else (product,):
                check_answers(server, case.path, headers_for(case, world), case.name)
        warm = min(1.0, options.seconds)
        drive(bare, BARE_PATH, bare_headers, options.concurrency, warm)  # every worker and thread
        print(
            f"{options.rounds} round(s) of {options.seconds:g} s per case and as many of the bare view beside them, "
            f"concurrency {options.concurrency}, 2 gunicorn gthread workers each",
            flush=True,
        )
        results: dict[str, Result] = {}
        for case in cases:
            headers = headers_for(case, world)
            drive(product, case.path, headers, options.concurrency, warm)
            if before:
                drive(before, case.path, headers, options.concurrency, warm)
            result = results[case.name] = Result()
            for number in range(options.rounds):
                order = [("product", product, case.path, headers), ("bare", bare, BARE_PATH, bare_headers)]
                if before:
                    order.append(("before", before, case.path, headers))
                for side, server, path, side_headers in order[number % len(order) :] + order[: number % len(order)]:
                    getattr(result, side).append(
                        drive(server, path, side_headers, options.concurrency, options.seconds)
                    )
                print(
                    f"  {case.name} round {number + 1}: product {result.product[-1].rate:.0f} req/s, "
                    f"bare {result.bare[-1].rate:.0f} req/s"
                    + (f", before {result.before[-1].rate:.0f} req/s" if before else ""),
                    flush=True,
                )
    finally:
        for server in (product, bare, before):
            if server is not None:
                stop_server(server)
        if before_tree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=PROJECT, check=False)

    print()
    header = (
        f"{'case':<24} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'non-2xx':>7} {'CPU ms/req':>10} {'queries':>7}"
        f"   product/bare: {'time/req':>8} {'p50':>5} {'CPU/req':>7}"
    )
    print(header)
    print("-" * len(header))
    all_bare: list[Round] = []
    failed = []
    for case in cases:
        result = results[case.name]
        all_bare += result.bare
        lines = [(case.name, result.product, queries[case.name])]
        if result.before:
            lines.append((f"  before ({options.compare})"[:24], result.before, ""))
        for name, rounds, query_count in lines:
            figures, ratio = summary(rounds), ratios(rounds, result.bare)
            print(
                f"{name:<24} {figures['rate']:>7.0f} {figures['p50']:>7.1f} {figures['p95']:>7.1f} "
                f"{figures['failures']:>7} {figures['cpu']:>10.2f} {query_count:>7}"
                f"   {'':>14}{ratio['time']:>8.2f} {ratio['p50']:>5.2f} {ratio['cpu']:>7.2f}"
            )
        for side in ("product", "bare", "before"):
            rounds = getattr(result, side)
            if any(one.failures for one in rounds):
                sample = next(one.failure_sample for one in rounds if one.failure_sample)
                failed.append(f"{case.name} ({side}): {sum(one.failures for one in rounds)} non-2xx, e.g. {sample}")
    figures = summary(all_bare)
    print(
        f"{'bare DRF view':<24} {figures['rate']:>7.0f} {figures['p50']:>7.1f} {figures['p95']:>7.1f} "
        f"{figures['failures']:>7} {figures['cpu']:>10.2f} {queries['bare']:>7}"
    )
    print(
        f"\nload generator (this process, same CPUs): {figures['driver']:.2f} ms CPU per bare request, "
        f"{figures['driver_share']:.0f}% of one CPU during bare rounds; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    if failed:
        fail("some answers were not 2xx:\n  " + "\n  ".join(failed))


if __name__ == "__main__":
    main()
