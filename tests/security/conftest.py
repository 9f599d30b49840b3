"""The local stack of tests/reliability/harness.py, shared with other folders (see _Shared)."""

from tests.support.stack import package_stack_fixture

rel = package_stack_fixture()
