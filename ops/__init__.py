"""The operations CLI of the hibachi backend: ``python -m ops --help`` (see RUNBOOK.md)."""
