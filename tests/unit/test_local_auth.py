"""local.auth: the dev issuer and the authorizer's rules (those of the HTTP API JWT authorizer)."""

from __future__ import annotations

import base64
import json
import os
import stat
import time

import jwt
import pytest

from local import auth
from local.auth import JwtAuthority

ISSUER = "http://127.0.0.1:3999/local-issuer"


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jwt")


@pytest.fixture(scope="module")
def authority(key_dir) -> JwtAuthority:
    return JwtAuthority(issuer=ISSUER, audience="hibachi-api", key_dir=key_dir)


def _payload(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_key_pair_is_created_once_private_and_published_as_jwks(authority, key_dir):
    authority.issue_token(["a"])
    pem = key_dir / "private.pem"
    assert pem.exists() and stat.S_IMODE(os.stat(pem).st_mode) == 0o600
    jwks = authority.jwks()
    [key] = jwks["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["kid"] == authority.kid and "d" not in key
    again = JwtAuthority(issuer=ISSUER, key_dir=key_dir)  # a second process reads the same key
    assert again.kid == authority.kid
    assert again.verify(authority.issue_token(["a"]), ["a"])["iss"] == ISSUER


def test_token_defaults_all_scopes_issuer_audience(authority):
    token = authority.issue_token()
    claims = _payload(token)
    assert claims["iss"] == ISSUER and claims["aud"] == "hibachi-api" and claims["sub"] == "local-dev"
    assert claims["scope"].split() == list(auth.ALL_SCOPES)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": authority.kid, "typ": "JWT"}


def test_valid_token_with_the_scope_is_accepted(authority):
    claims = authority.verify(authority.issue_token(["messages:write"], sub="u1"), ["messages:write"])
    assert claims["sub"] == "u1"


def test_bearer_prefix_is_optional_and_case_insensitive(authority):
    token = authority.issue_token(["x"])
    assert authority.verify(f"Bearer {token}", ["x"])
    assert authority.verify(f"bearer {token}", ["x"])
    assert authority.verify(token, ["x"])


def test_scp_list_claim_is_accepted(authority):
    token = authority.issue_token(["bookings:read", "ops:read"], scope_claim="scp")
    assert "scope" not in _payload(token)
    assert authority.verify(token, ["ops:read"])


def test_one_of_the_route_scopes_is_enough(authority):
    token = authority.issue_token(["items:admin"])
    assert authority.verify(token, ["items:write", "items:admin"])


def test_route_without_scopes_accepts_any_valid_token(authority):
    assert authority.verify(authority.issue_token([]), [])


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   "])
def test_missing_token_is_401(authority, header):
    with pytest.raises(auth.AuthError) as exc:
        authority.verify(header, ["x"])
    assert exc.value.status == 401 and exc.value.body == {"message": "Unauthorized"}
    assert exc.value.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "Bearer e30.e30.e30"])
def test_malformed_token_is_401(authority, token):
    with pytest.raises(auth.AuthError) as exc:
        authority.verify(token, ["x"])
    assert exc.value.status == 401


def test_expired_token_is_401(authority):
    with pytest.raises(auth.AuthError) as exc:
        authority.verify(authority.issue_token(["x"], ttl=-60), ["x"])
    assert exc.value.status == 401
    assert exc.value.headers["www-authenticate"] == (
        'Bearer scope="" error="invalid_token" error_description="the token has expired"'
    )


def test_token_not_yet_valid_is_401(authority):
    with pytest.raises(auth.AuthError, match="not valid yet"):
        authority.verify(authority.issue_token(["x"], not_before=time.time() + 600), ["x"])


def test_wrong_issuer_is_401(authority):
    with pytest.raises(auth.AuthError) as exc:
        authority.verify(authority.issue_token(["x"], issuer="http://127.0.0.1:1/other"), ["x"])
    assert exc.value.status == 401 and "issuer" in exc.value.headers["www-authenticate"]


def test_wrong_audience_is_401(authority):
    with pytest.raises(auth.AuthError) as exc:
        authority.verify(authority.issue_token(["x"], audience="someone-else"), ["x"])
    assert exc.value.headers["www-authenticate"] == (
        'Bearer scope="" error="invalid_token" error_description="the token does not have a valid audience"'
    )


def test_audience_list_and_client_id(authority):
    assert authority.verify(authority.issue_token(["x"], audience=["other", "hibachi-api"]), ["x"])
    no_aud = authority.issue_token(["x"], extra_claims={"aud": None})
    # a token without aud is checked on client_id
    payload = _payload(no_aud)
    payload.pop("aud")
    with_client = jwt.encode(
        {**payload, "client_id": "hibachi-api"},
        authority.private_key,
        algorithm="RS256",
        headers={"kid": authority.kid},
    )
    assert authority.verify(with_client, ["x"])
    wrong_client = jwt.encode(
        {**payload, "client_id": "nope"}, authority.private_key, algorithm="RS256", headers={"kid": authority.kid}
    )
    with pytest.raises(auth.AuthError, match="audience"):
        authority.verify(wrong_client, ["x"])
    # with both, aud is what counts
    both = jwt.encode(
        {**payload, "aud": "nope", "client_id": "hibachi-api"},
        authority.private_key,
        algorithm="RS256",
        headers={"kid": authority.kid},
    )
    with pytest.raises(auth.AuthError, match="audience"):
        authority.verify(both, ["x"])


def test_bad_signature_is_401(authority, tmp_path):
    other = JwtAuthority(issuer=ISSUER, key_dir=tmp_path / "other")
    forged_kid = jwt.encode(
        _payload(authority.issue_token(["x"])), other.private_key, algorithm="RS256", headers={"kid": authority.kid}
    )  # right kid, wrong key
    with pytest.raises(auth.AuthError, match="signature is invalid"):
        authority.verify(forged_kid, ["x"])
    with pytest.raises(auth.AuthError, match="key id"):  # a key the issuer does not publish
        authority.verify(other.issue_token(["x"]), ["x"])
    header, payload, signature = authority.issue_token(["x"]).split(".")
    tampered = (
        base64.urlsafe_b64encode(json.dumps({**_payload("." + payload + "."), "sub": "admin"}).encode())
        .rstrip(b"=")
        .decode()
    )
    with pytest.raises(auth.AuthError, match="signature is invalid"):
        authority.verify(f"{header}.{tampered}.{signature}", ["x"])


def test_only_rs256_is_accepted(authority):
    hs = jwt.encode(
        _payload(authority.issue_token(["x"])),
        "secret-secret-secret-secret-32by",
        algorithm="HS256",
        headers={"kid": authority.kid},
    )
    with pytest.raises(auth.AuthError) as exc:
        authority.verify(hs, ["x"])
    assert "HS256" in exc.value.description
    unsigned = jwt.encode(_payload(authority.issue_token(["x"])), None, algorithm="none")
    with pytest.raises(auth.AuthError, match="signing method"):
        authority.verify(unsigned, ["x"])


def test_missing_scope_is_403(authority):
    with pytest.raises(auth.Forbidden) as exc:
        authority.verify(authority.issue_token(["conversations:read"]), ["messages:write"])
    assert exc.value.status == 403 and exc.value.body == {"message": "Forbidden"}
    assert exc.value.headers["www-authenticate"].startswith('Bearer scope="messages:write" error="insufficient_scope"')


def test_authorize_gives_the_event_authorizer(authority):
    token = authority.issue_token(["a", "b"], sub="user-7")
    ctx = authority.authorize(f"Bearer {token}", ["a"])
    claims = ctx["jwt"]["claims"]
    assert ctx["jwt"]["scopes"] == ["a", "b"]
    assert claims["sub"] == "user-7" and claims["scope"] == "a b"
    assert all(isinstance(v, str) for v in claims.values())  # API Gateway hands every claim over as a string
    assert claims["exp"].isdigit()
    listed = authority.authorize(authority.issue_token(["a"], audience=["x", "hibachi-api"]), [])
    assert listed["jwt"]["claims"]["aud"] == "[x hibachi-api]" and listed["jwt"]["scopes"] is None


def test_token_command_prints_a_verifiable_token(monkeypatch, tmp_path, capsys):
    from local import token as token_cli

    monkeypatch.setenv("LOCAL_JWT_DIR", str(tmp_path))
    monkeypatch.delenv("LOCAL_JWT_ISSUER", raising=False)
    assert token_cli.main(["--port", "3456", "--scopes", "bookings:read", "--ttl", "60"]) == 0
    printed = capsys.readouterr().out.strip()
    authority = JwtAuthority(issuer="http://127.0.0.1:3456/local-issuer", key_dir=tmp_path)
    claims = authority.verify(printed, ["bookings:read"])
    assert claims["exp"] - claims["iat"] == 60
