"""One adapter per tracker stand-in: how to configure the tracker, count its items, read them, act as a person.

The export tests are written once and run against GitHub, Jira and Linear through these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from threadline_testing.trackers import github, jira, linear

from threadline.exporters.render import adf_text

GITHUB_TOKEN, JIRA_EMAIL, JIRA_TOKEN, LINEAR_KEY = (
    "gh-standin-token",
    "bot@example.com",
    "jira-standin-token",
    "lin_api_standin",
)


@dataclass
class Case:
    """A tracker kind under test: its stand-in factory fixture name and how to read its world."""

    kind: str
    fixture: str  # github_server | jira_server | linear_server
    config_class: Any

    def values(self, url: str) -> dict[str, Any]:
        if self.kind == "github":
            return {"repo": "acme/widgets", "token_env": "TL_GH_TOKEN", "base_url": url}
        if self.kind == "jira":
            return {
                "site": url,
                "project": "OPS",
                "issue_type": "Task",
                "email_env": "TL_JIRA_EMAIL",
                "token_env": "TL_JIRA_TOKEN",
            }
        return {"team": "ENG", "api_key_env": "TL_LINEAR_KEY", "base_url": url}

    def env(self, *, good: bool = True) -> dict[str, str]:
        if self.kind == "github":
            return {"TL_GH_TOKEN": GITHUB_TOKEN if good else "refused-token"}
        if self.kind == "jira":
            return {"TL_JIRA_EMAIL": JIRA_EMAIL, "TL_JIRA_TOKEN": JIRA_TOKEN if good else "refused-token"}
        return {"TL_LINEAR_KEY": LINEAR_KEY if good else "refused-key"}

    def items(self, world: Any) -> list[Any]:
        return list(world.issues.values())

    def body(self, world: Any, key: str) -> str:
        """The item's description as text (ADF reduced to its text for Jira)."""
        if self.kind == "github":
            return world.issues[int(key)].body or ""
        if self.kind == "jira":
            return adf_text(world.find(key).description["content"])
        return world.find_issue(key)["description"] or ""

    def comments(self, world: Any, key: str) -> list[str]:
        if self.kind == "github":
            return [world.comments[c].body for c in world.issues[int(key)].comment_ids]
        if self.kind == "jira":
            return [json.dumps(c.body) for c in world.find(key).comments]
        issue = world.find_issue(key)
        return [c["body"] for c in world.comments.values() if c["issue"]["id"] == issue["id"]]

    def close_as_person(self, world: Any, key: str) -> None:
        if self.kind == "github":
            world.close_as_person(int(key))
        elif self.kind == "jira":
            world.transition_as_person(key, "Done")
        else:
            world.complete_as_person(key)

    def edit_block_as_person(self, world: Any, key: str) -> None:
        if self.kind == "github":
            world.edit_body_as_person(
                int(key), lambda body: body.replace("Conversations:", "Conversations (checked by Ana):")
            )
        elif self.kind == "jira":
            world.edit_description_as_person(key, _edit_adf)
        else:
            world.edit_description_as_person(
                key, lambda body: body.replace("Conversations:", "Conversations (checked):")
            )

    def hook(self, config: dict[str, Any], after_create: Callable[[Any], None]) -> dict[str, Any]:
        return {**config, "after_create": after_create}


def _edit_adf(document: Any) -> Any:
    edited = json.loads(json.dumps(document))
    edited["content"][1]["content"][0]["text"] += " (edited by a person)"
    return edited


CASES = {
    "github": Case("github", "github_server", github.GitHubConfig),
    "jira": Case("jira", "jira_server", jira.JiraConfig),
    "linear": Case("linear", "linear_server", linear.LinearConfig),
}
