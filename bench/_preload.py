"""Imported once by the forkserver of ``bench.envs``: every environment process forks from it with
the handlers (and boto3, which their first SQS send imports) already imported."""

import bench  # noqa: F401 - sys.path
from bench.operations import OPERATIONS
from testkit.functions import load_function

for _function in dict.fromkeys(op.function for op in OPERATIONS):
    load_function(_function)

import boto3  # noqa: E402, F401
import botocore.client  # noqa: E402, F401
