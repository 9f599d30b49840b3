"""Each API function's route table (``OPERATIONS``: route key -> ``hibachi.api.Route``) is the
template's: the same routes, each with the scope the JWT authorizer requires there, so the check
the functions make themselves (``hibachi.api.handle``) can never be looser than the gateway's. A
route added to template.yaml without its row (or with another scope) fails here; so does a
function serving a protected route without a route table."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hibachi.api import Route

from local.routes import load_app
from testkit.functions import load_function
from tests.support.common import ROOT

APP = load_app(ROOT / "template.yaml", parameters={"ExposeApiDocs": "true"})
BY_FUNCTION: dict[str, list] = defaultdict(list)
for _route in APP.routes:
    BY_FUNCTION[APP.functions[_route.function].code_uri.name].append(_route)


@pytest.mark.parametrize("function", sorted(BY_FUNCTION))
def test_the_function_route_table_is_the_templates(function):
    routes = BY_FUNCTION[function]
    if all(r.public for r in routes) and not hasattr(load_function(function), "OPERATIONS"):
        return  # public only (the docs): nothing to authorize
    table = load_function(function).OPERATIONS
    assert set(table) == {r.route_key for r in routes}, function
    for route in routes:
        row = table[route.route_key]
        assert isinstance(row, Route), route.route_key
        if route.public:
            assert row.scope is None, route.route_key
        else:
            assert row.scopes == route.scopes, (route.route_key, row.scope, route.scopes)


def test_every_protected_route_has_a_scope():
    for route in APP.routes:
        assert route.public or route.scopes, f"{route.route_key}: a protected route needs AuthorizationScopes"
