"""template.yaml against the contract in docs/ARCHITECTURE.md and its operational rules.

The template is parsed with PyYAML and a loader that keeps CloudFormation's short tags as their long
form (``!Ref X`` -> ``{"Ref": "X"}``), so nothing is evaluated and no AWS tool is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.routes import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

FUNCTIONS = (
    "StoreMessageFunction",
    "CreateBookingFunction",
    "AssistantToolsFunction",
    "HealthFunction",
    "FollowupWorkerFunction",
    "MigrateFunction",
)
DATA_ACTION_PREFIXES = ("sqs:", "sns:", "rds-db:", "scheduler:", "secretsmanager:")


# -- loading (the same reader as the local stack) ------------------------------------------------------
@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def res(tpl) -> dict[str, Any]:
    return tpl["Resources"]


def _of_type(res: dict[str, Any], type_: str) -> dict[str, Any]:
    return {k: v for k, v in res.items() if v["Type"] == type_}


def _fn_props(tpl: dict[str, Any], logical: str) -> dict[str, Any]:
    """Function properties with Globals.Function merged in (maps merged, as SAM does)."""

    def merge(base, over):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    return merge(tpl["Globals"]["Function"], tpl["Resources"][logical]["Properties"])


def _param_default(tpl: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict) and "Ref" in value:
        return tpl["Parameters"][value["Ref"]]["Default"]
    return value


def _ref_target(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


# -- the contract ---------------------------------------------------------------------------------------
def _architecture_routes() -> dict[tuple[str, str], tuple[str, tuple[str, ...] | None]]:
    """(method, path) -> (function logical id, scopes; None when public), from the routes table."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Functions and routes", 1)[1].split("\n## ", 1)[0]
    routes: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}
    function = None
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] == "function":
            continue
        named = re.search(r"\(`(\w+Function)`\)", cells[0])
        if named:
            function = named.group(1)
        scopes = tuple(re.findall(r"`([\w:]+)`", cells[2]))
        for m in re.finditer(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`( \(no auth\))?", cells[1]):
            routes[(m.group(1), m.group(2))] = (function, None if m.group(3) else scopes)
    return routes


def _architecture_metrics() -> set[str]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z]\w+)`", line.split("|")[1]))
    return names


def _template_routes(res: dict[str, Any]) -> dict[tuple[str, str], tuple[str, dict[str, Any], Any]]:
    """(method, path) -> (function, Auth, the function's Condition) for every HttpApi event."""
    out = {}
    for logical, fn in _of_type(res, "AWS::Serverless::Function").items():
        for ev in (fn["Properties"].get("Events") or {}).values():
            if ev["Type"] != "HttpApi":
                continue
            p = ev["Properties"]
            key = (p["Method"].upper(), p["Path"])
            assert key not in out, f"duplicate route {key}"
            assert p["ApiId"] == {"Ref": "HttpApi"}, f"{key} is not on the one HttpApi"
            out[key] = (logical, p.get("Auth") or {}, fn.get("Condition"))
    return out


def test_contract_tables_parse():
    routes = _architecture_routes()
    assert ("GET", "/health") in routes and routes[("GET", "/health")][1] is None
    assert len(routes) >= 9
    assert {"StoreMessageLatency", "CreateBookingLatency", "ReconcilerReEnqueued"} <= _architecture_metrics()


# -- routes and auth ------------------------------------------------------------------------------------
def test_every_route_of_the_contract_and_no_other(res):
    expected = _architecture_routes()
    actual = {k: v for k, v in _template_routes(res).items() if v[2] is None}  # unconditional routes
    assert set(actual) == set(expected)
    for key, (function, _scopes) in expected.items():
        assert actual[key][0] == function, f"{key} served by {actual[key][0]}, contract says {function}"


def test_route_auth_and_scopes(res):
    expected = _architecture_routes()
    actual = _template_routes(res)
    for key, (_function, scopes) in expected.items():
        auth = actual[key][1]
        if scopes is None:
            assert auth == {"Authorizer": "NONE"}, f"{key} must be public"
        else:
            assert auth.get("Authorizer") == "JwtAuthorizer", f"{key} must use the JWT authorizer"
            assert tuple(auth.get("AuthorizationScopes") or ()) == scopes, f"{key} scopes"


def test_health_and_discovery_are_the_only_unconditional_public_routes(res):
    public = [
        k
        for k, (_, auth, cond) in _template_routes(res).items()
        if auth.get("Authorizer") in (None, "NONE") and cond is None
    ]
    assert sorted(public) == [
        ("GET", "/.well-known/oauth-protected-resource"),
        ("GET", "/.well-known/oauth-protected-resource/mcp"),
        ("GET", "/health"),
    ]
    # each public route has its own throttle, far below the API's
    settings = res["HttpApi"]["Properties"]["RouteSettings"]
    assert all(settings[f"{m} {p}"]["ThrottlingRateLimit"] <= 10 for m, p in public)


def test_api_docs_routes_exist_only_when_the_parameter_says_so(tpl, res):
    assert tpl["Parameters"]["ExposeApiDocs"]["Default"] == "false"
    assert tpl["Conditions"]["ExposeDocs"] == {"Fn::Equals": [{"Ref": "ExposeApiDocs"}, "true"]}
    docs = {k: v for k, v in _template_routes(res).items() if v[2] is not None}
    assert set(docs) == {("GET", "/openapi.json"), ("GET", "/docs")}
    assert all(cond == "ExposeDocs" for _, _, cond in docs.values())
    # no route may bypass the OpenAPI body (a re-import of the body would delete it)
    assert not _of_type(res, "AWS::ApiGatewayV2::Route")


def test_http_api_jwt_authorizer(res):
    api = res["HttpApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    auth = api["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "JwtAuthorizer"
    jwt = auth["Authorizers"]["JwtAuthorizer"]
    assert jwt["IdentitySource"] == "$request.header.Authorization"
    assert jwt["JwtConfiguration"] == {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}}
    assert _ref_target(api["Properties"]["AccessLogSettings"]["DestinationArn"]) == "ApiAccessLogGroup"
    throttling = api["Properties"]["DefaultRouteSettings"]
    assert {"ThrottlingBurstLimit", "ThrottlingRateLimit"} <= set(throttling)


# -- functions ------------------------------------------------------------------------------------------
def test_runtime_architecture_and_layer(tpl, res):
    g = tpl["Globals"]["Function"]
    assert g["Runtime"] == "python3.12"
    assert g["Architectures"] == ["arm64"]
    assert g["Handler"] == "app.lambda_handler"
    assert g["Layers"] == [{"Ref": "CommonLayer"}]
    assert g["LoggingConfig"]["LogFormat"] == "JSON"
    for logical in _of_type(res, "AWS::Serverless::Function"):
        props = _fn_props(tpl, logical)
        assert props["Runtime"] == "python3.12" and props["Architectures"] == ["arm64"], logical
        assert props["CodeUri"].startswith("functions/"), logical
    for logical in FUNCTIONS:
        assert res[logical]["Type"] == "AWS::Serverless::Function"
    layer = res["CommonLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/common"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}


def test_every_function_has_its_own_role(res):
    roles = {}
    for logical, fn in _of_type(res, "AWS::Serverless::Function").items():
        role = fn["Properties"].get("Role")
        assert role, f"{logical} has no explicit role"
        target = _ref_target(role)
        assert res[target]["Type"] == "AWS::IAM::Role"
        assert target not in roles.values(), f"{logical} shares {target}"
        roles[logical] = target
    assert set(FUNCTIONS) <= set(roles)


def test_every_function_logs_to_its_own_encrypted_log_group(tpl, res):
    groups = []
    for logical in _of_type(res, "AWS::Serverless::Function"):
        group = _ref_target(_fn_props(tpl, logical)["LoggingConfig"]["LogGroup"])
        assert group not in groups
        groups.append(group)
    for logical, lg in _of_type(res, "AWS::Logs::LogGroup").items():
        assert lg["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical
        assert "KmsKeyId" in lg["Properties"], logical
    assert set(groups) | {"ApiAccessLogGroup", "PostgresLogGroup"} == set(_of_type(res, "AWS::Logs::LogGroup"))


def test_the_exported_postgresql_log_group_is_the_stacks(res):
    """Aurora's exported log (errors may quote rows) goes to a group with retention and the app key,
    which exists before the instance that writes to it."""
    assert res["DbCluster"]["Properties"]["EnableCloudwatchLogsExports"] == ["postgresql"]
    group = res["PostgresLogGroup"]
    assert group["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/rds/cluster/${DbCluster}/postgresql"}
    assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["AppKey", "Arn"]}
    assert group["Condition"] == res["DbInstance"]["Condition"] == "CreateDb"
    assert res["DbInstance"]["DependsOn"] == "PostgresLogGroup"


def _topic_policy(res, topic: str) -> list[dict]:
    (policy,) = [
        r for r in _of_type(res, "AWS::SNS::TopicPolicy").values() if r["Properties"]["Topics"] == [{"Ref": topic}]
    ]
    return policy["Properties"]["PolicyDocument"]["Statement"]


@pytest.mark.parametrize(
    ("topic", "protocols"),
    [("FollowupTopic", ["https", "sqs", "lambda"]), ("OpsTopic", ["email", "https", "sqs", "lambda"])],
)
def test_topics_use_the_app_key_tls_only_and_documented_protocols(res, topic, protocols):
    assert res[topic]["Properties"]["KmsMasterKeyId"] == {"Ref": "AppKey"}
    statements = {st["Sid"]: st for st in _topic_policy(res, topic)}
    tls = statements["DenyInsecureTransport"]
    assert tls["Effect"] == "Deny" and tls["Action"] == "sns:*" and tls["Principal"] == "*"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (protocol,) = [st for st in statements.values() if st["Effect"] == "Deny" and st["Action"] == "sns:Subscribe"]
    assert protocol["Condition"] == {"StringNotEquals": {"sns:Protocol": protocols}}
    for st in statements.values():
        if st["Effect"] == "Allow" and st["Principal"] != {
            "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
        }:
            assert st["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and topic == "OpsTopic"
            assert "aws:SourceArn" in st["Condition"]["ArnLike"]


def test_the_keys_cloudwatch_statement_is_conditioned_on_the_stacks_alarms(res):
    (st,) = [st for st in res["AppKey"]["Properties"]["KeyPolicy"]["Statement"] if "cloudwatch" in str(st["Principal"])]
    arn = st["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert arn.endswith(":alarm:${AWS::StackName}-*")
    for alarm in _of_type(res, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")


DB_FUNCTIONS = ["StoreMessageFunction", "CreateBookingFunction", "HealthFunction", "FollowupWorkerFunction"]
DB_FUNCTIONS += ["MigrateFunction"]


@pytest.mark.parametrize("function", DB_FUNCTIONS)
def test_database_settings_of_the_functions_that_connect(tpl, function):
    env = _fn_props(tpl, function)["Environment"]["Variables"]
    assert env["DB_HOST"] == {"Fn::GetAtt": ["DbProxy", "Endpoint"]}
    assert env["DB_NAME"] == {"Ref": "DbName"}
    assert env["DB_SSLMODE"] == "verify-full"
    assert env["DB_IAM_AUTH"] == "true"
    vpc = _fn_props(tpl, function)["VpcConfig"]
    assert vpc["SecurityGroupIds"] == [{"Ref": "FunctionSecurityGroup"}]
    assert vpc["SubnetIds"] == {"Ref": "PrivateSubnetIds"}


def test_the_docs_function_has_no_vpc_and_no_database_settings(tpl, res):
    props = _fn_props(tpl, "DocsFunction")
    assert "VpcConfig" not in props
    assert not [k for k in (props.get("Environment") or {}).get("Variables", {}) if k.startswith("DB_")]
    managed = res["DocsRole"]["Properties"]["ManagedPolicyArns"]
    assert len(managed) == 1 and managed[0]["Fn::Sub"].endswith("AWSLambdaBasicExecutionRole")
    assert "Policies" not in res["DocsRole"]["Properties"]


def test_settings_environment(tpl):
    env = tpl["Globals"]["Function"]["Environment"]["Variables"]
    assert not [k for k in env if k.startswith("DB_")]  # per function: the docs function has none
    assert env["JOBS_QUEUE_URL"] == {"Ref": "JobsQueue"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "hibachi"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    for var, param, default in [
        ("CHEF_COUNT", "ChefCount", 3),
        ("MIN_LEAD_HOURS", "MinLeadHours", 24),
        ("TRAVEL_BUFFER_MINUTES", "TravelBufferMinutes", 60),
        ("FOLLOWUP_DELAY_HOURS", "FollowupDelayHours", 24),
        ("SLOT_STEP_MINUTES", "SlotStepMinutes", 30),
        ("SERVICE_FIRST_START", "ServiceFirstStart", "11:00"),
        ("SERVICE_LAST_START", "ServiceLastStart", "20:00"),
    ]:
        assert env[var] == {"Ref": param}
        assert tpl["Parameters"][param]["Default"] == default
    assert "APP_VERSION" in env
    assert tpl["Parameters"]["MetricsNamespace"]["Default"] == "Hibachi"


def test_worker_scheduler_settings(tpl, res):
    env = _fn_props(tpl, "FollowupWorkerFunction")["Environment"]["Variables"]
    assert env["FOLLOWUP_TOPIC_ARN"] == {"Ref": "FollowupTopic"}
    assert env["SCHEDULER_GROUP_NAME"] == {"Ref": "FollowupScheduleGroup"}
    assert env["SCHEDULER_ROLE_ARN"] == {"Fn::GetAtt": ["FollowupSchedulerRole", "Arn"]}
    assert env["SCHEDULER_TARGET_ARN"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert env["SCHEDULER_DLQ_ARN"] == {"Fn::GetAtt": ["SchedulerDeadLetterQueue", "Arn"]}
    prefix = env["SCHEDULE_NAME_PREFIX"]
    assert isinstance(prefix, str) and len(prefix) + 36 <= 64
    assert res["FollowupScheduleGroup"]["Type"] == "AWS::Scheduler::ScheduleGroup"


# -- jobs -----------------------------------------------------------------------------------------------
def test_jobs_queue_dlq_and_visibility(tpl, res):
    q = res["JobsQueue"]["Properties"]
    assert q["RedrivePolicy"]["maxReceiveCount"] == 5
    assert q["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}
    worker_timeout = _fn_props(tpl, "FollowupWorkerFunction")["Timeout"]
    assert q["VisibilityTimeout"] >= 6 * worker_timeout
    dlq = res["JobsDeadLetterQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"
    for name in ("JobsQueue", "JobsDeadLetterQueue", "SchedulerDeadLetterQueue"):
        props = res[name]["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, f"{name} not encrypted"


def test_worker_event_source(tpl, res):
    events = res["FollowupWorkerFunction"]["Properties"]["Events"]
    sqs = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    assert len(sqs) == 1
    ev = sqs[0]
    assert ev["Queue"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert ev["BatchSize"] == 10
    assert ev["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 0 <= ev["MaximumBatchingWindowInSeconds"] <= 5
    assert 2 <= _param_default(tpl, ev["ScalingConfig"]["MaximumConcurrency"]) <= 50


def test_reconciler_schedule(res):
    events = res["FollowupWorkerFunction"]["Properties"]["Events"]
    sched = [e["Properties"] for e in events.values() if e["Type"] == "ScheduleV2"]
    assert len(sched) == 1
    s = sched[0]
    # a job a skipped send left behind waits the grace (30 s) plus at most this interval
    assert s["ScheduleExpression"] == "rate(1 minute)"
    assert s["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 60
    assert json.loads(s["Input"]) == {"task": "reconcile"}
    assert s["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert s["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["SchedulerDeadLetterQueue", "Arn"]}
    assert _ref_target(s["RoleArn"]) == "ReconcilerSchedulerRole"


def test_followup_topic_encrypted(res):
    for name in ("FollowupTopic", "OpsTopic"):
        assert res[name]["Properties"].get("KmsMasterKeyId"), name


# -- database -------------------------------------------------------------------------------------------
def test_rds_proxy_iam_and_tls(res):
    p = res["DbProxy"]["Properties"]
    assert p["EngineFamily"] == "POSTGRESQL"
    assert p["RequireTLS"] is True
    assert p["Auth"] and all(a["IAMAuth"] == "REQUIRED" for a in p["Auth"])
    tg = res["DbProxyTargetGroup"]["Properties"]
    assert tg["DBProxyName"] == {"Ref": "DbProxy"}


def test_created_cluster(tpl, res):
    assert tpl["Conditions"]["CreateDb"] == {"Fn::Equals": [{"Ref": "ExistingDbClusterIdentifier"}, ""]}
    c = res["DbCluster"]
    assert c["Condition"] == "CreateDb"
    p = c["Properties"]
    assert p["Engine"] == "aurora-postgresql"
    assert str(_param_default(tpl, p["EngineVersion"])).startswith("16.")
    assert p["ManageMasterUserPassword"] is True and p["StorageEncrypted"] is True
    assert p["DeletionProtection"] == {"Fn::If": ["IsProd", True, False]}
    assert "ServerlessV2ScalingConfiguration" in p
    assert res["DbInstance"]["Properties"]["DBInstanceClass"] == "db.serverless"


def test_network_path_functions_proxy_database(res):
    assert res["ProxyIngressFromFunctions"]["Properties"]["SourceSecurityGroupId"] == {"Ref": "FunctionSecurityGroup"}
    assert res["DbIngressFromProxy"]["Properties"]["SourceSecurityGroupId"] == {"Ref": "ProxySecurityGroup"}
    ingress = _of_type(res, "AWS::EC2::SecurityGroupIngress")
    to_db = [i for i in ingress.values() if i["Properties"]["GroupId"] == {"Ref": "DbSecurityGroup"}]
    assert len(to_db) == 1 and to_db[0]["Properties"]["FromPort"] == 5432
    assert "SecurityGroupIngress" not in res["DbSecurityGroup"]["Properties"]
    for sg in _of_type(res, "AWS::EC2::SecurityGroup").values():
        for rule in sg["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") != "0.0.0.0/0"


def test_migrations_run_on_deploy(res):
    m = res["Migrations"]
    assert m["Type"] == "Custom::Migrations"
    assert m["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    assert m["Properties"]["LayerVersion"] == {"Ref": "CommonLayer"}
    assert "DbProxyTargetGroup" in ([m["DependsOn"]] if isinstance(m["DependsOn"], str) else m["DependsOn"])


# -- IAM ------------------------------------------------------------------------------------------------
def _statements(res: dict[str, Any]):
    """(resource logical id, statement) of every inline policy statement in the template."""
    for logical, r in res.items():
        if r["Type"] == "AWS::IAM::Role":
            for pol in r["Properties"].get("Policies", []):
                for st in pol["PolicyDocument"]["Statement"]:
                    yield logical, st
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for st in r["Properties"]["PolicyDocument"]["Statement"]:
                yield logical, st
        elif r["Type"] == "AWS::Serverless::Function":
            assert "Policies" not in r["Properties"], f"{logical}: use its explicit role"


def _as_list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def test_no_wildcard_resource_on_data_actions(res):
    for logical, st in _statements(res):
        if st["Effect"] != "Allow":
            continue
        actions = _as_list(st["Action"])
        data = [a for a in actions if a.startswith(DATA_ACTION_PREFIXES)]
        if not data:
            continue
        for a in data:
            assert not a.endswith(":*"), f"{logical}: wildcard action {a}"
        for r in _as_list(st.get("Resource")):
            assert r != "*", f"{logical}: {data} on Resource *"


def _allowed(res: dict[str, Any], role: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for logical, st in _statements(res):
        if logical == role and st["Effect"] == "Allow":
            for a in _as_list(st["Action"]):
                out.setdefault(a, []).extend(_as_list(st["Resource"]))
    return out


def test_least_privilege_per_function(res):
    expected = {
        "StoreMessageRole": {"sqs:SendMessage", "rds-db:connect"},
        "CreateBookingRole": {"sqs:SendMessage", "rds-db:connect"},
        "HealthRole": {"sqs:GetQueueAttributes", "rds-db:connect"},
        "FollowupWorkerRole": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
            "sqs:SendMessage",
            "scheduler:CreateSchedule",
            "scheduler:UpdateSchedule",
            "scheduler:DeleteSchedule",
            "scheduler:GetSchedule",
            "iam:PassRole",
            "sns:Publish",
            "events:PutEvents",
            "kms:GenerateDataKey",
            "kms:Decrypt",
            "rds-db:connect",
        },
        "MigrateRole": {"rds-db:connect"},
    }
    for role, actions in expected.items():
        allowed = _allowed(res, role)
        assert set(allowed) == actions, role
        managed = res[role]["Properties"]["ManagedPolicyArns"]
        assert len(managed) == 1 and "AWSLambdaVPCAccessExecutionRole" in managed[0]["Fn::Sub"], role
        assert allowed.get("sqs:SendMessage", [{"Fn::GetAtt": ["JobsQueue", "Arn"]}]) == [
            {"Fn::GetAtt": ["JobsQueue", "Arn"]}
        ], role


def test_rds_db_connect_on_each_functions_own_database_role(tpl, res):
    """Least privilege in the database: each function connects as its role (migration 0007), and its
    IAM policy lets it connect as that role only; the owner (DbUser) is the migrations' alone."""
    roles = {
        "StoreMessageRole": "hibachi_application",
        "CreateBookingRole": "hibachi_application",
        "FollowupWorkerRole": "hibachi_application",
        "HealthRole": "hibachi_health",
        "MigrateRole": "${DbUser}",
    }
    for role, user in roles.items():
        (resource,) = _allowed(res, role)["rds-db:connect"]
        pattern, variables = resource["Fn::Sub"]
        assert pattern == (
            "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${ProxyResourceId}/" + user
        ), role
        assert variables["ProxyResourceId"] == {
            "Fn::Select": [6, {"Fn::Split": [":", {"Fn::GetAtt": ["DbProxy", "DBProxyArn"]}]}]
        }
    functions = {
        "StoreMessageFunction": "hibachi_application",
        "CreateBookingFunction": "hibachi_application",
        "FollowupWorkerFunction": "hibachi_application",
        "HealthFunction": "hibachi_health",
        "MigrateFunction": {"Ref": "DbUser"},
    }
    for function, user in functions.items():
        env = (_fn_props(tpl, function).get("Environment") or {}).get("Variables") or {}
        assert env.get("DB_USER") == user, function


def test_the_proxy_logs_in_as_the_roles_with_end_to_end_iam(res):
    p = res["DbProxy"]["Properties"]
    assert p["DefaultAuthScheme"] == "IAM_AUTH"
    (owner,) = p["Auth"]  # the owner's secret, for the migrations; the roles have none
    assert owner["AuthScheme"] == "SECRETS" and owner["IAMAuth"] == "REQUIRED"
    allowed = _allowed(res, "DbProxyRole")
    users = sorted(r["Fn::Sub"][0].rsplit("/", 1)[1] for r in allowed["rds-db:connect"])
    assert users == ["hibachi_application", "hibachi_health"]
    assert set(allowed) == {"secretsmanager:GetSecretValue", "rds-db:connect"}


def test_worker_scheduler_permissions_are_scoped(tpl, res):
    allowed = _allowed(res, "FollowupWorkerRole")
    prefix = _fn_props(tpl, "FollowupWorkerFunction")["Environment"]["Variables"]["SCHEDULE_NAME_PREFIX"]
    (sched,) = allowed["scheduler:CreateSchedule"]
    assert sched["Fn::Sub"].endswith(":schedule/${FollowupScheduleGroup}/" + prefix + "*")
    assert allowed["iam:PassRole"] == [{"Fn::GetAtt": ["FollowupSchedulerRole", "Arn"]}]
    assert allowed["sns:Publish"] == [{"Ref": "FollowupTopic"}]


def test_scheduler_execution_role_only_sends_to_the_queues(res):
    allowed = _allowed(res, "FollowupSchedulerRole")
    assert set(allowed) == {"sqs:SendMessage"}
    assert sorted(_ref_target(r) for r in allowed["sqs:SendMessage"]) == ["JobsQueue", "SchedulerDeadLetterQueue"]
    trust = res["FollowupSchedulerRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}


# -- operations -----------------------------------------------------------------------------------------
ALARMS = {
    # anchor: (namespace, metric, comparison, threshold, statistic or p95)
    "store-message-latency": ({"Ref": "MetricsNamespace"}, "StoreMessageLatency", "GreaterThanThreshold", 1000, "p95"),
    "create-booking-latency": ({"Ref": "MetricsNamespace"}, "CreateBookingLatency", "GreaterThanThreshold", 500, "p95"),
    "availability-latency": ({"Ref": "MetricsNamespace"}, "AvailabilityLatency", "GreaterThanThreshold", 1000, "p95"),
    "search-bookings-latency": (
        {"Ref": "MetricsNamespace"},
        "SearchBookingsLatency",
        "GreaterThanThreshold",
        500,
        "p95",
    ),
    "assistant-tools-latency": (
        {"Ref": "MetricsNamespace"},
        "McpCreateBookingLatency",
        "GreaterThanThreshold",
        500,
        "p95",
    ),
    "api-5xx": ("AWS/ApiGateway", "5xx", "GreaterThanOrEqualToThreshold", 5, "Sum"),
    "lambda-errors": ("AWS/Lambda", "Errors", "GreaterThanThreshold", 0, "Sum"),
    "lambda-throttles": ("AWS/Lambda", "Throttles", "GreaterThanThreshold", 0, "Sum"),
    "jobs-dlq-depth": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "GreaterThanThreshold", 0, "Maximum"),
    "scheduler-dlq-depth": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "GreaterThanThreshold", 0, "Maximum"),
    "queue-age": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "GreaterThanThreshold", 300, "Maximum"),
    "reconciler-reenqueued": ({"Ref": "MetricsNamespace"}, "ReconcilerReEnqueued", "GreaterThanThreshold", 0, "Sum"),
    "events-publish-failed": ({"Ref": "MetricsNamespace"}, "EventsPublishFailed", "GreaterThanThreshold", 0, "Sum"),
    "webhook-dlq-depth": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "GreaterThanThreshold", 0, "Maximum"),
    "event-delivery-dlq-depth": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "GreaterThanThreshold", 0, "Maximum"),
    "proxy-pinned-sessions": (
        "AWS/RDS",
        "DatabaseConnectionsCurrentlySessionPinned",
        "GreaterThanThreshold",
        0,
        "Maximum",
    ),
}


def _alarms_by_anchor(res):
    out: dict[str, list] = {}
    for logical, a in _of_type(res, "AWS::CloudWatch::Alarm").items():
        found = re.findall(r"RUNBOOK\.md#([a-z0-9-]+)", a["Properties"]["AlarmDescription"])
        assert len(found) == 1, f"{logical}: its description must name one runbook section"
        out.setdefault(found[0], []).append((logical, a["Properties"]))
    return out


def test_every_alarm_with_threshold_and_runbook(res):
    by_anchor = _alarms_by_anchor(res)
    assert set(by_anchor) == set(ALARMS)
    for anchor, (ns, metric, cmp, threshold, stat) in ALARMS.items():
        for logical, p in by_anchor[anchor]:
            assert p["Namespace"] == ns and p["MetricName"] == metric, logical
            assert p["ComparisonOperator"] == cmp and p["Threshold"] == threshold, logical
            assert p.get("ExtendedStatistic", p.get("Statistic")) == stat, logical
            assert p["TreatMissingData"] in ("breaching", "notBreaching", "ignore", "missing"), logical
            assert p["AlarmActions"] == [{"Ref": "OpsTopic"}], logical


def test_latency_alarms_use_the_contract_dimensions(res):
    by_anchor = _alarms_by_anchor(res)
    for anchor, op in (
        ("store-message-latency", "store_message"),
        ("create-booking-latency", "create_booking"),
        ("availability-latency", "availability"),
        ("search-bookings-latency", "search_bookings"),
        ("assistant-tools-latency", "mcp_create_booking"),
    ):
        ((_, p),) = by_anchor[anchor]
        assert p["Period"] == 300 and p["EvaluationPeriods"] == 1
        assert {d["Name"]: d["Value"] for d in p["Dimensions"]} == {"service": "hibachi", "operation": op}
    ((_, p),) = by_anchor["reconciler-reenqueued"]
    assert p["TreatMissingData"] == "breaching"  # silence means the reconciler is not running
    ((_, p),) = by_anchor["proxy-pinned-sessions"]
    assert p["Dimensions"] == [{"Name": "ProxyName", "Value": {"Ref": "DbProxy"}}]
    ((_, p),) = by_anchor["api-5xx"]
    assert p["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]


def test_lambda_errors_and_throttles_for_every_function(res):
    by_anchor = _alarms_by_anchor(res)
    for anchor in ("lambda-errors", "lambda-throttles"):
        covered = {p["Dimensions"][0]["Value"]["Ref"] for _, p in by_anchor[anchor]}
        assert covered == set(FUNCTIONS), anchor
    queues = {
        anchor: by_anchor[anchor][0][1]["Dimensions"][0]["Value"]
        for anchor in ("jobs-dlq-depth", "scheduler-dlq-depth", "queue-age")
    }
    assert queues == {
        "jobs-dlq-depth": {"Fn::GetAtt": ["JobsDeadLetterQueue", "QueueName"]},
        "scheduler-dlq-depth": {"Fn::GetAtt": ["SchedulerDeadLetterQueue", "QueueName"]},
        "queue-age": {"Fn::GetAtt": ["JobsQueue", "QueueName"]},
    }


def test_ops_email_subscription_is_optional(tpl, res):
    sub = res["OpsEmailSubscription"]
    assert sub["Condition"] == "HasOpsEmail" and sub["Properties"]["Protocol"] == "email"
    assert tpl["Parameters"]["OpsAlarmEmail"]["Default"] == ""


AWS_DASHBOARD_METRICS = {
    "AWS/ApiGateway": {"Count", "4xx", "5xx", "Latency", "IntegrationLatency"},
    "AWS/Lambda": {"Errors", "Throttles", "Invocations", "Duration", "ConcurrentExecutions"},
    "AWS/SQS": {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
        "NumberOfMessagesSent",
        "NumberOfMessagesDeleted",
    },
    "AWS/RDS": {
        "ClientConnections",
        "DatabaseConnections",
        "DatabaseConnectionsCurrentlySessionPinned",
        "ServerlessDatabaseCapacity",
        "ACUUtilization",
    },
}


def _dashboard(res) -> dict[str, Any]:
    body = res["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    return json.loads(re.sub(r"\$\{[^}]+\}", lambda m: m.group(0).replace('"', ""), body))


def test_dashboard_references_only_real_metrics(res):
    known = _architecture_metrics()
    seen_custom = set()
    for widget in _dashboard(res)["widgets"]:
        for line in widget["properties"].get("metrics", []):
            ns, name = line[0], line[1]
            dims = [x for x in line[2:] if isinstance(x, str)]
            if ns == "${MetricsNamespace}":
                assert name in known, f"{name} is not a metric of docs/ARCHITECTURE.md"
                assert set(dims[0::2]) <= {"service", "operation", "job_type", "function_name"}, name
                assert dims[:2] == ["service", "hibachi"], name
                seen_custom.add(name)
            else:
                assert name in AWS_DASHBOARD_METRICS.get(ns, set()), f"{ns} {name}"
    latency = {m for m in known if m.endswith("Latency")}
    assert latency | {"JobsProcessed", "JobsFailed", "FollowupsSent", "ReconcilerReEnqueued"} <= seen_custom


def test_dashboard_shows_latency_percentiles_per_operation(res):
    stats = {}
    for widget in _dashboard(res)["widgets"]:
        props = widget["properties"]
        for line in props.get("metrics", []):
            if line[1].endswith("Latency") and line[0] == "${MetricsNamespace}":
                stats.setdefault(line[1], set()).add(props["stat"])
    assert stats and all(s >= {"p50", "p95", "p99"} for s in stats.values())


# -- suppressions and outputs ---------------------------------------------------------------------------
def test_every_checkov_suppression_has_a_reason(res):
    for logical, r in res.items():
        for skip in ((r.get("Metadata") or {}).get("checkov") or {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), logical
            assert len(skip.get("comment", "")) >= 20, f"{logical} {skip['id']}: no written reason"


def test_every_cfn_lint_suppression_has_a_reason():
    lines = TEMPLATE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "ignore_checks:":
            assert lines[i + 1].strip().startswith("#"), f"line {i + 1}: cfn-lint suppression without a reason"


def test_outputs(tpl):
    assert {
        "ApiUrl",
        "JobsQueueUrl",
        "JobsDlqUrl",
        "SchedulerDlqUrl",
        "FollowupTopicArn",
        "DbProxyEndpoint",
        "DashboardUrl",
    } <= set(tpl["Outputs"])


def test_parameters(tpl):
    p = tpl["Parameters"]
    assert p["Stage"]["AllowedValues"] == ["dev", "prod"]
    assert p["JwtAudience"]["Type"] == "CommaDelimitedList"
    assert p["PrivateSubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert p["DbName"]["Default"] == "hibachi"
    assert p["ExistingDbClusterIdentifier"]["Default"] == "" and p["ExistingDbSecretArn"]["Default"] == ""
    assert p["CreateVpcEndpoints"]["Default"] == "true"


def test_the_public_health_route_has_its_own_throttle_and_a_cached_probe(tpl, res):
    api = res["HttpApi"]["Properties"]
    route = api["RouteSettings"]["GET /health"]
    default = api["DefaultRouteSettings"]
    assert route["ThrottlingRateLimit"] <= 10 and route["ThrottlingBurstLimit"] <= 20
    assert default["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    env = _fn_props(tpl, "HealthFunction")["Environment"]["Variables"]
    assert 1 <= float(env["HEALTH_CACHE_SECONDS"]) <= 10


def test_with_vpc_endpoints_function_egress_goes_to_them_s3_and_the_proxy_only(tpl, res):
    sg = res["FunctionSecurityGroup"]["Properties"]
    (proxy,) = sg["SecurityGroupEgress"]
    assert proxy["DestinationSecurityGroupId"] == {"Ref": "ProxySecurityGroup"} and proxy["FromPort"] == 5432
    egress = _of_type(res, "AWS::EC2::SecurityGroupEgress")
    restricted = {k: v for k, v in egress.items() if v.get("Condition") == "EgressThroughEndpoints"}
    anywhere = {k: v for k, v in egress.items() if v.get("Condition") == "EgressThroughNat"}
    targets = sorted(
        next(iter({k: v for k, v in r["Properties"].items() if k.startswith("Destination")}.values()))["Ref"]
        for r in restricted.values()
    )
    assert targets == ["EndpointSecurityGroup", "S3PrefixListId"]
    assert all(r["Properties"]["FromPort"] == r["Properties"]["ToPort"] == 443 for r in egress.values())
    (nat,) = anywhere.values()
    assert nat["Properties"]["CidrIp"] == "0.0.0.0/0"
    assert tpl["Conditions"]["EgressThroughNat"] == {"Fn::Not": [{"Condition": "EgressThroughEndpoints"}]}


# -- events -------------------------------------------------------------------------------
EVENT_SOURCES = ["hibachi.bookings", "hibachi.conversations"]


def test_the_worker_publishes_to_the_stacks_bus_only(tpl, res):
    env = _fn_props(tpl, "FollowupWorkerFunction")["Environment"]["Variables"]
    assert env["EVENT_BUS_NAME"] == {"Ref": "EventBus"}
    assert _allowed(res, "FollowupWorkerRole")["events:PutEvents"] == [{"Fn::GetAtt": ["EventBus", "Arn"]}]
    assert res["EventsEndpoint"]["Properties"]["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.events"}


def test_the_archive_keeps_every_event_for_the_parameters_days(tpl, res):
    archive = res["EventArchive"]["Properties"]
    assert archive["SourceArn"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    assert archive["RetentionDays"] == {"Ref": "EventArchiveRetentionDays"}
    assert archive["EventPattern"] == {"source": EVENT_SOURCES}
    assert tpl["Parameters"]["EventArchiveRetentionDays"]["Default"] == 90


def test_the_staff_notice_is_one_line_to_an_encrypted_topic(res):
    rule = res["StaffNoticeRule"]["Properties"]
    assert rule["EventBusName"] == {"Ref": "EventBus"} and rule["EventPattern"] == {"source": EVENT_SOURCES}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "StaffNoticeTopic"}
    # only the detail's notice line goes out (no customer contact data: docs/EVENTS.md)
    assert target["InputTransformer"] == {"InputPathsMap": {"notice": "$.detail.notice"}, "InputTemplate": '"<notice>"'}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventDeliveryDeadLetterQueue", "Arn"]}}
    assert res["StaffNoticeTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "AppKey"}
    statements = {st["Sid"]: st for st in _topic_policy(res, "StaffNoticeTopic")}
    publish = statements["StaffNoticeRulePublishes"]
    assert publish["Principal"] == {"Service": "events.amazonaws.com"} and publish["Action"] == "sns:Publish"
    assert publish["Condition"] == {"ArnLike": {"aws:SourceArn": {"Fn::GetAtt": ["StaffNoticeRule", "Arn"]}}}
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    key = {st["Sid"]: st for st in res["AppKey"]["Properties"]["KeyPolicy"]["Statement"]}
    assert key["EventBridgeRulesOfThisStackPublishToStaffNotices"]["Principal"] == {"Service": "events.amazonaws.com"}


def test_the_webhook_is_optional_with_its_key_in_secrets_manager_a_retry_policy_and_its_own_dlq(tpl, res):
    conditional = ["WebhookConnection", "WebhookDestination", "WebhookRole", "WebhookRule", "WebhookDeadLetterQueue"]
    for logical in conditional:
        assert res[logical]["Condition"] == "HasWebhook", logical
    assert tpl["Parameters"]["EventWebhookUrl"]["Default"] == ""
    auth = res["WebhookConnection"]["Properties"]
    assert auth["AuthorizationType"] == "API_KEY"
    key = auth["AuthParameters"]["ApiKeyAuthParameters"]
    assert key["ApiKeyName"] == {"Ref": "EventWebhookApiKeyHeader"}
    assert key["ApiKeyValue"]["Fn::Sub"].startswith("{{resolve:secretsmanager:${EventWebhookApiKeySecretArn}")
    assert res["WebhookDestination"]["Properties"]["InvocationEndpoint"] == {"Ref": "EventWebhookUrl"}
    (target,) = res["WebhookRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["WebhookDestination", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0 and target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}}
    assert res["WebhookDlqDepthAlarm"]["Condition"] == "HasWebhook"
    assert "WebhookNeedsItsKey" in tpl["Rules"]
