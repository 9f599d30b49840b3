"""Load a function's handler module by file path, once per process, the way Lambda loads it (no
package, no relative imports): for the tests and the benchmark, which call handlers in process."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"

_loaded: dict[str, ModuleType] = {}
_lock = threading.Lock()


def load_function(name: str) -> ModuleType:
    """``functions/<name>/app.py`` as module ``fn_<name>_app`` (the layer must be on ``sys.path``)."""
    with _lock:
        if name not in _loaded:
            spec = importlib.util.spec_from_file_location(f"fn_{name}_app", FUNCTIONS / name / "app.py")
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            _loaded[name] = module
        return _loaded[name]
