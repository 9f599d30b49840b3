"""Lambda SnapStart runtime hooks (the template's ``EnableSnapStart``).

With SnapStart, Lambda runs the init phase once per published version, snapshots the memory, and
starts every later execution environment from that snapshot. What init made is then shared by every
environment restored from it, and whatever was open at the snapshot is stale after the restore:

- before the snapshot: close the database connections (a restored socket belongs to a connection
  the server or RDS Proxy dropped long ago) and the SQS connections;
- after the restore: drop the cached RDS IAM token (made with the credentials of the snapshot's
  environment, it may expire soon) and reseed ``random`` (every restored environment would draw the
  same numbers: the SQS retry jitter); connections reopen lazily on first use. Nothing else unique
  is made at init: ids come from ``uuid4`` (``os.urandom``), credentials are read per call.

``snapshot_restore_py`` is provided by the Lambda runtime only; elsewhere ``register()`` does
nothing (the tests call the hooks directly).
"""

from __future__ import annotations

import random
from typing import Any

from hibachi import db, sqs
from hibachi.observability import logger

_registered = False


def before_snapshot() -> None:
    """Close what must not be in the snapshot: every database and SQS connection."""
    db.close_all()
    sqs.close_all()


def after_restore() -> None:
    """Forget what the snapshot's environment made for itself; reconnect lazily."""
    db.forget_tokens()
    db.close_all()  # in case a connection was opened after the snapshot hook (it is dead now)
    sqs.close_all()
    random.seed()  # from os.urandom: this environment's own sequence
    logger.debug("restored from a SnapStart snapshot")


def register() -> bool:
    """Register the hooks with the Lambda runtime; ``False`` where there is no such runtime."""
    global _registered
    if _registered:
        return True
    try:
        import snapshot_restore_py  # type: ignore[import-not-found]  # provided by the Lambda runtime
    except ImportError:
        return False
    runtime: Any = snapshot_restore_py
    runtime.register_before_snapshot(before_snapshot)
    runtime.register_after_restore(after_restore)
    _registered = True
    return True
