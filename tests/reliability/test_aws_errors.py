"""hibachi.aws.error_code on the errors a dropped connection raises (seen in the chaos run: the
worker logged AttributeError instead of the connection error while SQS/SNS/Scheduler flapped)."""

from __future__ import annotations

from botocore.exceptions import ConnectionClosedError, EndpointConnectionError


def test_error_code_of_a_closed_connection_is_empty():
    from hibachi.aws import error_code

    assert error_code(EndpointConnectionError(endpoint_url="http://127.0.0.1:1")) == ""
    assert error_code(ConnectionClosedError(endpoint_url="http://127.0.0.1:1")) == ""
