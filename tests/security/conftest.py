"""The local stack of tests/reliability/harness.py, shared with other folders (see _Shared)."""

from tests.reliability.harness import package_stack_fixture

rel = package_stack_fixture()
