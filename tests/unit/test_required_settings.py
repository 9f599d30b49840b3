"""Settings a function cannot start without: on AWS a missing one fails the cold start with one
clear log line; the template sets every one of them for the function that requires it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from hibachi import settings as settings_module
from hibachi.settings import MissingSettings, Settings, require_on_aws

from local.routes import load_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def on_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "hibachi-store-message")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    yield
    settings_module.set_settings(None)


def test_on_aws_a_missing_setting_fails_the_start_with_one_log_line(
    on_aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    settings_module.set_settings(Settings(database_url=None, db_host="proxy.example", jobs_queue_url=None))
    with pytest.raises(MissingSettings, match="JOBS_QUEUE_URL"):
        require_on_aws("db_host", "jobs_queue_url")
    lines = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(lines) == 1
    assert lines[0].missing_settings == ["JOBS_QUEUE_URL"]  # type: ignore[attr-defined]  # the log's extra
    assert "JOBS_QUEUE_URL" in lines[0].getMessage()


def test_on_aws_with_every_setting_the_start_goes_on(on_aws: None) -> None:
    settings_module.set_settings(
        Settings(database_url=None, db_host="proxy.example", jobs_queue_url="https://sqs.example/q")
    )
    require_on_aws("db_host", "jobs_queue_url")


def test_with_a_database_url_or_outside_lambda_nothing_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    settings_module.set_settings(Settings(database_url=None, db_host=None, jobs_queue_url=None))
    try:
        require_on_aws("db_host", "jobs_queue_url")  # tests, bench: not in Lambda
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "local")
        settings_module.set_settings(Settings(database_url="postgresql://local/db", jobs_queue_url=None))
        require_on_aws("jobs_queue_url")  # the local stack: a DATABASE_URL
    finally:
        settings_module.set_settings(None)


def test_a_name_that_is_no_setting_is_an_error() -> None:
    with pytest.raises(ValueError, match="not settings: jobs_queue"):
        require_on_aws("jobs_queue")


def _required(app: Path) -> list[str]:
    """The names a function's module passes to require_on_aws."""
    for node in ast.walk(ast.parse(app.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require_on_aws":
            return [ast.literal_eval(arg) for arg in node.args]
    return []


def test_the_template_sets_what_each_function_requires() -> None:
    template = load_template(ROOT / "template.yaml")
    common = set((template["Globals"]["Function"].get("Environment") or {}).get("Variables") or {})
    checked = 0
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        own = set((props.get("Environment") or {}).get("Variables") or {})
        required = _required(ROOT / str(props["CodeUri"]) / "app.py")
        missing = sorted({name.upper() for name in required} - common - own)
        assert missing == [], f"{logical_id} requires {missing}, which template.yaml does not set"
        checked += len(required)
    assert checked >= 5
