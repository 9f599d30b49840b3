"""What the MCP libraries would add to the assistant_tools cold start: ``python -m bench.mcp_libraries``.

``functions/assistant_tools`` speaks MCP with ``hibachi.mcp`` (its own JSON-RPC plumbing) instead of a
library. This measures why, in fresh processes started the way the cold-start bench starts a function
(its folder as the working directory, the layer on PYTHONPATH), interleaved round by round:

- ``import app``: the function as it is;
- ``import app`` + the official SDK's server side that a Lambda handler would need
  (``mcp.server.lowlevel.Server``, ``StreamableHTTPSessionManager`` in stateless JSON mode);
- ``import app`` + ``awslabs.mcp_lambda_handler`` (``MCPLambdaHandler``).

The libraries are dev dependencies only when installed by hand: ``pip install mcp==2.3.0
awslabs-mcp-lambda-handler==0.1.15`` (``mcp`` is in requirements-dev.txt for the tests' client).
A library's extra import time is a floor of what it adds: its handler still has to run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from bench import FUNCTIONS, LAYER
from bench.coldstart import TIMED
from bench.report import table

VARIANTS = {
    "hibachi.mcp (as deployed)": "import app",
    "mcp SDK 2.3.0 server": (
        "import app\nimport mcp.server.lowlevel.server\nimport mcp.server.streamable_http_manager"
    ),
    "awslabs-mcp-lambda-handler 0.1.15": "import app\nimport awslabs.mcp_lambda_handler",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mcp_libraries", description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_", "DATABASE_"))}
    env.update({"PYTHONPATH": str(LAYER), "AWS_REGION": "us-east-1", "PYDANTIC_DISABLE_PLUGINS": "__all__"})
    cwd = FUNCTIONS / "assistant_tools"
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for i in range(args.runs + 1):  # round 0 warms the page cache
        for name, body in VARIANTS.items():
            proc = subprocess.run(
                [sys.executable, "-c", TIMED.format(body)],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if proc.returncode != 0:
                print(f"{name}: {proc.stderr.strip()[-300:]}", file=sys.stderr)
                return 1
            if i:
                times[name].append(float(proc.stdout.strip().splitlines()[-1]))
    base = statistics.median(times["hibachi.mcp (as deployed)"])
    print(
        f"import time of functions/assistant_tools/app.py with each MCP library, median of {args.runs} fresh processes"
    )
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(table("variant|import ms|added ms", [[k, f"{v:.0f}", f"{v - base:+.0f}"] for k, v in medians.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
