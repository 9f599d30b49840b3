"""``hibachi.sqs.endpoint_url``: the endpoint a job is posted to, against botocore's own choice for
the same region and options (every partition, FIPS, dual-stack), and the variables that override it."""

from __future__ import annotations

import functools

import botocore.session
import pytest
from botocore.config import Config
from hibachi import sqs
from hibachi.settings import Settings

REGIONS = ["us-east-1", "eu-west-1", "cn-north-1", "cn-northwest-1", "us-gov-west-1", "ap-southeast-5"]


_session = botocore.session.get_session()


@functools.cache
def botocore_endpoint(region: str, *, fips: bool = False, dualstack: bool = False) -> str:
    session = _session
    config = Config(use_fips_endpoint=fips, use_dualstack_endpoint=dualstack)
    client = session.create_client("sqs", region, config=config, aws_access_key_id="a", aws_secret_access_key="b")
    return str(client.meta.endpoint_url)


def queue_url(region: str) -> str:
    """A queue URL as SQS answers it (CreateQueue, GetQueueUrl, a CloudFormation !Ref)."""
    return f"{botocore_endpoint(region)}/123456789012/jobs"


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize(("fips", "dualstack"), [(False, False), (True, False), (False, True), (True, True)])
def test_the_endpoint_is_botocores_for_every_partition_fips_and_dualstack(region, fips, dualstack):
    ours = sqs.endpoint_url(queue_url(region), region, fips=fips, dualstack=dualstack)
    assert ours == botocore_endpoint(region, fips=fips, dualstack=dualstack)


def test_a_china_queue_is_posted_to_its_partitions_host():
    url = "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/jobs"
    assert sqs.endpoint_url(url, "cn-north-1") == "https://sqs.cn-north-1.amazonaws.com.cn"
    assert sqs.Sqs("cn-north-1", sqs.endpoint_url(url, "cn-north-1"))._url == "https://sqs.cn-north-1.amazonaws.com.cn/"


def test_the_sqs_variable_wins_and_a_custom_endpoint_keeps_its_path():
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"
    assert sqs.endpoint_url(url, "us-east-1", any_endpoint="http://localhost:4566/") == "http://localhost:4566"
    assert sqs.endpoint_url(url, "us-east-1", any_endpoint="https://gw.example/sqs") == "https://gw.example/sqs"
    both = sqs.endpoint_url(url, "us-east-1", sqs_endpoint="https://vpce.example/", any_endpoint="http://other")
    assert both == "https://vpce.example"
    # a custom endpoint is taken as it is, FIPS or not
    assert sqs.endpoint_url(url, "us-east-1", any_endpoint="https://gw.example", fips=True) == "https://gw.example"
    client = sqs.Sqs("us-east-1", "https://gw.example/sqs")
    assert (client._path, client._url, client._host_header) == ("/sqs", "https://gw.example/sqs", "gw.example")


def test_no_queue_url_falls_back_to_the_regions_host():
    assert sqs.endpoint_url(None, "eu-west-1") == "https://sqs.eu-west-1.amazonaws.com"


def test_the_settings_read_botocores_variables(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "https://vpce-1.sqs.us-east-1.vpce.amazonaws.com")
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    monkeypatch.setenv("AWS_USE_DUALSTACK_ENDPOINT", "true")
    settings = Settings(jobs_queue_url="https://sqs.us-east-1.amazonaws.com/1/jobs")
    assert (settings.aws_use_fips_endpoint, settings.aws_use_dualstack_endpoint) == (True, True)
    assert sqs.settings_endpoint(settings, settings.jobs_queue_url) == "https://vpce-1.sqs.us-east-1.vpce.amazonaws.com"
    monkeypatch.delenv("AWS_ENDPOINT_URL_SQS")
    settings = Settings()
    assert sqs.settings_endpoint(settings, "https://sqs.us-east-1.amazonaws.com/1/jobs") == (
        "https://sqs-fips.us-east-1.api.aws"
    )
