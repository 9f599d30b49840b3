"""Print a dev access token for the local gateway.

    python -m local.token                                  # all scopes (staff included), 1 hour
    python -m local.token --scopes messages:write conversations:read --ttl 600
    # the assistant: no staff, so each request names its chat in the Hibachi-Conversation header
    python -m local.token --scopes bookings:read bookings:write messages:write conversations:read
    python -m local.token --port 3001                      # a gateway on another port

The token is signed with the dev key under ``.local/jwt/`` (created on first use) for the issuer
``http://127.0.0.1:<port>/local-issuer`` and the audience ``hibachi-api`` (see ``local/auth.py``).
The gateway started by ``python -m local.run`` accepts it as long as the port matches.
"""

from __future__ import annotations

import argparse
import sys

from local.auth import ALL_SCOPES, DEFAULT_AUDIENCE, JwtAuthority, default_issuer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.token", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scopes", nargs="*", default=list(ALL_SCOPES), help="scopes to grant (default: all of them, staff included)"
    )
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    parser.add_argument("--sub", default="local-dev", help="subject claim")
    parser.add_argument("--port", type=int, default=None, help="the gateway's port (default LOCAL_API_PORT or 3000)")
    parser.add_argument("--issuer", default=None, help="issuer (default http://127.0.0.1:<port>/local-issuer)")
    parser.add_argument("--audience", default=DEFAULT_AUDIENCE)
    args = parser.parse_args(argv)
    authority = JwtAuthority(issuer=args.issuer or default_issuer(args.port), audience=args.audience)
    print(authority.issue_token(args.scopes, sub=args.sub, ttl=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
