"""Input rules shared by the API models (reusable pydantic types and checks)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 8


def storable_text(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and lone surrogates are not UTF-8: reject both with a 422."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"must not nest deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        storable_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_text(key)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("must not contain NaN or infinite numbers")


def small_json_object(value: dict[str, Any]) -> dict[str, Any]:
    _check_json(value)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"must serialize to at most {MAX_METADATA_BYTES} bytes (got {size})")
    return value


def bounds(max_length: int, min_length: int = 0) -> StringConstraints:
    """Length bounds of a string field: ``Annotated[str, bounds(200, 1), STORABLE]``."""
    return StringConstraints(min_length=min_length, max_length=max_length)


# The content rules of every stored string, checked after its length bounds.
STORABLE = AfterValidator(storable_text)


ResourceId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
Metadata = Annotated[dict[str, Any], AfterValidator(small_json_object)]
