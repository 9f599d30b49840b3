"""A customer's phone and email as the API takes them (bookings, verified identities): E.164 phones,
email addresses normalized as ``email-validator`` does. Light on purpose: the functions that take a
phone or an email import this, not the bookings models (about 100 ms of import)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints, WithJsonSchema

from hibachi.validation import STORABLE, bounds

E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"  # ASCII digits, as the database CHECK (pydantic's \d takes any Unicode digit)


# A plain address (``ada.lovelace+chef@Example.com``), which ``email-validator`` accepts as it is but
# for the domain, which it lower-cases, is settled here without it: its import takes ~25 ms of a cold
# start (Unicode regexes) and a call ~0.15 ms of CPU (IDNA checks per character). Anything else (non-ASCII,
# quoted, IP literals, IDNA labels, special-use domains, the mailbox names it lower-cases, any doubt)
# goes to ``email-validator``: this only answers early what it would answer, the same normalized string
# (tests/unit/test_email_fast_path.py proves it over generated addresses, and that these lists are its).
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*")
_PLAIN_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
# email-validator's rfc_constants.CASE_INSENSITIVE_MAILBOX_NAMES (it lower-cases these local parts)
_CASE_INSENSITIVE_MAILBOXES = frozenset(
    {"info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster", "hostmaster"}
    | {"usenet", "news", "webmaster", "www", "uucp", "ftp"}
)
# its SPECIAL_USE_DOMAIN_NAMES (refused: no globally deliverable address)
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def plain_email(value: str) -> str | None:
    """``value`` normalized as ``email-validator`` would, when it is a plain address; else ``None``."""
    local, _, domain = value.rpartition("@")
    domain = domain.lower()
    if (
        len(local) <= 64
        and len(domain) <= 253
        and len(local) + 1 + len(domain) <= 254
        and "--" not in domain  # IDNA ("xn--") and the labels it refuses ("ab--c") are its to judge
        and _PLAIN_LOCAL.fullmatch(local)
        and _PLAIN_DOMAIN.fullmatch(domain)
        and local.lower() not in _CASE_INSENSITIVE_MAILBOXES
        and domain.rpartition(".")[2] not in _SPECIAL_USE_TLDS
    ):
        return f"{local}@{domain}"
    return None


def _email(value: str) -> str:
    """Syntax only (no DNS): the ``email-validator`` rules, normalized (the domain lower-cased)."""
    plain = plain_email(value)
    if plain is not None:
        return plain
    from email_validator import EmailNotValidError, validate_email  # the unusual address: see above

    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


# Patterns in the length's StringConstraints, so the document states them (a StringConstraints after a
# validator is checked, but left out of the JSON schema)
Phone = Annotated[str, StringConstraints(min_length=8, max_length=16, pattern=E164_PATTERN), STORABLE]
Email = Annotated[
    Annotated[str, bounds(254, 3), STORABLE],
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "minLength": 3, "maxLength": 254}),
]
