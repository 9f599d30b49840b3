"""Read the SAM template and build what the local stack serves: functions and HTTP API routes.

``template.yaml`` is parsed with PyYAML and a loader that turns CloudFormation's short tags into
their long form as plain data (``!Ref X`` -> ``{"Ref": "X"}``); nothing is evaluated but parameter
defaults, pseudo parameters and conditions (a resource whose ``Condition`` is false is left out).

:func:`load_app` gives, for every ``AWS::Serverless::Function`` (``Globals.Function`` merged in), a
:class:`FunctionSpec` (code folder, handler, timeout, memory, the folders of its layers as SAM lays
them out under ``/opt/python``, its literal environment, its events), and for each ``HttpApi``
event a :class:`Route`: method (``ANY`` allowed), path (``{param}``, a trailing ``{proxy+}``),
scopes, and ``public`` when its authorizer is ``NONE`` (or the API has no default one). An event with
neither ``Path`` nor ``Method`` is the ``$default`` route. :meth:`RouteTable.match` selects a route
as API Gateway does: literal segments beat ``{param}``, which beats ``{proxy+}``; a method beats
``ANY``; ``$default`` last; a method that does not match is a miss (404, never 405).

    python -m local.routes [template.yaml]     # prints the route table
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "template.yaml"

# -- YAML with CloudFormation short tags --------------------------------------------------------------
_LONG_FORM = {"Ref": "Ref", "Condition": "Condition"}


def _cfn_loader() -> type[yaml.SafeLoader]:
    import yaml

    class CfnLoader(yaml.SafeLoader):
        """SafeLoader that reads ``!Tag value`` as ``{"Fn::Tag": value}`` (``!Ref`` -> ``Ref``)."""

    def construct(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
        name = tag_suffix
        key = _LONG_FORM.get(name, f"Fn::{name}")
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:
            raise TypeError(f"!{name}: unexpected YAML node {node!r}")
        return {key: value}

    CfnLoader.add_multi_constructor("!", construct)
    return CfnLoader


def load_template(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """The template as plain data (intrinsics in long form)."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_cfn_loader())  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a CloudFormation template")
    return data


# -- model --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    function_name: str
    code_uri: Path
    handler: str  # "app.lambda_handler"
    runtime: str = "python3.12"
    timeout: int = 3
    memory_size: int = 128
    layers: tuple[Path, ...] = ()
    environment: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    events: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def module_name(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    @property
    def handler_file(self) -> Path:
        return self.code_uri / (self.module_name.replace(".", "/") + ".py")

    def events_of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        return {name: ev.get("Properties") or {} for name, ev in self.events.items() if ev.get("Type") in types}


_SEGMENT = re.compile(r"^\{([A-Za-z0-9_.:-]+)(\+?)\}$")


@dataclass(frozen=True)
class Route:
    method: str  # "GET", ..., or "ANY"
    path: str  # "/conversations/{conversation_id}" or "$default"
    function: str  # logical id
    scopes: tuple[str, ...] = ()
    public: bool = False
    authorizer: str | None = None
    identity_header: str = "authorization"
    event_name: str = ""

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def is_default(self) -> bool:
        return self.path == "$default"

    def _segments(self) -> list[tuple[str, str | None, bool]]:
        """(literal, param name, greedy) for each segment."""
        out = []
        for seg in self.path.strip("/").split("/") if self.path != "/" else []:
            m = _SEGMENT.match(seg)
            out.append((seg, m.group(1), bool(m.group(2))) if m else (seg, None, False))
        return out

    @property
    def specificity(self) -> tuple[int, ...] | tuple[int, tuple[int, ...], int]:
        """Sort key, most specific first."""
        if self.is_default:
            return (2,)
        segs = self._segments()
        greedy = any(g for _, _, g in segs)
        return (
            1 if greedy else 0,
            tuple(0 if name is None else 1 for _, name, _ in segs),
            1 if self.method == "ANY" else 0,
        )

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route takes ``method path``, else None."""
        if self.method != "ANY" and self.method != method.upper():
            return None
        if self.is_default:
            return {}
        want = self._segments()
        if not path.startswith("/"):
            return None
        got = path[1:].split("/") if path != "/" else []
        params: dict[str, str] = {}
        for i, (literal, name, greedy) in enumerate(want):
            if greedy:
                rest = got[i:]
                if not rest or rest == [""]:
                    return None
                params[str(name)] = unquote("/".join(rest))
                return params
            if i >= len(got):
                return None
            if name is None:
                if unquote(got[i]) != literal:
                    return None
            else:
                if got[i] == "":
                    return None
                params[name] = unquote(got[i])
        if len(got) != len(want):
            return None
        return params


class RouteTable:
    def __init__(self, routes: Iterable[Route]):
        self.routes = sorted(routes, key=lambda r: r.specificity)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None


@dataclass
class App:
    """What the local stack needs from the template."""

    template_path: Path
    template: dict[str, Any]
    functions: dict[str, FunctionSpec]
    routes: RouteTable

    def function_for(self, name_or_id: str) -> FunctionSpec | None:
        if name_or_id in self.functions:
            return self.functions[name_or_id]
        for fn in self.functions.values():
            if fn.function_name == name_or_id:
                return fn
        return None

    def sqs_consumers(self) -> list[tuple[FunctionSpec, str, dict[str, Any]]]:
        """(function, event name, event properties) of every ``Type: SQS`` event."""
        return [(fn, name, props) for fn in self.functions.values() for name, props in fn.events_of_type("SQS").items()]

    def schedules(self) -> list[tuple[FunctionSpec, str, dict[str, Any]]]:
        """(function, event name, properties) of every ``Schedule``/``ScheduleV2`` event."""
        return [
            (fn, name, props)
            for fn in self.functions.values()
            for name, props in fn.events_of_type("Schedule", "ScheduleV2").items()
        ]


# -- building -----------------------------------------------------------------------------------------
_PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "hibachi-local",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}


_UNKNOWN = object()


def _value(expr: Any, parameters: dict[str, Any]) -> Any:
    """A parameter-only evaluation of an intrinsic (Ref to a parameter's Default, Join, Split,
    Select, If is not needed here); ``_UNKNOWN`` when it needs a deployed stack."""
    if isinstance(expr, (str, int, float, bool)):
        return str(expr).lower() if isinstance(expr, bool) else str(expr)
    if isinstance(expr, list):
        items = [_value(e, parameters) for e in expr]
        return _UNKNOWN if any(i is _UNKNOWN for i in items) else items
    if isinstance(expr, dict) and len(expr) == 1:
        ((fn, arg),) = expr.items()
        if fn == "Ref":
            return _ref_value(arg, parameters)
        if fn in _LIST_INTRINSICS and isinstance(arg, list) and len(arg) == 2:
            return _LIST_INTRINSICS[fn](arg[0], _value(arg[1], parameters))
    return _UNKNOWN


def _scalar(expr: Any, parameters: dict[str, Any]) -> str | None:
    """A scalar setting (an environment value, a timeout) as text; None when it needs a deployed stack."""
    value = _value(expr, parameters)
    return value if isinstance(value, str) else None


def _ref_value(name: Any, parameters: dict[str, Any]) -> Any:
    if name in _PSEUDO:
        return _PSEUDO[name]
    param = parameters.get(name)
    if not isinstance(param, dict) or "Default" not in param:
        return _UNKNOWN
    default = _value(param["Default"], {})
    if str(param.get("Type", "")).startswith(("CommaDelimitedList", "List<")) and isinstance(default, str):
        return default.split(",")
    return default


def _select(index: Any, items: Any) -> Any:
    try:
        return items[int(index)] if isinstance(items, list) else _UNKNOWN
    except (ValueError, IndexError):
        return _UNKNOWN


# Fn::Join, Fn::Split and Fn::Select: (their first argument, the value of their second) -> value
_LIST_INTRINSICS: dict[str, Callable[[Any, Any], Any]] = {
    "Fn::Join": lambda sep, items: str(sep).join(items) if isinstance(items, list) else _UNKNOWN,
    "Fn::Split": lambda sep, text: text.split(str(sep)) if isinstance(text, str) else _UNKNOWN,
    "Fn::Select": _select,
}


@dataclass(frozen=True)
class _Conditions:
    conditions: dict[str, Any]
    parameters: dict[str, Any]
    seen: frozenset[str] = frozenset()


def _condition(
    name: str, conditions: dict[str, Any], parameters: dict[str, Any], seen: frozenset[str] = frozenset()
) -> bool | None:
    """A template condition evaluated with the parameters' defaults; None when unknown."""
    if name in seen or name not in conditions:
        return None
    return _truth(conditions[name], _Conditions(conditions, parameters, seen | {name}))


def _truth(expr: Any, scope: _Conditions) -> bool | None:
    """A condition function's value (three-valued: None is unknown)."""
    if not (isinstance(expr, dict) and len(expr) == 1):
        return None
    ((fn, arg),) = expr.items()
    if fn == "Condition":
        return _condition(arg, scope.conditions, scope.parameters, scope.seen)
    if not isinstance(arg, list):
        return None
    if fn == "Fn::Equals" and len(arg) == 2:
        a, b = (_value(x, scope.parameters) for x in arg)
        return None if _UNKNOWN in (a, b) else bool(a == b)
    combine = _COMBINE.get(fn)
    return None if combine is None else combine([_truth(x, scope) for x in arg])


def _not(values: list[bool | None]) -> bool | None:
    return None if len(values) != 1 or values[0] is None else not values[0]


def _and(values: list[bool | None]) -> bool | None:
    return False if False in values else (None if None in values else True)


def _or(values: list[bool | None]) -> bool | None:
    return True if True in values else (None if None in values else False)


# Fn::Not, Fn::And, Fn::Or: the values of their conditions -> theirs (None: unknown)
_COMBINE: dict[str, Callable[[list[bool | None]], bool | None]] = {"Fn::Not": _not, "Fn::And": _and, "Fn::Or": _or}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _ref(value: Any) -> str | None:
    ref = value.get("Ref") if isinstance(value, dict) else None
    return ref if isinstance(ref, str) else None


def _layer_dirs(layers: Any, resources: dict[str, Any], base: Path) -> tuple[Path, ...]:
    out: list[Path] = []
    for item in layers or []:
        logical = _ref(item)
        res = resources.get(logical or "", {})
        if res.get("Type") not in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            continue
        props = res.get("Properties") or {}
        uri = props.get("ContentUri") or (props.get("Content") if isinstance(props.get("Content"), str) else None)
        if not isinstance(uri, str):
            continue
        folder = (base / uri).resolve()
        out.append(folder / "python" if (folder / "python").is_dir() else folder)
    return tuple(out)


def _api_auth(api_id: Any, resources: dict[str, Any], globals_: dict[str, Any]) -> dict[str, Any]:
    logical = _ref(api_id)
    if logical and logical in resources:
        props = resources[logical].get("Properties") or {}
        return _merge((globals_.get("HttpApi") or {}).get("Auth") or {}, props.get("Auth") or {})
    return (globals_.get("HttpApi") or {}).get("Auth") or {}


@dataclass(frozen=True)
class _Template:
    """What building a function needs from the template."""

    base: Path
    resources: dict[str, Any]
    parameters: dict[str, Any]
    conditions: dict[str, Any]
    globals_: dict[str, Any]


def load_app(template_path: Path | str = DEFAULT_TEMPLATE, parameters: dict[str, str] | None = None) -> App:
    """Parse the template and build functions and routes. ``parameters`` overrides parameter
    defaults (as ``--parameter-overrides`` would); resources whose ``Condition`` is false with
    those values are left out (an unknown condition counts as true)."""
    path = Path(template_path).resolve()
    tpl = load_template(path)
    params: dict[str, Any] = {
        k: dict(v) if isinstance(v, dict) else {} for k, v in (tpl.get("Parameters") or {}).items()
    }
    for key, value in (parameters or {}).items():
        params.setdefault(key, {})["Default"] = value
    template = _Template(
        path.parent, tpl.get("Resources") or {}, params, tpl.get("Conditions") or {}, tpl.get("Globals") or {}
    )
    functions: dict[str, FunctionSpec] = {}
    routes: list[Route] = []
    for logical, res in template.resources.items():
        fn = _function(logical, res, template)
        if fn is not None:
            functions[logical] = fn
            routes += [_route(name, ev, fn, template) for name, ev in fn.events.items() if ev.get("Type") == "HttpApi"]
    return App(template_path=path, template=tpl, functions=functions, routes=RouteTable(routes))


def _function(logical: str, res: Any, template: _Template) -> FunctionSpec | None:
    """The ``AWS::Serverless::Function`` ``res`` (``Globals.Function`` merged in); None for another
    resource, one whose condition is false, or inline code."""
    if not _deployed_function(res, template):
        return None
    props = _merge(template.globals_.get("Function") or {}, res.get("Properties") or {})
    code_uri, handler = props.get("CodeUri"), props.get("Handler")
    if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
        return None  # inline code or an S3 location: nothing to run locally
    name = props.get("FunctionName")
    return FunctionSpec(
        logical_id=logical,
        function_name=name if isinstance(name, str) else logical,
        code_uri=(template.base / code_uri).resolve(),
        handler=handler,
        runtime=str(props.get("Runtime", "python3.12")),
        timeout=int(_scalar(props.get("Timeout", 3), template.parameters) or 3),
        memory_size=int(_scalar(props.get("MemorySize", 128), template.parameters) or 128),
        layers=_layer_dirs(props.get("Layers"), template.resources, template.base),
        environment=_environment(props, template.parameters),
        events={k: v for k, v in (props.get("Events") or {}).items() if isinstance(v, dict)},
    )


def _deployed_function(res: Any, template: _Template) -> bool:
    """Whether ``res`` is a function the template deploys with its parameters' values."""
    if not isinstance(res, dict) or res.get("Type") != "AWS::Serverless::Function":
        return False
    condition = res.get("Condition")
    # e.g. DocsFunction is not deployed when ExposeApiDocs is "false"
    return (
        not isinstance(condition, str) or _condition(condition, template.conditions, template.parameters) is not False
    )


def _environment(props: dict[str, Any], parameters: dict[str, Any]) -> dict[str, str]:
    """The literal environment variables (a deployed stack's values left out)."""
    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    literals = ((k, _scalar(v, parameters)) for k, v in variables.items())
    return {k: v for k, v in literals if v is not None}


def _route(event_name: str, event: dict[str, Any], fn: FunctionSpec, template: _Template) -> Route:
    """The route of an ``HttpApi`` event: its authorizer (the API's default unless the event names
    one; ``NONE`` is public), its scopes and the header its token comes in."""
    props = event.get("Properties") or {}
    api_auth = _api_auth(props.get("ApiId"), template.resources, template.globals_)
    auth = props.get("Auth") or {}
    authorizer = auth.get("Authorizer", api_auth.get("DefaultAuthorizer"))
    public = authorizer in (None, "NONE")
    method, route_path = props.get("Method"), props.get("Path")
    if method is None and route_path is None:
        method, route_path = "ANY", "$default"
    any_method = str(method or "ANY").upper() in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD")
    return Route(
        method="ANY" if any_method else str(method).upper(),
        path=str(route_path or "/"),
        function=fn.logical_id,
        scopes=tuple(auth.get("AuthorizationScopes") or ()) if not public else (),
        public=public,
        authorizer=None if public else str(authorizer),
        identity_header="authorization" if public else _identity_header(api_auth, str(authorizer)),
        event_name=event_name,
    )


def _identity_header(api_auth: dict[str, Any], authorizer: str) -> str:
    """The header an authorizer reads its token from (``IdentitySource``)."""
    source = ((api_auth.get("Authorizers") or {}).get(authorizer) or {}).get("IdentitySource")
    prefix = "$request.header."
    return (
        source[len(prefix) :].lower()
        if isinstance(source, str) and source.lower().startswith(prefix)
        else "authorization"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    app = load_app(argv[0] if argv else DEFAULT_TEMPLATE)
    for r in app.routes:
        auth = "public" if r.public else "scopes: " + (" ".join(r.scopes) or "(any valid token)")
        fn = app.functions[r.function]
        code = fn.code_uri.relative_to(ROOT) if fn.code_uri.is_relative_to(ROOT) else fn.code_uri
        print(f"{r.route_key:55} {r.function:28} {code}  {fn.handler}  [{auth}]")
    for fn, name, props in app.sqs_consumers():
        print(f"SQS {name}: {fn.logical_id} batch {props.get('BatchSize', 10)}")
    for fn, name, props in app.schedules():
        print(f"schedule {name}: {fn.logical_id} {props.get('Schedule') or props.get('ScheduleExpression')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
