"""Apply the versioned SQL migrations in ``hibachi/migrations`` (yoyo-migrations).

    python -m hibachi.migrate postgresql://user@host:5432/db   # or DATABASE_URL
    make migrate DATABASE_URL=...

Applied migrations are recorded by yoyo in the database, so a second run changes nothing. On AWS the
``MigrateFunction`` custom resource calls ``apply`` on every deploy, connecting through RDS Proxy with
an IAM token.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _yoyo_url(dsn: str) -> str:
    """A libpq URL (``postgresql://…``) as yoyo's psycopg 3 backend URL."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError("expected a postgresql:// URL")
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


def iam_url(
    host: str,
    port: int,
    dbname: str,
    user: str,
    password: str,
    sslmode: str = "verify-full",
    sslrootcert: str | None = None,
) -> str:
    """The DSN the migration runner connects with: the same TLS checks as the functions' connections
    (``hibachi.db``): verify-full against the bundled Amazon roots unless ``sslrootcert`` is given."""
    if sslrootcert is None:
        sslrootcert = str(MIGRATIONS_DIR.parent / "certs" / "amazon-root-cas.pem")
    query = f"sslmode={quote(sslmode, safe='')}&sslrootcert={quote(sslrootcert, safe='/')}"
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{dbname}?{query}"


def apply(dsn: str) -> list[str]:
    """Apply the pending migrations; return the ids of those applied (empty when up to date)."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_url(dsn))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
        with backend.transaction():  # the zones of a newer PostgreSQL (migration 0009)
            backend.execute(REFRESH_TIME_ZONES)
    return [m.id for m in pending]


# Every deploy: the zones PostgreSQL knows now (a minor upgrade brings new tzdata) join the list
# that bookings are checked against (bookings_timezone_known); none is removed (a booking may use it).
REFRESH_TIME_ZONES = """
INSERT INTO time_zones (name) SELECT name FROM pg_timezone_names ON CONFLICT DO NOTHING
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    dsn = args[0] if args else os.environ.get("DATABASE_URL")
    if not dsn:
        print("usage: python -m hibachi.migrate DSN (or set DATABASE_URL)", file=sys.stderr)  # noqa: T201 - the CLI's output (python -m hibachi.migrate)
        return 2
    applied = apply(dsn)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "; up to date"))  # noqa: T201 - the CLI's output (python -m hibachi.migrate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
