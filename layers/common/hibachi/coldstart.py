"""The init phase without the cyclic garbage collector.

A function's init (its ``app.py``: the imports, the pydantic models, the routes) makes ~80,000
objects that live as long as the execution environment, and next to no garbage (about 500
unreachable objects in ``create_booking``'s). With the collector on, Python scans those objects
again and again while the init makes them: about 100 collections, ~5 % of the import's CPU.

So every ``app.py`` turns the collector off as its first statement (``gc.disable()``, before any
import) and calls ``init_done()`` as its last: the init's objects move to the permanent generation
(``gc.freeze``: no later collection scans them again, a full one included) and the collector is on
again for the requests. ``tests/perf/test_cold_imports.py`` checks both ends in every function.
"""

from __future__ import annotations

import gc


def init_done() -> None:
    """End of the init: freeze what it made, turn the cyclic collector back on."""
    gc.freeze()
    gc.enable()
