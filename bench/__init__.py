"""The reproducible benchmark (issue 5): ``python -m bench.run`` (``make bench``) rewrites BENCHMARKS.md.

Modules: ``operations`` (what is measured: one entry per API operation, cold-started function and
job type), ``env`` (PostgreSQL, moto, settings), ``measure`` (closed-loop runners, percentiles,
statement capture), ``reference`` (the old system's flows in plain SQL), ``coldstart``, ``sizes``,
``worker``, ``plan`` (the sample sizes and the results), ``report`` (renders the results) and ``run``
(runs the phases). Importing this package imports nothing heavy.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
FUNCTIONS = ROOT / "functions"

for _path in (str(ROOT), str(LAYER)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
