"""Packaging check: every function's handler imports from the ``sam build`` output alone.

    python -m tools.package_check BUILD_DIR RUNTIME_DIR

``BUILD_DIR`` is a ``sam build`` made for this machine's architecture (``scripts/sam-check.sh
--package-check`` makes one in ``.aws-sam-host``); ``RUNTIME_DIR`` holds boto3, which the Lambda
runtime provides. Each function is imported in a fresh interpreter without site-packages, the
project checkout or PYTHONPATH: its ``sys.path`` is the function's build folder (``/var/task``),
the layer's ``python`` folder (``/opt/python``) and ``RUNTIME_DIR``, as on Lambda. A module or
package missing from the artifact fails the import, so the check fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from local.routes import load_app

ROOT = Path(__file__).resolve().parent.parent

# Enough environment for the import: a DATABASE_URL (nothing connects at import) and the region.
IMPORT_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "DATABASE_URL": "postgresql://hibachi@127.0.0.1:9/hibachi",
    "POWERTOOLS_SERVICE_NAME": "hibachi",
    "POWERTOOLS_METRICS_NAMESPACE": "Hibachi",
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
    "PATH": os.environ.get("PATH", ""),
}

_IMPORT = """
import importlib, sys
module_name, handler_name = sys.argv[1], sys.argv[2]
module = importlib.import_module(module_name)
handler = getattr(module, handler_name)
assert callable(handler), f"{module_name}.{handler_name} is not callable"
print(module.__file__)
"""


def check(build: Path, runtime: Path, template: Path = ROOT / "template.yaml") -> list[str]:
    """The failures (empty: every function imports)."""
    app = load_app(template, {"ExposeApiDocs": "true"})  # every function sam build builds
    layers = sorted(p / "python" for p in build.iterdir() if (p / "python").is_dir())
    if not layers:
        return [f"{build}: no layer build (a folder with python/)"]
    failures = []
    for fn in sorted(app.functions.values(), key=lambda f: f.logical_id):
        task = build / fn.logical_id
        if not task.is_dir():
            failures.append(f"{fn.logical_id}: not in {build}")
            continue
        path = [str(task), *map(str, layers), str(runtime)]
        with tempfile.TemporaryDirectory() as cwd:
            # -I: no PYTHONPATH, no user site, no current folder; -S: no site-packages
            proc = subprocess.run(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    f"import sys; sys.path[:0] = {path!r}\n{_IMPORT}",
                    fn.module_name,
                    fn.handler_name,
                ],
                cwd=cwd,
                env=IMPORT_ENV,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        if proc.returncode != 0:
            failures.append(f"{fn.logical_id} ({fn.handler}): {proc.stderr.strip().splitlines()[-1:]}")
        elif not proc.stdout.strip().startswith(str(task)):
            failures.append(f"{fn.logical_id}: {fn.module_name} came from {proc.stdout.strip()}, not the build")
        else:
            print(f"package-check: {fn.logical_id}: {fn.handler} imports from {task}")
    return failures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    failures = check(Path(args[0]).resolve(), Path(args[1]).resolve())
    for failure in failures:
        print(f"package-check: FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
