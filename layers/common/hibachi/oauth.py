"""Authorization discovery, as the MCP authorization spec asks of a protected resource: OAuth 2.0
Protected Resource Metadata (RFC 9728) and the ``WWW-Authenticate`` challenges of RFC 6750 that point
to it.

- ``GET /.well-known/oauth-protected-resource`` (the REST API, resource ``https://<host>``) and
  ``GET /.well-known/oauth-protected-resource/mcp`` (the MCP endpoint, resource ``https://<host>/mcp``:
  RFC 9728's path-suffixed location, which MCP clients try first): public routes of
  ``HealthFunction`` that answer :func:`metadata` (the authorization server is the stack's
  ``JwtIssuer``, the ``JWT_ISSUER`` setting).
- :func:`challenge`: the ``WWW-Authenticate`` value of a 401 or 403 a function answers itself
  (``hibachi.api``): ``Bearer resource_metadata="..."``, with ``error="insufficient_scope"`` and
  ``scope`` on a 403.

The limit on AWS (docs/ARCHITECTURE.md, "Authorization discovery"): the HTTP API's JWT authorizer
answers its own 401 and 403 before any function runs, with a ``www-authenticate`` header that an HTTP
API cannot change (no gateway responses; response parameter mapping applies to integration responses
only). Its 401 carries no ``resource_metadata``; MCP clients then find the metadata at the well-known
locations above, as the MCP authorization spec lets them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

WELL_KNOWN = "/.well-known/oauth-protected-resource"
MCP_PATH = "/mcp"
# The scopes of the template's routes (tests/unit/test_oauth.py keeps them equal), and the MCP tools'
SCOPES = ("bookings:read", "bookings:write", "messages:write", "conversations:read", "ops:read", "staff")
MCP_SCOPES = ("bookings:read", "bookings:write", "messages:write", "conversations:read")
RESOURCE_NAME = "Hibachi booking assistant API"


class ProtectedResourceMetadata(BaseModel):
    """RFC 9728 section 2 (the members this API has)."""

    model_config = ConfigDict(defer_build=True)

    resource: str = Field(
        description="The protected resource's identifier: its URL", examples=["https://api.hibachi.example/mcp"]
    )
    authorization_servers: list[str] = Field(
        description="Issuers of the access tokens it accepts (the JWT authorizer's issuer)",
        examples=[["https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"]],
    )
    scopes_supported: list[str] = Field(description="The scopes its routes and tools require", examples=[list(SCOPES)])
    bearer_methods_supported: list[str] = Field(description="How to send the token", examples=[["header"]])
    resource_name: str = Field(examples=[RESOURCE_NAME])


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def origin(event: Mapping[str, Any]) -> str:
    """``https://<host>`` of the request: the HTTP API's domain name (a custom domain when one is
    mapped), its scheme from ``x-forwarded-proto`` (https on AWS; the local gateway says http)."""
    headers = _headers(event)
    context = event.get("requestContext") or {}
    host = str(context.get("domainName") or headers.get("host") or "localhost")
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    return f"{scheme}://{host}"


def resource_path(event: Mapping[str, Any]) -> str:
    """The resource a request is to: ``/mcp`` for the MCP endpoint, else the API (``""``)."""
    path = str(event.get("rawPath") or "")
    return MCP_PATH if path == MCP_PATH or path.startswith(MCP_PATH + "/") else ""


def metadata_url(event: Mapping[str, Any]) -> str:
    """Where the metadata of the resource the request is to is served."""
    return f"{origin(event)}{WELL_KNOWN}{resource_path(event)}"


def challenge(event: Mapping[str, Any], *, error: str | None = None, scope: str | None = None) -> str:
    """A ``WWW-Authenticate`` value (RFC 6750 section 3, RFC 9728 section 5.1)."""
    params = []
    if error:
        params.append(f'error="{error}"')
    if scope:
        params.append(f'scope="{scope}"')
    params.append(f'resource_metadata="{metadata_url(event)}"')
    return "Bearer " + ", ".join(params)


def metadata(event: Mapping[str, Any], path: str, issuer: str | None) -> ProtectedResourceMetadata:
    """The metadata of the resource at ``path`` (``""``: the API, ``/mcp``: the MCP endpoint)."""
    return ProtectedResourceMetadata(
        resource=f"{origin(event)}{path}",
        authorization_servers=[issuer] if issuer else [],
        scopes_supported=list(MCP_SCOPES if path == MCP_PATH else SCOPES),
        bearer_methods_supported=["header"],
        resource_name=RESOURCE_NAME + (" (MCP)" if path == MCP_PATH else ""),
    )
