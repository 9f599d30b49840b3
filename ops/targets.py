"""Where the ops CLI acts: the local stack (moto + the local PostgreSQL, in process) or a deployed
stack (AWS, normal boto3 credentials; resources resolved from CloudFormation).

On AWS nothing connects to the database from the laptop: database figures come from the
HealthFunction (a direct ``lambda invoke`` with ``{"ops": ...}``), and the reconciler runs in the
worker function (``{"task": "reconcile"}``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
QUEUE_NAMES = ("jobs", "jobs_dlq", "scheduler_dlq")


class TargetError(RuntimeError):
    """Something the operator must fix (a missing stack, an unreachable endpoint)."""


def _ensure_layer_on_path() -> None:
    for path in (str(LAYER), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


def _load_function(name: str) -> ModuleType:
    """``functions/<name>/app.py`` loaded by file path, as Lambda (and the local stack) loads it."""
    module_name = f"_ops_fn_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _plain_dict(value: object) -> dict[str, Any]:
    """``value`` as JSON would carry it (dates and decimals as strings)."""
    return cast(dict[str, Any], json.loads(json.dumps(value, default=str)))


def _plain_list(value: object) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], json.loads(json.dumps(value, default=str)))


class Target:
    kind = "?"
    sqs: Any

    def queue_urls(self) -> dict[str, str | None]:
        raise NotImplementedError

    def queue_arn(self, url: str) -> str:
        return str(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

    def oldest_age_s(self) -> float | None:
        return None

    def details(self) -> dict[str, Any]:
        raise NotImplementedError

    def followups(self, status: str, limit: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def reconciler_runs(self, limit: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def event_backlog(self) -> dict[str, Any]:
        raise NotImplementedError

    def events_feed(self) -> str:
        raise NotImplementedError

    def reconcile(self) -> dict[str, Any]:
        raise NotImplementedError

    def health(self) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def codes(self, conversation_id: str | None) -> list[dict[str, Any]]:
        """The one-time codes delivered (the local stack only: on AWS they go to the customer's phone)."""
        raise TargetError("the codes sent are readable on the local stack only (--local)")

    supports_move_task = False


# -- the local stack ----------------------------------------------------------------------------------
def default_endpoint() -> str:
    return os.environ.get("LOCAL_AWS_ENDPOINT_URL") or f"http://127.0.0.1:{os.environ.get('LOCAL_MOTO_PORT', '5055')}"


def default_database_url() -> str:
    return (
        os.environ.get("DATABASE_URL")
        or f"postgresql://postgres@127.0.0.1:{os.environ.get('LOCAL_PG_PORT', '54329')}/hibachi"
    )


class LocalTarget(Target):
    """``python -m local.run``'s stack: its moto endpoint and its database, with the app's code run
    in this process (the health checks, the reconciler)."""

    kind = "local"

    def __init__(
        self,
        endpoint_url: str | None = None,
        database_url: str | None = None,
        prefix: str = "hibachi",
        region: str = "us-east-1",
    ):
        import boto3
        from botocore.config import Config

        self.endpoint_url = endpoint_url or default_endpoint()
        self.database_url = database_url or default_database_url()
        self.prefix = prefix
        self.region = region
        self.sqs = boto3.client(
            "sqs",
            endpoint_url=self.endpoint_url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials (local stack only)
            config=Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 2}),
        )
        self._urls: dict[str, str | None] | None = None

    def queue_urls(self) -> dict[str, str | None]:
        if self._urls is None:
            names = {
                "jobs": f"{self.prefix}-jobs",
                "jobs_dlq": f"{self.prefix}-jobs-dlq",
                "scheduler_dlq": f"{self.prefix}-scheduler-dlq",
            }
            urls: dict[str, str | None] = {}
            for key, name in names.items():
                try:
                    urls[key] = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
                except self.sqs.exceptions.QueueDoesNotExist:
                    urls[key] = None
                except Exception as exc:
                    raise TargetError(
                        f"cannot reach the local AWS endpoint {self.endpoint_url} "
                        f"(is `python -m local.run` running?): {type(exc).__name__}"
                    ) from exc
            self._urls = urls
        return self._urls

    @contextlib.contextmanager
    def app(self) -> Iterator[None]:
        """Run the app's code here with the local stack's settings; restore everything after."""
        urls = self.queue_urls()
        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            # what the local stack gives its functions (Powertools reads them when hibachi is imported)
            "POWERTOOLS_SERVICE_NAME": os.environ.get("POWERTOOLS_SERVICE_NAME", "hibachi"),
            "POWERTOOLS_METRICS_NAMESPACE": os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Hibachi"),
        }
        saved_env = {k: os.environ.get(k) for k in (*env, "AWS_SESSION_TOKEN", "AWS_PROFILE")}
        os.environ.update(env)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        _ensure_layer_on_path()
        from hibachi import settings as settings_module
        from hibachi.observability import logger

        previous = settings_module.get_settings()
        handler = logger.registered_handler
        stream = handler.stream if isinstance(handler, logging.StreamHandler) else None
        settings_module.set_settings(
            settings_module.Settings(
                database_url=self.database_url,
                db_iam_auth=False,
                db_sslmode="disable",
                aws_region=self.region,
                jobs_queue_url=urls.get("jobs"),
                jobs_dlq_url=urls.get("jobs_dlq"),
                scheduler_dlq_url=urls.get("scheduler_dlq"),
                event_bus_name=f"{self.prefix}-events",
                service_name=env["POWERTOOLS_SERVICE_NAME"],
                app_version=os.environ.get("APP_VERSION", "local"),
            )
        )
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)  # the app's JSON logs on stderr; our output on stdout
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # EMF lines: nobody reads them here
                yield
        finally:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
            settings_module.set_settings(previous)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def codes(self, conversation_id: str | None) -> list[dict[str, Any]]:
        from local.aws import CODES_QUEUE, sent_codes

        try:
            url = self.sqs.get_queue_url(QueueName=f"{self.prefix}-{CODES_QUEUE}")["QueueUrl"]
        except self.sqs.exceptions.QueueDoesNotExist:
            return []
        return sent_codes(self.sqs, url, conversation_id=conversation_id)

    def details(self) -> dict[str, Any]:
        with self.app():
            from hibachi import health

            return _plain_dict(health.details())

    def followups(self, status: str, limit: int) -> list[dict[str, Any]]:
        with self.app():
            from hibachi import ops
            from hibachi.db import get_db

            return _plain_list(ops.list_followups(get_db(), status, limit))

    def reconciler_runs(self, limit: int) -> list[dict[str, Any]]:
        with self.app():
            from hibachi import ops
            from hibachi.db import get_db

            return _plain_list(ops.reconciler_runs(get_db(), limit))

    def event_backlog(self) -> dict[str, Any]:
        with self.app():
            from hibachi import ops
            from hibachi.db import get_db

            return cast(dict[str, Any], json.loads(json.dumps(ops.event_backlog(get_db()), default=str)))

    def events_feed(self) -> str:
        """The local stack's queue of every published event (a rule on the bus: local.aws)."""
        try:
            return str(self.sqs.get_queue_url(QueueName=f"{self.prefix}-events")["QueueUrl"])
        except Exception as exc:
            raise TargetError(
                f"no events queue {self.prefix}-events on {self.endpoint_url}: {type(exc).__name__}"
            ) from exc

    def reconcile(self) -> dict[str, Any]:
        with self.app():
            from local.events import LambdaContext

            worker = _load_function("followup_worker")
            try:
                result = worker.lambda_handler({"task": "reconcile"}, LambdaContext(function_name="ops-cli-reconcile"))
                return cast(dict[str, Any], result)
            except Exception as exc:
                raise TargetError(f"FollowupWorkerFunction failed: {type(exc).__name__}: {exc}") from exc

    def health(self) -> tuple[int, dict[str, Any]]:
        with self.app():
            from hibachi import health

            result = health.check()
            return (200 if result.status == "ok" else 503), result.model_dump(mode="json")


# -- a deployed stack ---------------------------------------------------------------------------------
class AwsTarget(Target):
    kind = "aws"
    supports_move_task = True

    def __init__(self, stack: str, region: str | None = None, profile: str | None = None):
        import boto3
        from botocore.config import Config

        self.stack = stack
        self.session = boto3.Session(profile_name=profile, region_name=region)
        self.sqs = self.session.client("sqs")
        self.cfn = self.session.client("cloudformation")
        # the worker may run for its whole timeout (60 s)
        self.lambda_ = self.session.client("lambda", config=Config(read_timeout=120, retries={"max_attempts": 1}))
        self._outputs: dict[str, str] | None = None
        self._physical: dict[str, str] = {}

    def outputs(self) -> dict[str, str]:
        if self._outputs is None:
            try:
                stack = self.cfn.describe_stacks(StackName=self.stack)["Stacks"][0]
            except Exception as exc:
                raise TargetError(f"stack {self.stack!r}: {exc}") from exc
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return self._outputs

    def physical_id(self, logical_id: str) -> str:
        if logical_id not in self._physical:
            try:
                detail = self.cfn.describe_stack_resource(StackName=self.stack, LogicalResourceId=logical_id)
            except Exception as exc:
                raise TargetError(f"stack {self.stack!r} has no resource {logical_id}: {exc}") from exc
            self._physical[logical_id] = detail["StackResourceDetail"]["PhysicalResourceId"]
        return self._physical[logical_id]

    def queue_urls(self) -> dict[str, str | None]:
        out = self.outputs()
        resources = {
            "jobs": ("JobsQueueUrl", "JobsQueue"),
            "jobs_dlq": ("JobsDlqUrl", "JobsDeadLetterQueue"),
            "scheduler_dlq": ("SchedulerDlqUrl", "SchedulerDeadLetterQueue"),
        }
        # an SQS queue's physical id is its URL
        return {key: out.get(output) or self.physical_id(logical) for key, (output, logical) in resources.items()}

    def oldest_age_s(self) -> float | None:
        """The jobs queue's ApproximateAgeOfOldestMessage (CloudWatch, last 5 minutes)."""
        import datetime as dt

        url = self.queue_urls()["jobs"] or ""
        now = dt.datetime.now(dt.UTC)
        try:
            points = self.session.client("cloudwatch").get_metric_statistics(
                Namespace="AWS/SQS",
                MetricName="ApproximateAgeOfOldestMessage",
                Dimensions=[{"Name": "QueueName", "Value": url.rsplit("/", 1)[-1]}],
                StartTime=now - dt.timedelta(minutes=5),
                EndTime=now,
                Period=60,
                Statistics=["Maximum"],
            )["Datapoints"]
        except Exception:  # noqa: BLE001 - optional figure
            return None
        return max((p["Maximum"] for p in points), default=None)

    def _invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        response = self.lambda_.invoke(FunctionName=self.physical_id(logical_id), Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise TargetError(f"{logical_id} failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
        return payload

    def _ops(self, event: dict[str, Any]) -> Any:
        payload = self._invoke("HealthFunction", event)
        if "error" in payload:
            raise TargetError(f"HealthFunction: {payload['error']}")
        return payload["result"]

    def details(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._ops({"ops": "details"}))

    def followups(self, status: str, limit: int) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._ops({"ops": "followups", "status": status, "limit": limit}))

    def reconciler_runs(self, limit: int) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._ops({"ops": "reconciler_runs", "limit": limit}))

    def event_backlog(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._ops({"ops": "events_backlog"}))

    def events_feed(self) -> str:
        raise TargetError(
            "--follow reads the local stack's events queue; on AWS subscribe a queue to the bus "
            "(stack output EventBusName) or read the staff notice topic"
        )

    def reconcile(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._invoke("FollowupWorkerFunction", {"task": "reconcile"}))

    def health(self) -> tuple[int, dict[str, Any]]:
        """``GET /health`` through the HTTP API, as a customer's request would go."""
        url = self.outputs().get("ApiUrl")
        if not url:
            raise TargetError(f"stack {self.stack!r} has no ApiUrl output")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}
