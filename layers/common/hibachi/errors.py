"""Domain errors. ``hibachi.api`` maps them to HTTP responses in one place."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class BadRequest(AppError):
    status, code = 400, "bad_request"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class ConflictRetry(Conflict):
    """Lock contention outlived its retries (deadlock, serialization failure): nothing was changed and
    the same request may simply be sent again. A 409, not a 503: the database is up, just busy."""

    code = "conflict_retry"

    def __init__(self, message: str = "The resource is busy with a concurrent change; retry.", *, retry_after: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class Unprocessable(AppError):
    status, code = 422, "validation_error"


VALIDATION_MESSAGE = "The request is not valid; see details."


def invalid(where: str, field: str, msg: str, type_: str) -> Unprocessable:
    """422 ``validation_error`` on one input (``where``: body, query or header), in the shape the
    request validation answers with."""
    return Unprocessable(VALIDATION_MESSAGE, details=[{"loc": [where, field], "msg": msg, "type": type_}])


class TooManyRequests(AppError):
    """A limit of the service was reached (the one-time codes' rate limits): nothing was done; the
    same request may succeed after ``Retry-After`` seconds."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int, details: Any = None):
        super().__init__(message, details=details, headers={"Retry-After": str(max(1, retry_after))})


class ConstraintViolation(AppError):
    """The database refused a write that validation let through. The answer names the constraint
    (and the column when PostgreSQL reports one), never the values: a 409 for a conflict with
    another row (unique, exclusion), a 422 for any other integrity or data error.

    ``sqlstate`` lets the domain tell the cases apart (``EXCLUSION_VIOLATION``: a concurrent booking
    took the chef), where it expects one."""

    status, code = 422, "validation_error"
    CONFLICTS = frozenset({"23505", "23P01"})  # unique_violation, exclusion_violation

    def __init__(self, sqlstate: str | None, constraint: str | None, column: str | None = None):
        where = constraint or column or "a database rule"
        conflict = sqlstate in self.CONFLICTS
        message = (
            f"The request conflicts with an existing record ({where})."
            if conflict
            else f"The request breaks a rule of the stored data ({where}); see details."
        )
        detail: dict[str, Any] = {"constraint": constraint, "sqlstate": sqlstate}
        if column:
            detail["column"] = column
        if conflict:
            details: Any = detail
        else:
            loc = ["body", column] if column else ["body"]
            details = [{"loc": loc, "msg": f"refused by the database ({where})", "type": "db_constraint", **detail}]
        super().__init__(message, details=details)
        self.sqlstate, self.constraint, self.column = sqlstate, constraint, column
        if conflict:
            self.status, self.code = 409, "conflict"


EXCLUSION_VIOLATION = "23P01"


class DatabaseFault(AppError):
    """The database refused a statement for a reason that is our bug (a programming or internal
    error): a 500 whose log line carries the sqlstate only (the server's message may quote values)."""

    status, code = 500, "internal_error"

    def __init__(self, sqlstate: str | None):
        super().__init__("Something went wrong on our side; it has been logged.")
        self.sqlstate = sqlstate


class DependencyUnavailable(AppError):
    """A dependency (the database) is down: nothing was changed, the client may retry."""

    status, code = 503, "service_unavailable"

    def __init__(self, message: str, *, dependency: str, retry_after: int = 2):
        super().__init__(message, details={"dependency": dependency}, headers={"Retry-After": str(retry_after)})
        self.dependency = dependency


class DatabaseUnavailable(DependencyUnavailable):
    def __init__(self, message: str = "The database is unavailable; nothing was changed. Retry shortly."):
        super().__init__(message, dependency="database")
