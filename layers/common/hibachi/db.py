"""PostgreSQL access, shaped for Lambda behind RDS Proxy.

- One connection per execution environment (per thread when the local stack runs several), opened
  lazily on first use, reused across invocations, reopened when it is closed or broken.
- Autocommit, ``prepare_threshold=None`` and no ``SET`` on connect: prepared statements and session
  state pin RDS Proxy sessions. Every API operation is one statement, hence one round trip.
- On AWS the password is an RDS IAM auth token, presigned locally (``hibachi.sigv4``: what
  botocore's ``generate_db_auth_token`` makes, without importing boto3) and cached 10 minutes
  (tokens live 15).
- A connection failure becomes ``DatabaseUnavailable`` (HTTP 503): the statement either ran in full
  (autocommit) or not at all. So does a statement unanswered for ``DB_STATEMENT_DEADLINE`` seconds
  (a frozen server or network): its connection is closed under it (``_Watchdog``).
- A statement the server refuses never leaves with the server's words: its message and DETAIL
  quote the row (``Failing row contains (...)``: names, phones, addresses). ``error_facts`` keeps
  the sqlstate and the constraint, table and column names, and only those are logged or raised:
  an integrity or data error becomes ``ConstraintViolation`` (422, or 409 for a conflict), any other
  ``DatabaseFault`` (500).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import DictRow, dict_row

from hibachi import sigv4
from hibachi.errors import ConflictRetry, ConstraintViolation, DatabaseFault, DatabaseUnavailable
from hibachi.observability import logger
from hibachi.settings import Settings, get_settings

T = TypeVar("T")

TOKEN_TTL_SECONDS = 600
# The trust roots of RDS Proxy's certificate (ACM: Amazon Root CA 1-4), shipped in the layer
ROOT_CAS = Path(__file__).resolve().parent / "certs" / "amazon-root-cas.pem"
# sqlstates meaning "the server ended this session before our statement ran": safe to retry once
_SESSION_ENDED = {"57P01", "57P02", "57P03"}  # admin_shutdown, crash_shutdown, cannot_connect_now
_RETRYABLE_TXN = {"40001", "40P01"}  # serialization_failure, deadlock_detected: rolled back, retry


def error_facts(exc: BaseException) -> dict[str, str | None]:
    """What may be logged about a database error: its class, sqlstate and the names of the
    constraint, table and column involved. Never the message, DETAIL or WHERE: they quote values."""
    diag = getattr(exc, "diag", None)

    def field(name: str) -> str | None:
        try:
            value = getattr(diag, name, None)
        except Exception:  # noqa: BLE001 - diag of a client-side error may not answer
            return None
        return str(value)[:128] if value else None

    constraint, table, column = field("constraint_name"), field("table_name"), field("column_name")
    if column is None and constraint and table and constraint.startswith(f"{table}_") and constraint.endswith("_check"):
        column = constraint[len(table) + 1 : -len("_check")] or None  # PostgreSQL's name of a column CHECK
    return {
        "error_type": type(exc).__name__,
        "sqlstate": getattr(exc, "sqlstate", None),
        "constraint": constraint,
        "table": table,
        "column": column,
    }


class _Stats(threading.local):
    """Per-thread counters of the current request: statements sent and time spent."""

    def __init__(self) -> None:
        self.statements = 0
        self.elapsed_ms = 0.0


class _Watchdog:
    """Ends statements the server never answers.

    A frozen server or a black-holed network leaves a statement on an open connection waiting
    forever (the kernel acks what we send; ``tcp_user_timeout`` never fires), so the request would
    hang until the Lambda timeout. One daemon thread per process shuts down the socket of a
    statement that outlives its deadline: psycopg then raises ``OperationalError`` on a broken
    connection, which the failure policy turns into ``DatabaseUnavailable`` (503). No statement is
    sent and no session state is set, so nothing pins an RDS Proxy session.

    The thread sleeps until the earliest deadline it knows of (``_wake``) and is woken only by a
    statement due before that: a request's statement, armed while the thread already sleeps until
    an earlier (or equal) deadline, costs no thread switch (waking it on every statement cost
    ~0.3 ms of each request's time, the GIL passing to the watchdog and back).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, int]] = {}  # token -> (deadline, socket fd)
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None
        self._wake = 0.0  # when the sleeping thread wakes up next (monotonic)
        self.fired = 0

    def arm(self, conn: psycopg.Connection[DictRow], seconds: float) -> int | None:
        try:
            fd = conn.pgconn.socket
        except (psycopg.OperationalError, ValueError):
            return None
        token = next(self._tokens)
        deadline = time.monotonic() + seconds
        with self._cond:
            self._armed[token] = (deadline, fd)
            if self._thread is None or not self._thread.is_alive():
                self._wake = deadline
                self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
                self._thread.start()
            elif deadline < self._wake:  # due before the thread's next look: wake it now
                self._cond.notify()
        return token

    def disarm(self, token: int | None) -> None:
        if token is not None:
            with self._cond:
                self._armed.pop(token, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (deadline, fd) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        self._shutdown(fd)
                self._wake = max(now + 0.01, min((d for d, _ in self._armed.values()), default=now + 60))
                self._cond.wait(timeout=self._wake - now)

    def _shutdown(self, fd: int) -> None:
        try:
            dup = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        try:
            dup.shutdown(socket.SHUT_RDWR)  # wakes the waiting thread: the connection reads EOF
            self.fired += 1
            logger.warning("database statement deadline passed; connection closed")
        except OSError:
            pass
        finally:
            dup.close()


_watchdog = _Watchdog()


class Database:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._local = threading.local()
        self._open: set[psycopg.Connection[DictRow]] = set()  # every thread's, for close_all()
        self._open_lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()
        self.stats = _Stats()

    # -- connection management ------------------------------------------------------------------
    def iam_token(self) -> str:
        with self._token_lock:
            now = time.monotonic()
            if self._token is None or now >= self._token_expires:
                s = self.settings
                self._token = sigv4.rds_auth_token(
                    s.db_host or "", s.db_port, s.db_user, s.aws_region, sigv4.resolve_credentials()
                )
                self._token_expires = now + TOKEN_TTL_SECONDS
            return self._token

    def _connect_kwargs(self) -> dict[str, Any]:
        s = self.settings
        common: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": None,
            "row_factory": dict_row,
            "connect_timeout": s.db_connect_timeout,
            # fail a send to a vanished peer in seconds, not minutes (libpq options, not SETs)
            "tcp_user_timeout": 3000,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 5,
            "keepalives_count": 2,
        }
        if s.database_url:
            return {"conninfo": s.database_url, **common}
        password = self.iam_token() if s.db_iam_auth else s.db_password
        return {
            "conninfo": "",
            "host": s.db_host,
            "port": s.db_port,
            "dbname": s.db_name,
            "user": s.db_user,
            "password": password,
            "sslmode": s.db_sslmode,
            "sslrootcert": s.db_sslrootcert or str(ROOT_CAS),
            **common,
        }

    def connect(self) -> psycopg.Connection[DictRow]:
        """A new connection with the app's options (also used by the migration runner)."""
        kwargs = self._connect_kwargs()
        conninfo = kwargs.pop("conninfo")
        try:
            return psycopg.Connection.connect(conninfo, **kwargs)
        except psycopg.OperationalError as exc:
            logger.warning("database connect failed", extra={"error": str(exc).strip()[:300]})
            if self.settings.db_iam_auth and not self.settings.database_url:
                self._token = None  # an expired or revoked token must not be reused
            raise DatabaseUnavailable from exc

    @staticmethod
    def _usable(conn: psycopg.Connection[DictRow]) -> bool:
        """Zero-round-trip liveness check of an idle connection.

        An idle connection has nothing to read; readable means the server (or the proxy) has sent
        a termination notice or closed the socket while we were frozen, so we reopen instead of
        failing the request.
        """
        if conn.closed or conn.broken:
            return False
        try:
            readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
        except (OSError, ValueError, psycopg.OperationalError):
            return False
        return not readable

    def _connection(self) -> tuple[psycopg.Connection[DictRow], bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._usable(conn):
            return conn, True
        if conn is not None:
            self._discard(conn)
        conn = self.connect()
        self._local.conn = conn
        with self._open_lock:
            self._open.add(conn)
        return conn, False

    def _discard(self, conn: psycopg.Connection[DictRow]) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection may fail in any way
            conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._open_lock:
            self._open.discard(conn)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._discard(conn)

    def close_all(self) -> None:
        """Close every thread's connection (before a SnapStart snapshot); each reopens on next use."""
        with self._open_lock:
            found, self._open = self._open, set()
        for conn in found:
            with contextlib.suppress(Exception):  # closing a broken connection may fail in any way
                conn.close()

    def forget_token(self) -> None:
        """Drop the cached IAM token: the next connection presigns a new one (after a SnapStart restore)."""
        with self._token_lock:
            self._token = None
            self._token_expires = 0.0

    # -- running statements ---------------------------------------------------------------------
    def run(self, fn: Callable[[psycopg.Cursor[DictRow]], T]) -> T:
        """Run ``fn(cursor)`` on the environment's connection with the failure policy above.

        ``fn`` should send one statement. It is retried (once) only when the server had ended the
        session before the statement ran, or (twice) when the statement was rolled back by a
        deadlock or serialization failure; contention that outlives those retries is
        ``ConflictRetry`` (409 ``conflict_retry``), not ``DatabaseUnavailable``.
        """
        txn_retries = 2
        session_retry = True
        while True:
            conn, reused = self._connection()
            start = time.perf_counter()
            token = _watchdog.arm(conn, self.settings.db_statement_deadline)
            try:
                with conn.cursor() as cur:
                    return fn(cur)
            except psycopg.OperationalError as exc:
                _watchdog.disarm(token)  # before the socket is closed and its number reused
                state = getattr(exc, "sqlstate", None)
                if state in _RETRYABLE_TXN and not conn.broken:
                    if txn_retries > 0:
                        txn_retries -= 1
                        continue
                    # contention, not an outage: the database answered; the caller may send again
                    logger.warning("database contention: retries exhausted", extra={"sqlstate": state})
                    raise ConflictRetry from exc
                if conn.broken or conn.closed or state in _SESSION_ENDED:
                    self._discard(conn)
                    if reused and session_retry and (state in _SESSION_ENDED):
                        session_retry = False
                        continue
                logger.warning("database statement failed", extra=error_facts(exc))
                raise DatabaseUnavailable from exc
            except (psycopg.IntegrityError, psycopg.DataError) as exc:
                facts = error_facts(exc)
                logger.info("database refused the statement", extra=facts)
                raise ConstraintViolation(facts["sqlstate"], facts["constraint"], facts["column"]) from None
            except psycopg.Error as exc:
                facts = error_facts(exc)
                logger.error("database statement error", extra=facts)
                raise DatabaseFault(facts["sqlstate"]) from None
            finally:
                _watchdog.disarm(token)
                self.stats.statements += 1
                self.stats.elapsed_ms += (time.perf_counter() - start) * 1000

    def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> dict[str, Any] | None:
        return self.run(lambda cur: cur.execute(sql, params).fetchone())

    def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.run(lambda cur: cur.execute(sql, params).fetchall())

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
        return self.run(lambda cur: cur.execute(sql, params).rowcount)

    def ping(self) -> float:
        """Round-trip a trivial statement; return the milliseconds it took."""
        start = time.perf_counter()
        self.fetchone("SELECT 1 AS ok")
        return (time.perf_counter() - start) * 1000

    @contextmanager
    def measure(self) -> Iterator[_Stats]:
        """Reset this thread's counters, yield them; read them after the block."""
        self.stats.statements = 0
        self.stats.elapsed_ms = 0.0
        yield self.stats


_db: Database | None = None
_db_lock = threading.Lock()


def get_db() -> Database:
    """The process-wide ``Database`` for the current settings (rebuilt when settings change)."""
    global _db
    settings = get_settings()
    db = _db
    if db is None or db.settings is not settings:
        with _db_lock:
            if _db is None or _db.settings is not settings:
                if _db is not None:
                    _db.close()
                _db = Database(settings)
            db = _db
    return db


def close_all() -> None:
    """Close every connection of the process's ``Database`` (``hibachi.snapstart``)."""
    if _db is not None:
        _db.close_all()


def forget_tokens() -> None:
    """Drop the process's cached IAM token (``hibachi.snapstart``)."""
    if _db is not None:
        _db.forget_token()
