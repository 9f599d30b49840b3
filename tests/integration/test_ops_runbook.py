"""RUNBOOK.md against what it documents: a section for every alarm's runbook link in template.yaml,
internal links that resolve (GitHub anchors), and ``python -m ops`` commands the CLI accepts."""

from __future__ import annotations

import re
import shlex

import pytest

from ops.cli import build_parser
from tests.support.common import ROOT

RUNBOOK = (ROOT / "RUNBOOK.md").read_text(encoding="utf-8")
ALARM_SECTIONS = {
    "store-message-latency",
    "create-booking-latency",
    "availability-latency",
    "search-bookings-latency",
    "assistant-tools-latency",
    "api-5xx",
    "lambda-errors",
    "lambda-throttles",
    "jobs-dlq-depth",
    "scheduler-dlq-depth",
    "queue-age",
    "reconciler-reenqueued",
    "proxy-pinned-sessions",
}


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def anchors() -> set[str]:
    return {github_slug(line.lstrip("#")) for line in RUNBOOK.splitlines() if re.match(r"#{1,6} ", line)}


def test_every_alarm_section_is_a_heading():
    assert anchors() >= ALARM_SECTIONS
    for section in ALARM_SECTIONS:
        assert f"\n## {section}\n" in RUNBOOK, f"## {section}: the heading is the anchor itself"


def test_the_templates_runbook_links_resolve():
    template = ROOT / "template.yaml"
    if not template.exists():
        pytest.skip("no template.yaml")
    linked = set(re.findall(r"RUNBOOK\.md#([A-Za-z0-9_-]+)", template.read_text(encoding="utf-8")))
    assert linked, "the alarms link to their runbook sections"
    assert linked <= anchors(), linked - anchors()


def test_internal_links_resolve():
    links = set(re.findall(r"\]\(#([^)]+)\)", RUNBOOK))
    assert links and links <= anchors(), links - anchors()


def runbook_commands() -> list[str]:
    found = []
    for line in RUNBOOK.splitlines():
        for match in re.finditer(r"python -m ops ([^`#\n]+)", line):
            command = match.group(1).strip()
            if "..." in command:  # prose such as "python -m ops ... queues"
                continue
            found.append(command)
    return found


@pytest.mark.parametrize("command", runbook_commands())
def test_documented_commands_parse(command):
    values = {"$STACK": "hibachi-prod", "<message id>": "m-1", "<message or job id>": "m-1"}
    for placeholder, value in values.items():
        command = command.replace(placeholder, value)
    argv = shlex.split(command)
    if argv[0] not in ("--local", "--stack"):
        argv = ["--local", *argv]  # "python -m ops reconcile" in prose: any target will do
    build_parser().parse_args(argv)  # exits (SystemExit) on an unknown command or option
