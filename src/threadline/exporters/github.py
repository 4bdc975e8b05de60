"""GitHub Issues as a tracker: one issue per story, Markdown body with a hidden marker and a sealed block.

REST API v3 (`X-GitHub-Api-Version: 2022-11-28`), token from the variable the tracker names
(`--token-env`), base URL `https://api.github.com` or a GitHub Enterprise Server's
`https://HOST/api/v3` (`--base-url`). Opening a client reads the repository once, so a
refused token or a missing repository fails before anything is written.

Finding an item by its marker: `GET /search/issues?q="threadline:story=<id>" repo:o/r in:body`;
GitHub's search index lags writes (seconds to minutes), so when search finds nothing the
newest issues are listed (`trackers.search_fallback_pages` pages of 100) and their bodies
read. A candidate counts only when its body carries the exact marker.

Rate limits (GitHub's "Rate limits for the REST API"): the primary limit answers 403/429 with
`x-ratelimit-remaining: 0` and `x-ratelimit-reset`; the secondary limit (80 content-creating
requests per minute, 500 per hour) answers 403/429 with `retry-after`. The shared policy
treats a 403 carrying either as a rate limit (`forbidden_may_be_rate_limit`) and waits as asked.

Library: plain httpx, not PyGithub or githubkit: PyGithub is synchronous, and both would wrap
four endpoints in their own retry and pagination layers that we would have to switch off to
use the shared policy and its rate-limit handling.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from threadline.config import get_settings
from threadline.exporters.base import (
    Exporter,
    TrackerAuthError,
    TrackerItem,
    TrackerNotFound,
    TrackerRef,
    TrackerState,
)
from threadline.exporters.http import field_names, new_client, raise_for, request, retry_policy
from threadline.exporters.render import (
    adopt_markdown_body,
    has_markdown_marker,
    markdown_body,
    markdown_marker,
    replace_markdown_block,
)
from threadline.net.pacer import Cap, RateLimitPacer

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.github.com"
DEFAULT_TOKEN_ENV = "GITHUB_TOKEN"
API_VERSION = "2022-11-28"  # the REST API version the requests are written against
PAGE_SIZE = 100  # GitHub's maximum per_page: fewest requests for a fallback listing
SEARCH_RESULTS = 10  # search hits read per marker: a marker is on one issue, a few if a person copied it
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GitHubTrackerConfig(BaseModel):
    """Where the issues go (stored on the tracker; the token stays in the environment)."""

    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="Repository as owner/name.")
    token_env: str = Field(default=DEFAULT_TOKEN_ENV, description="Environment variable holding the token.")
    base_url: str | None = Field(
        default=None, description="API URL: GitHub Enterprise Server (https://HOST/api/v3), a proxy or a stand-in."
    )

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not _REPO.match(value.strip()):
            raise ValueError("must be owner/name")
        return value.strip()

    @field_validator("token_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not its value")
        return value


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) and value else None


def _validation_fields(body: Any) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    return field_names(e.get("field") for e in errors or [] if isinstance(e, dict))


def create_pacer() -> RateLimitPacer:
    """Paces content-creating requests to GitHub's secondary limit (per minute and per hour, from the
    `trackers` settings) before GitHub refuses them: a refusal costs a Retry-After that grows, and
    GitHub warns that repeated refusals may get the integration banned. Per client, so per process."""
    settings = get_settings().trackers
    return RateLimitPacer(
        caps=[
            Cap(settings.github_creates_per_minute, settings.github_create_minute_s),
            Cap(settings.github_creates_per_hour, settings.github_create_hour_s),
        ]
    )


class GitHubClient:
    """One job's connection to one repository."""

    def __init__(self, http: httpx.AsyncClient, config: GitHubTrackerConfig) -> None:
        self.http = http
        self.repo = config.repo
        self.policy = retry_policy(forbidden_may_be_rate_limit=True)
        self.create_policy = retry_policy(forbidden_may_be_rate_limit=True, creates=True)
        self.create_pacer = create_pacer()

    async def _call(self, method: str, url: str, operation: str, *, creates: bool = False, **kwargs: Any) -> Any:
        policy = self.create_policy if creates else self.policy
        pacer = self.create_pacer if creates else None
        response = await request(self.http, method, url, operation=operation, policy=policy, pacer=pacer, **kwargs)
        raise_for(response, operation, fields=_validation_fields)
        return response.json() if response.content else None

    async def check(self) -> None:
        """Read the repository: a refused token or a missing repository fails here, before any write."""
        await self._call("GET", f"/repos/{self.repo}", f"read repository {self.repo}")

    @staticmethod
    def _ref(issue: dict[str, Any]) -> TrackerRef:
        return TrackerRef(key=str(issue["number"]), url=str(issue.get("html_url") or issue.get("url") or ""))

    async def find(self, marker: str) -> TrackerRef | None:
        query = f'"threadline:story={marker}" repo:{self.repo} in:body'
        found = await self._call(
            "GET", "/search/issues", "search issues", params={"q": query, "per_page": SEARCH_RESULTS}
        )
        for issue in (found or {}).get("items") or []:
            if has_markdown_marker(issue.get("body"), marker):
                return self._ref(issue)
        pages = get_settings().trackers.search_fallback_pages
        for page in range(1, pages + 1):  # the search index lags writes: read the newest issues themselves
            issues = await self._call(
                "GET",
                f"/repos/{self.repo}/issues",
                "list issues",
                params={"state": "all", "sort": "created", "direction": "desc", "per_page": PAGE_SIZE, "page": page},
            )
            for issue in issues or []:
                if has_markdown_marker(issue.get("body"), marker):
                    return self._ref(issue)
            if len(issues or []) < PAGE_SIZE:
                break
        return None

    async def create(self, item: TrackerItem) -> TrackerRef:
        body, digest = markdown_body(item)
        issue = await self._call(
            "POST", f"/repos/{self.repo}/issues", "create issue", creates=True, json={"title": item.title, "body": body}
        )
        return replace(self._ref(issue), block_sha256=digest)

    async def link(self, key: str, item: TrackerItem) -> TrackerRef:
        number = key.strip().lstrip("#")
        if not number.isdigit():
            raise TrackerNotFound(f"issue {key!r}: not an issue number")
        issue = await self._call("GET", f"/repos/{self.repo}/issues/{number}", f"read issue {number}")
        adopted = adopt_markdown_body(issue.get("body"), item)
        if adopted.body is not None and not adopted.unchanged:
            await self._call(
                "PATCH", f"/repos/{self.repo}/issues/{number}", "update issue", json={"body": adopted.body}
            )
        return replace(self._ref(issue), block_sha256=adopted.digest)

    async def update(self, ref: TrackerRef, item: TrackerItem) -> str | None:
        issue = await self._call("GET", f"/repos/{self.repo}/issues/{ref.key}", "read issue")
        replaced = replace_markdown_block(issue.get("body"), item)
        if replaced.body is None:
            logger.info("github issue %s: a person edited Threadline's block; update skipped", ref.key)
            return None
        if not replaced.unchanged:
            await self._call(
                "PATCH", f"/repos/{self.repo}/issues/{ref.key}", "update issue", json={"body": replaced.body}
            )
        return replaced.digest

    async def comment(self, ref: TrackerRef, text: str) -> None:
        await self._call(
            "POST",
            f"/repos/{self.repo}/issues/{ref.key}/comments",
            "comment on issue",
            creates=True,
            json={"body": text},
        )

    async def state(self, ref: TrackerRef) -> TrackerState:
        issue = await self._call("GET", f"/repos/{self.repo}/issues/{ref.key}", "read issue")
        closed = issue.get("state") == "closed"
        return TrackerState(closed=closed, closed_at=_parse_time(issue.get("closed_at")) if closed else None)


@asynccontextmanager
async def open_github(config: GitHubTrackerConfig) -> AsyncIterator[GitHubClient]:
    """A checked client for the repository (token read from the environment now, never stored)."""
    token = os.environ.get(config.token_env, "").strip()
    if not token:
        raise TrackerAuthError(f"no token: set the environment variable {config.token_env}")
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "threadline",
    }
    async with new_client(config.base_url or DEFAULT_BASE_URL, headers) as http:
        client = GitHubClient(http, config)
        await client.check()
        yield client


EXPORTER = Exporter(kind="github", label="GitHub Issues", config_model=GitHubTrackerConfig, open=open_github)

__all__ = ["EXPORTER", "GitHubClient", "GitHubTrackerConfig", "markdown_marker"]
