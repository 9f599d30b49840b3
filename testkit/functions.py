"""Load a function's handler module by file path, once per process, the way Lambda loads it (no
package, no relative imports): for the tests and the benchmark, which call handlers in process."""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType

from local.runtime import load_module

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"

_loaded: dict[str, ModuleType] = {}
_lock = threading.Lock()


def load_function(name: str) -> ModuleType:
    """``functions/<name>/app.py`` as module ``fn_<name>_app`` (the layer must be on ``sys.path``)."""
    with _lock:
        if name not in _loaded:
            _loaded[name] = load_module(FUNCTIONS / name / "app.py", f"fn_{name}_app")
        return _loaded[name]
