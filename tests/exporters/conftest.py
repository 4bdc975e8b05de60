"""Fixtures of the exporter tests: the served, spec-checked tracker stand-ins (tests/tracker_standins.py)."""

from tracker_standins import (  # noqa: F401  (fixtures and the summary hook, shared with tests/trackers)
    github_contract,
    github_server,
    jira_contract,
    jira_server,
    linear_contract,
    linear_server,
    pytest_terminal_summary,
)
