"""`threadline trackers add|list|remove` and `threadline export` from the command line, and the link in `stories --json`."""

from __future__ import annotations

import json
import subprocess
import sys

from cases import CASES
from seed import seed_stories

GITHUB = CASES["github"]
TIMEOUT_S = 120  # one CLI call: start-up and a few requests


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def test_trackers_add_list_remove_and_export_from_the_cli(db_engine, cli_env, github_server) -> None:
    server = github_server()
    env = {**cli_env, **GITHUB.env()}
    added = _cli(
        env,
        "trackers",
        "add",
        "github",
        "--name",
        "gh",
        "--repo",
        "acme/widgets",
        "--token-env",
        "TL_GH_TOKEN",
        "--base-url",
        server.url,
    )
    assert added.returncode == 0, added.stderr
    assert "$TL_GH_TOKEN" in added.stdout and "gh-standin-token" not in added.stdout
    bad = _cli(env, "trackers", "add", "github", "--name", "bad", "--repo", "not a repo")
    assert bad.returncode == 2 and "invalid github configuration: repo" in bad.stderr
    for kind, options in (
        (
            "jira",
            [
                "--site",
                "https://acme.atlassian.net",
                "--project",
                "OPS",
                "--issue-type",
                "Bug",
                "--email-env",
                "JE",
                "--token-env",
                "JT",
            ],
        ),
        ("linear", ["--team", "ENG", "--api-key-env", "LK"]),
    ):
        assert _cli(env, "trackers", "add", kind, "--name", kind, *options).returncode == 0
    listed = json.loads(_cli(env, "trackers", "list", "--json").stdout)
    assert [(t["name"], t["kind"]) for t in listed] == [("gh", "github"), ("jira", "jira"), ("linear", "linear")]
    assert listed[0]["config"] == {"repo": "acme/widgets", "token_env": "TL_GH_TOKEN", "base_url": server.url}

    story_ids = seed_stories(db_engine, 2)
    exported = _cli(env, "export", "--tracker", "gh", "--status", "accepted", "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["created"] == 2
    stories = json.loads(_cli(env, "stories", "--json").stdout)
    links = {s["id"]: s["trackers"] for s in stories}
    assert {link["tracker"] for sid in story_ids for link in links[sid]} == {"gh"}

    refused = _cli({**env, "TL_GH_TOKEN": "wrong"}, "export", "--tracker", "gh", str(story_ids[0]))
    assert refused.returncode == 2
    assert (
        refused.stderr.count("\n") == 1
        and "tracker gh (GitHub Issues)" in refused.stderr
        and "refused" in refused.stderr
    )

    removed = _cli(env, "trackers", "remove", "linear", "--json")
    assert removed.returncode == 0 and json.loads(removed.stdout) == {"tracker": "linear", "removed": True}
    assert _cli(env, "trackers", "remove", "linear").returncode == 2
