"""AWS Signature Version 4 in the standard library: the request path's two AWS signatures without botocore.

- ``sign``: the ``Authorization`` header of one HTTP request (``hibachi.sqs`` sends jobs with it);
- ``presign``: a query-string signature (``rds_auth_token``: the RDS IAM auth token, a presigned
  ``connect`` URL without its scheme, as botocore's ``generate_db_auth_token`` makes it).

Both produce exactly what botocore's ``SigV4Auth`` / ``SigV4QueryAuth`` produce for the same request,
time and credentials (``tests/unit/test_sigv4.py`` compares them byte for byte over randomized
requests). Importing botocore and building a client costs ~200 ms of cold start and ~1.8 ms of CPU
per call; this costs a few microseconds. A ``Date`` header is not supported (botocore rewrites it):
the time is always ``X-Amz-Date``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import SplitResult, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# headers a proxy or the HTTP client may change on the way: never signed (botocore's list)
UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
        "authorization",  # replaced by the signature itself
    }
)
_QUERY_SAFE = "-_.~"


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None = None


class NoCredentials(Exception):
    """No AWS credentials in the environment nor in botocore's provider chain."""


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials Lambda puts in every environment (read per call: SnapStart restores and
    rotations change them), ``None`` when the environment has none."""
    env = os.environ if environ is None else environ
    access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        return None
    return Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or None)


def resolve_credentials() -> Credentials:
    """The environment's credentials, else botocore's provider chain (a profile, a container
    role: a laptop or a test, never Lambda, which always sets the variables)."""
    found = credentials_from_env()
    if found is not None:
        return found
    import botocore.session  # only off Lambda, only without credential variables

    chain = botocore.session.get_session().get_credentials()
    if chain is None:
        raise NoCredentials("no AWS credentials found")
    frozen = chain.get_frozen_credentials()
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


def amz_date(now: datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=16)  # one per day, region and service: saves 4 HMACs per request
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    return _hmac(_hmac(_hmac(key, region), service), "aws4_request")


def host_header(url: SplitResult) -> str:
    """The Host header of a URL: lower-case, without userinfo, the port only when not the default
    (what botocore signs, and what ``hibachi.sqs`` sends)."""
    host = url.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = url.port
    if port is not None and port != {"http": 80, "https": 443}.get(url.scheme):
        host = f"{host}:{port}"
    return host


def _canonical_path(path: str) -> str:
    """RFC 3986 dot segments removed and repeated slashes collapsed, then percent-encoded."""
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment and segment != ".":
            if segment == "..":
                if kept:
                    kept.pop()
            else:
                kept.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and kept else ""
    return quote(first + "/".join(kept) + last, safe="/~")


def _canonical_query(query: str) -> str:
    """The URL's query (already percent-encoded) with its pairs sorted."""
    if not query:
        return ""
    pairs = sorted((key, value) for key, _, value in (pair.partition("=") for pair in query.split("&")))
    return "&".join(f"{key}={value}" for key, value in pairs)


def _to_sign(headers: Mapping[str, str], url_parts: SplitResult) -> dict[str, list[str]]:
    signed: dict[str, list[str]] = {}
    for name, value in headers.items():
        lname = name.lower()
        if lname not in UNSIGNED_HEADERS:
            signed.setdefault(lname, []).append(value)
    if "host" not in signed:
        signed["host"] = [host_header(url_parts)]
    return signed


def _canonical_request(
    method: str, url_parts: SplitResult, query: str, signed: dict[str, list[str]], payload_hash: str
) -> tuple[str, str]:
    names = sorted(signed)
    canonical_headers = "".join(f"{name}:{','.join(' '.join(v.split()) for v in signed[name])}\n" for name in names)
    signed_headers = ";".join(names)
    request = "\n".join(
        (
            method.upper(),
            _canonical_path(url_parts.path),
            _canonical_query(query),
            canonical_headers,
            signed_headers,
            payload_hash,
        )
    )
    return request, signed_headers


def _signature(secret_key: str, timestamp: str, scope: str, region: str, service: str, request: str) -> str:
    string_to_sign = "\n".join((ALGORITHM, timestamp, scope, hashlib.sha256(request.encode("utf-8")).hexdigest()))
    key = signing_key(secret_key, timestamp[:8], region, service)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _drop(headers: dict[str, str], name: str) -> None:
    for key in [k for k in headers if k.lower() == name]:
        del headers[key]


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    service: str,
    region: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """``headers`` plus ``X-Amz-Date``, ``X-Amz-Security-Token`` (with a session token) and
    ``Authorization``: the request signed. The query string, if any, must be percent-encoded."""
    out = dict(headers)
    timestamp = amz_date(now)
    _drop(out, "authorization")
    _drop(out, "x-amz-date")
    out["X-Amz-Date"] = timestamp
    if credentials.token:
        _drop(out, "x-amz-security-token")
        out["X-Amz-Security-Token"] = credentials.token
    parts = urlsplit(url)
    given_hash = next((v for k, v in out.items() if k.lower() == "x-amz-content-sha256"), None)
    payload_hash = given_hash or (hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256)
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    request, signed_headers = _canonical_request(method, parts, parts.query, _to_sign(out, parts), payload_hash)
    signature = _signature(credentials.secret_key, timestamp, scope, region, service, request)
    credential = f"{credentials.access_key}/{scope}"
    out["Authorization"] = f"{ALGORITHM} Credential={credential}, SignedHeaders={signed_headers}, Signature={signature}"
    return out


def _encode(value: object) -> str:
    return quote(str(value).encode("utf-8"), safe=_QUERY_SAFE)


def presign(
    method: str,
    url: str,
    params: Mapping[str, str],
    credentials: Credentials,
    service: str,
    region: str,
    expires: int,
    now: datetime | None = None,
) -> str:
    """``url`` (no query of its own) with ``params`` and the query-string signature (``X-Amz-*``)."""
    timestamp = amz_date(now)
    parts = urlsplit(url)
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    signed = _to_sign({}, parts)
    auth: dict[str, object] = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{credentials.access_key}/{scope}",
        "X-Amz-Date": timestamp,
        "X-Amz-Expires": expires,
        "X-Amz-SignedHeaders": ";".join(sorted(signed)),
    }
    if credentials.token is not None:
        auth["X-Amz-Security-Token"] = credentials.token
    query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in (*params.items(), *auth.items()))
    request, _ = _canonical_request(method, parts, query, signed, EMPTY_SHA256)
    signature = _signature(credentials.secret_key, timestamp, scope, region, service, request)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}&X-Amz-Signature={signature}"


RDS_TOKEN_SECONDS = 900  # RDS accepts a token for 15 minutes


def rds_auth_token(
    host: str, port: int, user: str, region: str, credentials: Credentials, now: datetime | None = None
) -> str:
    """The RDS IAM auth token (the password for RDS Proxy or an IAM-enabled database): a presigned
    ``GET /?Action=connect&DBUser=...`` for ``rds-db``, without its scheme."""
    url = presign(
        "GET",
        f"https://{host}:{port}/",
        {"Action": "connect", "DBUser": user},
        credentials,
        "rds-db",
        region,
        RDS_TOKEN_SECONDS,
        now,
    )
    return url[len("https://") :]
