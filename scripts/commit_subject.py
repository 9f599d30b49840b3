"""pre-commit's commit-msg hook: refuse a commit whose subject is longer than 72 characters.

Usage (pre-commit passes the message file): ``python scripts/commit_subject.py .git/COMMIT_EDITMSG``.
The subject is the message's first line that is neither empty nor a ``#`` comment (git drops those).
"""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 72


def subject(message: str) -> str:
    """The line git keeps as the subject of ``message``."""
    for line in message.splitlines():
        if line.strip() and not line.startswith("#"):
            return line.rstrip()
    return ""


def problem(message: str) -> str | None:
    """Why ``message`` is refused, or ``None``."""
    first = subject(message)
    if not first:
        return "the commit message is empty"
    if len(first) > LIMIT:
        return (
            f"the subject is {len(first)} characters; keep it to {LIMIT} or fewer, in the imperative "
            "(put the why, the figures and the commands in the body, after a blank line)"
        )
    return None


def main(argv: list[str]) -> int:
    found = problem(Path(argv[1]).read_text(encoding="utf-8"))
    if found:
        print(f"commit-msg: {found}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
