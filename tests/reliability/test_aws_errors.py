"""hibachi.aws.error_code on the errors a dropped connection raises (seen in the chaos run: the
worker logged AttributeError instead of the connection error while SQS/SNS/Scheduler flapped)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError


@pytest.mark.xfail(strict=True, reason=(
    "hibachi/aws.py (not ours to change): error_code() does getattr(exc, 'response', {}).get(...), and "
    "botocore's ConnectionClosedError has response=None, so it raises AttributeError inside the caller's "
    "except block (the follow-up job still fails and is retried, but the real error is lost from the "
    "logs). Fix: (getattr(exc, 'response', None) or {}).get(...)"))
def test_error_code_of_a_closed_connection_is_empty():
    from hibachi.aws import error_code

    assert error_code(EndpointConnectionError(endpoint_url="http://127.0.0.1:1")) == ""
    assert error_code(ConnectionClosedError(endpoint_url="http://127.0.0.1:1")) == ""
