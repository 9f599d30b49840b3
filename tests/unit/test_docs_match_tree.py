"""The docs against the tree, as test_settings_doc.py holds the settings table: ARCHITECTURE's layout
table names every top-level folder (and no folder that is gone), RUNBOOK names every function's log
group, and no text cites an issue number, which no reader of the repository can open."""

from __future__ import annotations

import re
import subprocess

from tests.support.common import ROOT

# bench/ and the BENCHMARKS.md it writes are reworked on branch i23a, which drops their issue numbers
_ISSUE_FREE_EXCEPT = ("bench/", "BENCHMARKS.md")
_ISSUE = re.compile(r"\bissues? #?\d+|\(#\d+\)", re.IGNORECASE)


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def layout_folders(markdown: str) -> set[str]:
    """The top-level folders of the rows of the Layout table (a row's path names one of them)."""
    section = markdown.split("## Layout", 1)[1].split("\n## ", 1)[0]
    paths = re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)
    return {path.split("/", 1)[0] for path in paths if "/" in path}


def test_the_layout_table_names_every_top_level_folder() -> None:
    folders = {name.split("/", 1)[0] for name in _tracked() if "/" in name}
    assert layout_folders((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")) == folders


def test_the_layout_check_sees_a_missing_folder() -> None:
    table = "## Layout\n\n| path | what |\n| --- | --- |\n| `a/b.py` | x |\n| `c/` | y |\n| `f.yaml` | z |\n\n## Next\n"
    assert layout_folders(table) == {"a", "c"}


def test_the_runbook_names_every_log_group_of_the_template() -> None:
    template = (ROOT / "template.yaml").read_text(encoding="utf-8")
    groups = set(re.findall(r'LogGroupName: !Sub "/aws/lambda/\$\{AWS::StackName\}(/[a-z-]+)"', template))
    assert len(groups) >= 7
    logs = (ROOT / "RUNBOOK.md").read_text(encoding="utf-8").split("- **Logs**", 1)[1].split("\n- ", 1)[0]
    assert sorted(g for g in groups if f"`{g}`" not in logs and f"/<stack>{g}`" not in logs) == []


def test_no_text_cites_an_issue_number() -> None:
    found = []
    for name in _tracked():
        if name.startswith(_ISSUE_FREE_EXCEPT) or not name.endswith((".py", ".md", ".yaml", ".toml", ".sh", ".sql")):
            continue
        for number, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1):
            if _ISSUE.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []
