"""``hibachi.contacts.plain_email``: the booking email's fast path answers only what
``email-validator`` answers, the same normalized address, and leaves everything else to it.

Generated addresses mix what the fast path takes (ASCII dot-atoms, lower and upper case, digits,
hyphens, dots) with what it must leave alone (double dots, leading dots or hyphens, ``--`` labels,
IDNA, special-use and one-letter TLDs, non-ASCII, quotes, the mailbox names the library lower-cases,
lengths at and past the limits). For every one the fast path takes, ``email-validator`` must take it
too and normalize it the same way; and the plain addresses customers type must take the fast path.
"""

from __future__ import annotations

import email_validator
import pytest
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from hibachi import contacts as models
from hibachi.contacts import plain_email
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

LOCAL_CHARS = "abcXYZ019_+-.!#'é\" @"
LABEL_CHARS = "abzAZ09-é_"
TLDS = ["com", "ORG", "co", "uk", "io", "museum", "c", "1com", "xn--p1ai", "test", "local", "Invalid", "arpa", "onion"]


def _normalized(value: str) -> str | None:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _agree(address: str) -> None:
    fast = plain_email(address)
    if fast is not None:
        assert _normalized(address) == fast, address


labels = st.text(LABEL_CHARS, min_size=0, max_size=66)
locals_ = st.one_of(
    st.text(LOCAL_CHARS, min_size=0, max_size=70),
    st.sampled_from([*CASE_INSENSITIVE_MAILBOX_NAMES, "Postmaster", "WWW", "ada", "ada.lovelace"]),
    st.from_regex(r"[A-Za-z0-9_+-]{1,30}(\.[A-Za-z0-9_+-]{1,30}){0,2}", fullmatch=True),
)
domains = st.builds(
    lambda parts, tld: ".".join([*parts, tld]), st.lists(labels, min_size=0, max_size=4), st.sampled_from(TLDS)
)


@hypothesis_settings(max_examples=1500, deadline=None)
@given(local=locals_, domain=domains)
@example(local="ada", domain="Example.COM")
@example(local="a" * 64, domain="example.com")
@example(local="a" * 65, domain="example.com")
@example(local="a", domain=("b" * 63 + ".") * 3 + "b" * 57 + ".com")
@example(local="a", domain="ab--cd.com")
@example(local="a", domain="xn--bcher-kva.com")
@example(local="POSTMASTER", domain="example.com")
@example(local="a..b", domain="example.com")
@example(local="-a-", domain="-b.com")
def test_what_the_fast_path_takes_email_validator_takes_and_normalizes_alike(local, domain):
    _agree(f"{local}@{domain}")


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.text(st.characters(codec="ascii"), max_size=80))
def test_arbitrary_ascii_strings_agree_too(value):
    _agree(value)


@pytest.mark.parametrize(
    ("address", "normalized"),
    [
        ("ada@example.com", "ada@example.com"),
        ("Ada.Lovelace+chef@Example.COM", "Ada.Lovelace+chef@example.com"),
        ("dana_w-1@mail.co.uk", "dana_w-1@mail.co.uk"),
        ("x@sub-domain.example.org", "x@sub-domain.example.org"),
    ],
)
def test_plain_addresses_take_the_fast_path(address, normalized):
    assert plain_email(address) == normalized == _normalized(address)


@pytest.mark.parametrize(
    "address",
    ["postmaster@example.com", "a@b.test", "a@xn--bcher-kva.com", "é@example.com", '"a b"@example.com', "a@b.c"],
)
def test_the_rest_is_left_to_email_validator(address):
    assert plain_email(address) is None


def test_its_lists_are_email_validators():
    assert set(CASE_INSENSITIVE_MAILBOX_NAMES) == models._CASE_INSENSITIVE_MAILBOXES
    assert all("." not in name for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)
    assert set(email_validator.SPECIAL_USE_DOMAIN_NAMES) == models._SPECIAL_USE_TLDS


def test_the_booking_email_still_refuses_and_normalizes_through_email_validator():
    assert models._email("é@Example.com") == "é@example.com"  # not plain: email-validator's answer
    assert models._email("Postmaster@Example.com") == "postmaster@example.com"
    for bad in ("a..b@example.com", "ada@example.test", "ada@localhost", "ada@-x.com"):
        with pytest.raises(ValueError, match=r"."):
            models._email(bad)
