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


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class Unprocessable(AppError):
    status, code = 422, "validation_error"


class DependencyUnavailable(AppError):
    """A dependency (the database) is down: nothing was changed, the client may retry."""

    status, code = 503, "service_unavailable"

    def __init__(self, message: str, *, dependency: str, retry_after: int = 2):
        super().__init__(message, details={"dependency": dependency}, headers={"Retry-After": str(retry_after)})
        self.dependency = dependency


class DatabaseUnavailable(DependencyUnavailable):
    def __init__(self, message: str = "The database is unavailable; nothing was changed. Retry shortly."):
        super().__init__(message, dependency="database")
