"""Guards of `threadline run` as a user meets them: an inverted period and a run matching nothing are refused (exit 2)."""

from __future__ import annotations

import json

from support import EXAMPLES
from test_cli import threadline


def test_inverted_period_and_empty_runs_are_refused_before_anything_is_written(cli_env):
    inverted = threadline(cli_env, "run", "--since", "2026-11-01", "--until", "2026-09-01", check=False)
    assert inverted.returncode == 2 and "must be before --until" in inverted.stderr
    no_sources = threadline(cli_env, "run", check=False)
    assert no_sources.returncode == 2 and "no sources yet" in no_sources.stderr
    threadline(cli_env, "import", str(EXAMPLES), "--source", "demo")
    empty = threadline(cli_env, "run", "--source", "demo", "--since", "2030-01-01", check=False)
    assert empty.returncode == 2
    assert "no conversation matches source demo; created on or after 2030-01-01" in empty.stderr
    unknown = threadline(cli_env, "run", "--source", "nope", check=False)
    assert unknown.returncode == 2 and "no source named 'nope'" in unknown.stderr
    assert json.loads(threadline(cli_env, "status", "--json").stdout)["runs"] == []  # nothing was written
    # Reading commands without any run say so instead of failing.
    assert json.loads(threadline(cli_env, "stories", "--json").stdout) == []
    assert threadline(cli_env, "changes", check=False).returncode == 1
