"""template.yaml: cfn-lint and checkov run by CI, and the database reachable
only from the functions' security group through the proxy's. The IAM, encryption and per-function
permission rules are in tests/unit/test_template.py (no Resource "*" on data actions, least
privilege per role, queues/topics/log groups encrypted, every suppression with a reason)."""

from __future__ import annotations

import pytest

from local.routes import load_template
from tests.support.common import ROOT

TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def res():
    return load_template(TEMPLATE)["Resources"]


def ref(value) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def test_ci_runs_cfn_lint_on_the_template():
    """cfn-lint runs once, in CI's template checks (``sam validate --lint``, which fails on any
    finding), not again in the suite: it costs 8 s of CPU here, for the same answer."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/sam-check.sh" in ci
    script = (ROOT / "scripts" / "sam-check.sh").read_text()
    assert "validate --lint --template-file template.yaml" in script and "set -e" in script


def test_ci_runs_checkov_and_fails_on_a_failed_check():
    """checkov runs in its own virtualenv (it pins its own botocore), so CI runs it through
    scripts/sam-check.sh after the test suite; the script exits 1 on any failed check."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/sam-check.sh --checkov" in ci
    script = (ROOT / "scripts" / "sam-check.sh").read_text()
    assert "sys.exit(1 if failed else 0)" in script and "--framework cloudformation" in script


def test_database_is_reachable_only_from_the_functions_through_the_proxy(res):
    tpl = load_template(TEMPLATE)
    functions = {k: v for k, v in res.items() if v["Type"] == "AWS::Serverless::Function"}
    assert "VpcConfig" not in tpl["Globals"]["Function"]  # per function: the docs function has none
    for name, fn in functions.items():
        vpc = fn["Properties"].get("VpcConfig")
        if name == "DocsFunction":  # a static document: no VPC, no database settings
            assert vpc is None, name
            continue
        assert [ref(g) for g in vpc["SecurityGroupIds"]] == ["FunctionSecurityGroup"], name

    assert [ref(g) for g in res["DbProxy"]["Properties"]["VpcSecurityGroupIds"]] == ["ProxySecurityGroup"]
    assert [ref(g) for g in res["DbCluster"]["Properties"]["VpcSecurityGroupIds"]] == ["DbSecurityGroup"]
    for name, r in res.items():
        if r["Type"] == "AWS::RDS::DBInstance":
            assert r["Properties"]["PubliclyAccessible"] is False, name

    def ingress_of(group: str) -> list[dict]:
        rules = [
            r["Properties"]
            for r in res.values()
            if r["Type"] == "AWS::EC2::SecurityGroupIngress" and ref(r["Properties"]["GroupId"]) == group
        ]
        return rules + list(res[group]["Properties"].get("SecurityGroupIngress") or [])

    for group, source in (("DbSecurityGroup", "ProxySecurityGroup"), ("ProxySecurityGroup", "FunctionSecurityGroup")):
        rules = ingress_of(group)
        assert len(rules) == 1, (group, rules)
        (rule,) = rules
        assert ref(rule.get("SourceSecurityGroupId")) == source, (group, rule)
        assert rule["FromPort"] == rule["ToPort"] == 5432 and rule["IpProtocol"] == "tcp", (group, rule)
        assert not {"CidrIp", "CidrIpv6", "SourcePrefixListId"} & set(rule), (group, rule)
