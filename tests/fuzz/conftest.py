"""The local stack of tests/reliability/harness.py, for this folder (package scope: see _Shared)."""

from tests.reliability.harness import package_stack_fixture

rel = package_stack_fixture()
