"""The local stack of tests/reliability/harness.py (shared with other folders: see _Shared), and
the schemathesis schema of its live document with every check."""

import pytest
import schemathesis
from schemathesis import checks as st_checks
from schemathesis.config import SchemathesisConfig

from tests.support.fuzz import CONFIG
from tests.support.stack import package_stack_fixture

rel = package_stack_fixture()


@pytest.fixture(scope="module")
def api_schema(rel):
    # the gateway gathers the document from every function, each cold-started in a worker process
    # of its own: more than schemathesis' default 10 s on a busy machine
    return schemathesis.openapi.from_url(
        f"{rel.stack.url}/openapi.json", config=SchemathesisConfig.from_str(CONFIG), timeout=120
    )


@pytest.fixture(scope="module")
def checks():
    st_checks.load_all_checks()
    return list(st_checks.CHECKS.get_all())
