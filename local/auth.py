"""Dev JWT issuer and an authorizer that behaves like the API Gateway HTTP API JWT authorizer.

The local stack has no identity provider, so this module is one: an RSA key pair created on first
use under ``.local/jwt/`` (git-ignored, mode 0600), its public half published as a JWKS (the local
gateway serves it at ``/.well-known/jwks.json`` and ``<issuer>/.well-known/jwks.json``), and
:meth:`JwtAuthority.issue_token` to sign RS256 access tokens with it.

:meth:`JwtAuthority.verify` checks a token the way the HTTP API JWT authorizer does, in its order:

1. a token in the ``Authorization`` header (``Bearer`` prefix optional, as API Gateway accepts);
   missing or malformed: 401;
2. the header: ``alg`` must be RS256 and ``kid`` a key of the JWKS; then the signature: 401;
3. claims: ``iss`` equals the issuer; ``aud`` contains one of the audiences, or, only when there is
   no ``aud``, ``client_id`` is one of them; ``exp`` in the future; ``nbf`` and ``iat`` not in the
   future: 401;
4. scopes: when the route has ``AuthorizationScopes`` the token (``scope``, space separated, or
   ``scp``, a list) must carry AT LEAST ONE of them (API Gateway's rule, not "all of them"): 403.

Each refusal is an :class:`AuthError` (401) or :class:`Forbidden` (403) that says why, and
renders API Gateway's response: body ``{"message": "Unauthorized"}`` / ``{"message": "Forbidden"}``
and a ``www-authenticate`` header such as
``Bearer scope="" error="invalid_token" error_description="the token has expired"``.

Defaults: issuer ``http://127.0.0.1:<port>/local-issuer`` (port from ``LOCAL_API_PORT``, 3000),
audience ``hibachi-api``; override with ``LOCAL_JWT_ISSUER`` / ``LOCAL_JWT_AUDIENCE`` /
``LOCAL_JWT_DIR`` or the constructor.

    authority = JwtAuthority()
    claims = authority.verify(authority.issue_token(["messages:write"], ttl=600), ["messages:write"])

``python -m local.token`` prints a dev token (see ``local/token.py``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KEY_DIR = ROOT / ".local" / "jwt"
DEFAULT_AUDIENCE = "hibachi-api"
DEFAULT_PORT = 3000
# ``staff``: business-wide reach (hibachi.callers); a token without it acts for one conversation
ALL_SCOPES = ("messages:write", "conversations:read", "bookings:write", "bookings:read", "ops:read", "staff")
ALGORITHM = "RS256"


def default_issuer(port: int | None = None) -> str:
    """``http://127.0.0.1:<port>/local-issuer``; ``LOCAL_JWT_ISSUER`` wins when set."""
    if os.environ.get("LOCAL_JWT_ISSUER"):
        return os.environ["LOCAL_JWT_ISSUER"]
    if port is None:
        port = int(os.environ.get("LOCAL_API_PORT", DEFAULT_PORT))
    return f"http://127.0.0.1:{port}/local-issuer"


# -- errors ---------------------------------------------------------------------------------------
NO_TOKEN = "no token was provided"  # noqa: S105 - a message, not a secret


class AuthError(Exception):
    """A refused request (401: no usable token). ``status``, ``body`` and ``headers`` are API
    Gateway's response; ``description`` says why (``error_description`` of the challenge)."""

    status = 401
    message = "Unauthorized"
    error = "invalid_token"

    def __init__(self, description: str = "the token is invalid", scopes: Iterable[str] = ()):
        self.description = description
        self.scopes = tuple(scopes)
        super().__init__(description)

    @property
    def body(self) -> dict[str, str]:
        return {"message": self.message}

    @property
    def headers(self) -> dict[str, str]:
        scope = " ".join(self.scopes)
        challenge = f'Bearer scope="{scope}" error="{self.error}" error_description="{self.description}"'
        if self.description == NO_TOKEN:  # API Gateway sends the bare challenge then
            challenge = "Bearer"
        return {"content-type": "application/json", "www-authenticate": challenge}


class Forbidden(AuthError):
    """403: a valid token without any of the route's scopes."""

    status = 403
    message = "Forbidden"
    error = "insufficient_scope"


# -- keys -----------------------------------------------------------------------------------------
def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64u(n: int) -> str:
    return _b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def _bearer(token: str | None) -> str:
    """The token of an ``Authorization`` value (``Bearer`` prefix optional), or a 401."""
    raw = (token or "").strip()
    parts = raw.split(None, 1)
    if parts and parts[0].lower() == "bearer":
        raw = parts[1].strip() if len(parts) > 1 else ""
    if not raw:
        raise AuthError(NO_TOKEN)
    return raw


def _load_or_create_private_key(key_dir: Path) -> RSAPrivateKey:
    """The PEM key under ``key_dir``; created atomically (0600) when missing, so concurrent
    first users (the run command and ``python -m local.token``) end up with the same key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = key_dir / "private.pem"
    if not path.exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(key_dir, 0o700)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = key_dir / f".private.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            with contextlib.suppress(FileExistsError):  # another process won the race: use its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA key")
    return loaded


def _stringify_claim(value: Any) -> str:
    """How the HTTP API authorizer hands claims to the function: every value a string, lists in
    bracket form (``[a b]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_stringify_claim(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """Scopes of a token: ``scope`` (space separated) and ``scp`` (a list or a string)."""
    found: list[str] = []
    for value in (claims.get("scope"), claims.get("scp")):
        if isinstance(value, str):
            found += value.split()
        elif isinstance(value, list):
            found += [s for s in value if isinstance(s, str)]
    return list(dict.fromkeys(found))


# -- the authority --------------------------------------------------------------------------------
class JwtAuthority:
    """Issues and checks tokens for one issuer and its audiences."""

    def __init__(
        self,
        issuer: str | None = None,
        audience: str | Iterable[str] | None = None,
        key_dir: Path | str | None = None,
    ):
        self.issuer = issuer or default_issuer()
        if audience is None:
            audience = os.environ.get("LOCAL_JWT_AUDIENCE", DEFAULT_AUDIENCE)
        self.audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        self.key_dir = Path(key_dir or os.environ.get("LOCAL_JWT_DIR") or DEFAULT_KEY_DIR)
        self._lock = threading.Lock()
        self._private: RSAPrivateKey | None = None

    # keys
    @property
    def private_key(self) -> RSAPrivateKey:
        with self._lock:
            if self._private is None:
                self._private = _load_or_create_private_key(self.key_dir)
            return self._private

    @property
    def public_key(self) -> RSAPublicKey:
        return self.private_key.public_key()

    def _jwk(self) -> dict[str, str]:
        n = self.public_key.public_numbers()
        return {"e": _int_b64u(n.e), "kty": "RSA", "n": _int_b64u(n.n)}

    @property
    def kid(self) -> str:
        """The RFC 7638 thumbprint of the public key."""
        canonical = json.dumps(self._jwk(), separators=(",", ":"), sort_keys=True)
        return _b64u(hashlib.sha256(canonical.encode()).digest())

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._jwk(), "use": "sig", "alg": ALGORITHM, "kid": self.kid}]}

    def openid_configuration(self, jwks_uri: str | None = None) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": jwks_uri or f"{self.issuer}/.well-known/jwks.json",
            "id_token_signing_alg_values_supported": [ALGORITHM],
        }

    # tokens
    def issue_token(
        self,
        scopes: Iterable[str] | str | None = None,
        *,
        sub: str = "local-dev",
        ttl: float = 3600,
        audience: str | list[str] | None = None,
        issuer: str | None = None,
        not_before: float | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        scope_claim: str = "scope",
    ) -> str:
        """Sign an RS256 access token. ``scopes`` None means all the API's scopes; a string is
        split on spaces. ``ttl`` may be negative (an expired token, for tests). ``scope_claim``
        ``"scp"`` puts the scopes in ``scp`` as a list instead of ``scope``."""
        import jwt

        if scopes is None:
            scopes = ALL_SCOPES
        elif isinstance(scopes, str):
            scopes = scopes.split()
        scopes = list(scopes)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": sub,
            "aud": audience if audience is not None else self.audiences[0],
            "iat": min(now, now + int(ttl)),
            "exp": now + int(ttl),
            "jti": uuid.uuid4().hex,
            "token_use": "access",
        }
        if not_before is not None:
            claims["nbf"] = int(not_before)
        if scope_claim == "scp":
            claims["scp"] = scopes
        else:
            claims["scope"] = " ".join(scopes)
        claims.update(extra_claims or {})
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verify(self, token: str | None, required_scopes: Iterable[str] = ()) -> dict[str, Any]:
        """The token's claims, or an :class:`AuthError` (401; :class:`Forbidden`, 403). ``token`` may carry the
        ``Bearer`` prefix (it is the raw ``Authorization`` header value)."""
        required = tuple(required_scopes)
        claims = self._signed_claims(_bearer(token))
        if claims.get("iss") != self.issuer:
            raise AuthError("the token does not have a valid issuer")
        if not self._for_us(claims):
            raise AuthError("the token does not have a valid audience")
        if required and not set(required) & set(token_scopes(claims)):
            raise Forbidden(f"expected scopes: [{' '.join(required)}]", scopes=required)
        return claims

    def _for_us(self, claims: dict[str, Any]) -> bool:
        """An audience of ours in ``aud``, or (no ``aud``) in ``client_id``, as API Gateway checks."""
        if "aud" not in claims:
            return claims.get("client_id") in self.audiences
        aud = claims["aud"]
        return any(a in self.audiences for a in (aud if isinstance(aud, list) else [aud]))

    def _signed_claims(self, raw: str) -> dict[str, Any]:
        """The claims of a token signed by our key, not expired (or a 401)."""
        import jwt

        try:
            header = jwt.get_unverified_header(raw)
        except jwt.DecodeError:
            raise AuthError("the token is malformed") from None
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise AuthError(f"signing method {alg} is invalid")
        if header.get("kid") != self.kid:
            raise AuthError("the token's key id is not in the issuer's JWKS")
        try:
            claims = jwt.decode(
                raw,
                self.public_key,
                algorithms=[ALGORITHM],
                options={"verify_aud": False, "verify_iss": False, "require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidTokenError:
            raise AuthError("the token is malformed") from None
        return claims

    def authorize(self, authorization_header: str | None, required_scopes: Iterable[str] = ()) -> dict[str, Any]:
        """The ``requestContext.authorizer`` of an allowed request:
        ``{"jwt": {"claims": {...strings...}, "scopes": [...] | None}}``. ``scopes`` is null when
        the route has no scopes, as API Gateway sends it."""
        required = tuple(required_scopes)
        claims = self.verify(authorization_header, required)
        return {
            "jwt": {
                "claims": {k: _stringify_claim(v) for k, v in claims.items()},
                "scopes": token_scopes(claims) if required else None,
            }
        }
