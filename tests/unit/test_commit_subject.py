"""The commit-msg hook (scripts/commit_subject.py, run by pre-commit) against the messages git writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("commit_subject", ROOT / "scripts" / "commit_subject.py")
assert _spec and _spec.loader
commit_subject = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(commit_subject)


def test_a_subject_of_72_characters_passes_and_73_is_refused(tmp_path):
    ok, long = tmp_path / "ok", tmp_path / "long"
    ok.write_text("A" * 72 + "\n\n" + "a body line may be as long as it needs to be " * 5 + "\n", encoding="utf-8")
    long.write_text("A" * 73 + "\n", encoding="utf-8")
    assert commit_subject.main(["hook", str(ok)]) == 0
    assert commit_subject.main(["hook", str(long)]) == 1


def test_the_subject_is_the_first_line_git_keeps():
    message = "# Please enter the commit message\n\nPublish booking events from the worker\n\n# comment\n"
    assert commit_subject.subject(message) == "Publish booking events from the worker"
    assert commit_subject.problem("# only comments\n\n") == "the commit message is empty"
    assert "73 characters" in (commit_subject.problem("x" * 73 + "\n\nbody") or "")


def test_pre_commit_installs_and_runs_the_hook_on_commit_messages():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert "commit-msg" in config["default_install_hook_types"]
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert hooks["commit-subject"]["stages"] == ["commit-msg"]
    assert hooks["commit-subject"]["entry"].endswith("scripts/commit_subject.py")
