"""docs/ARCHITECTURE.md's settings table against ``Settings.model_fields``: every setting documented
once, with its default, and nothing documented that the code does not read."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Any

from hibachi.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"
ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| ([^|]*) \|")


def _table() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        m = ROW.match(line)
        if m:
            assert m[1] not in rows, f"{m[1]} is documented twice"
            rows[m[1]] = m[2].strip()
    return rows


def _variable(name: str, alias: Any) -> str:
    return (alias if isinstance(alias, str) else name).upper()


def _shown(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, time):
        return f"`{default:%H:%M}`"
    return f"`{default}`"


def test_every_setting_is_documented_with_its_default() -> None:
    fields = {_variable(name, f.validation_alias): f for name, f in Settings.model_fields.items()}
    table = _table()
    assert sorted(set(fields) - set(table)) == [], "settings missing from docs/ARCHITECTURE.md"
    assert sorted(set(table) - set(fields)) == [], "documented settings that hibachi.settings.Settings lacks"
    wrong = {name: (table[name], _shown(f.default)) for name, f in fields.items() if table[name] != _shown(f.default)}
    assert wrong == {}, "documented default != code default"


def test_the_table_is_parsed() -> None:
    assert {"DATABASE_URL", "RECONCILE_BATCH_LIMIT", "DB_PASSWORD"} <= set(_table())
