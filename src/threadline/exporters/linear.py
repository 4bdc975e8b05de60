"""Linear as a tracker: one issue per story, Markdown description with a hidden marker and a sealed block.

GraphQL at `https://api.linear.app/graphql` (or `--base-url`), a personal API key in the
`Authorization` header (no Bearer), read from the variable the tracker names. Opening a
client looks the team up by its key, so a refused key or a missing team fails before any write.

Finding an item: `issues(filter: {team: {key: {eq}}, description: {contains: marker}})`, a
candidate counting only with the exact marker. Evidence links become attachments
(`attachmentCreate`, idempotent per issue and URL, so a repeated export updates them).
State: the workflow state's type (`completed` or `canceled` is closed) and `completedAt` /
`canceledAt`.

Rate limits (Linear's "Rate limiting"): leaky buckets of requests and complexity; a 429
(`RATELIMITED`) carries `X-RateLimit-Requests-Reset` / `-Complexity-Reset` (Unix ms when the
bucket is full again) and no Retry-After, so the `observe` hook turns the reset of a spent
bucket into the wait. Library: plain httpx and query strings, not `@linear/sdk` (TypeScript
only) or a Python GraphQL client (gql would add a transport and its own retries for five
operations; every operation here is validated against Linear's schema in the tests).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from threadline.exporters.base import (
    Exporter,
    TrackerAuthError,
    TrackerError,
    TrackerItem,
    TrackerNotFound,
    TrackerRef,
    TrackerState,
    TrackerValidationError,
)
from threadline.exporters.http import new_client, raise_for, request, retry_policy
from threadline.exporters.render import (
    adopt_markdown_body,
    has_markdown_marker,
    markdown_body,
    markdown_marker,
    replace_markdown_block,
)
from threadline.net.retry import Attempt

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.linear.app"
SEARCH_RESULTS = 10  # issues read per marker search
CLOSED_STATE_TYPES = frozenset({"completed", "canceled"})
MS_PER_S = 1000.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESET_HEADERS = ("x-ratelimit-requests-reset", "x-ratelimit-complexity-reset")
REMAINING_HEADERS = ("x-ratelimit-requests-remaining", "x-ratelimit-complexity-remaining")

TEAM_QUERY = "query Team($key: String!) { teams(filter: {key: {eq: $key}}) { nodes { id key } } }"
FIND_QUERY = """query Find($team: String!, $marker: String!, $first: Int) {
  issues(filter: {team: {key: {eq: $team}}, description: {contains: $marker}}, first: $first) {
    nodes { id identifier url description }
  }
}"""
CREATE_MUTATION = """mutation Create($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { id identifier url } }
}"""
LINK_QUERY = "query Link($id: String!) { issue(id: $id) { id identifier url description } }"
READ_QUERY = "query Read($id: String!) { issue(id: $id) { id description } }"
UPDATE_MUTATION = """mutation Update($id: String!, $input: IssueUpdateInput!) {
  issueUpdate(id: $id, input: $input) { success }
}"""
ATTACH_MUTATION = """mutation Attach($input: AttachmentCreateInput!) {
  attachmentCreate(input: $input) { success attachment { id } }
}"""
COMMENT_MUTATION = """mutation Comment($input: CommentCreateInput!) {
  commentCreate(input: $input) { success }
}"""
STATE_QUERY = "query State($id: String!) { issue(id: $id) { id completedAt canceledAt state { type } } }"


class LinearTrackerConfig(BaseModel):
    """Which team the issues go to (stored on the tracker; the API key stays in the environment)."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(description="Team key, e.g. ENG.")
    api_key_env: str = Field(default="LINEAR_API_KEY", description="Environment variable holding the API key.")
    base_url: str | None = Field(default=None, description="API URL: a proxy or a stand-in (default Linear's).")

    @field_validator("team")
    @classmethod
    def _team(cls, value: str) -> str:
        return value.strip().upper()

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not its value")
        return value


def _reset_wait(attempt: Attempt[httpx.Response]) -> float | None:
    """On a 429, the seconds until the spent bucket (requests or complexity) is full again."""
    if attempt.response is None or attempt.response.status_code != 429:
        return None
    headers = attempt.response.headers
    waits = []
    for remaining_name, reset_name in zip(REMAINING_HEADERS, RESET_HEADERS, strict=True):
        remaining, reset = headers.get(remaining_name), headers.get(reset_name)
        try:
            if remaining is not None and reset is not None and float(remaining) <= 1:
                waits.append(max(0.0, float(reset) / MS_PER_S - time.time()))
        except ValueError:
            continue
    return max(waits, default=None)


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) and value else None


class LinearClient:
    """One job's connection to one Linear team."""

    def __init__(self, http: httpx.AsyncClient, config: LinearTrackerConfig) -> None:
        self.http = http
        self.team_key = config.team
        self.team_id = ""
        self.policy = retry_policy()
        self.create_policy = retry_policy(creates=True)

    async def _gql(self, query: str, variables: dict[str, Any], operation: str, *, creates: bool = False) -> Any:
        policy = self.create_policy if creates else self.policy
        response = await request(
            self.http,
            "POST",
            "/graphql",
            operation=operation,
            policy=policy,
            observe=_reset_wait,
            json={"query": query, "variables": variables},
        )
        try:
            body = response.json()
        except ValueError:
            raise_for(response, operation)
            raise TrackerError(f"{operation}: not a GraphQL answer (HTTP {response.status_code})") from None
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            codes = {str((e.get("extensions") or {}).get("code", "")) for e in errors if isinstance(e, dict)}
            if "AUTHENTICATION_ERROR" in codes or response.status_code == 401:
                raise TrackerAuthError(f"{operation}: the API key was refused ({', '.join(sorted(codes))})")
            if any("not found" in str(e.get("message", "")).lower() for e in errors if isinstance(e, dict)):
                raise TrackerNotFound(f"{operation}: not found")
            if codes & {"INVALID_INPUT", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT", "GRAPHQL_PARSE_FAILED"}:
                raise TrackerValidationError(f"{operation}: refused as invalid ({', '.join(sorted(codes))})")
            raise TrackerError(f"{operation}: {', '.join(sorted(codes)) or 'error'} (HTTP {response.status_code})")
        raise_for(response, operation)
        return body.get("data") or {}

    async def check(self) -> None:
        data = await self._gql(TEAM_QUERY, {"key": self.team_key}, f"read team {self.team_key}")
        nodes = ((data.get("teams") or {}).get("nodes")) or []
        if not nodes:
            raise TrackerNotFound(f"read team {self.team_key}: not found (no team with that key)")
        self.team_id = str(nodes[0]["id"])

    @staticmethod
    def _ref(issue: dict[str, Any]) -> TrackerRef:
        return TrackerRef(key=str(issue["identifier"]), url=str(issue.get("url") or ""))

    async def find(self, marker: str) -> TrackerRef | None:
        variables = {"team": self.team_key, "marker": markdown_marker(marker), "first": SEARCH_RESULTS}
        data = await self._gql(FIND_QUERY, variables, "search issues")
        for issue in ((data.get("issues") or {}).get("nodes")) or []:
            if has_markdown_marker(issue.get("description"), marker):
                return self._ref(issue)
        return None

    async def _attach(self, key: str, item: TrackerItem) -> None:
        for quote in item.evidence:
            if quote.url:
                title = f"Conversation {quote.conversation}"
                await self._gql(
                    ATTACH_MUTATION,
                    {"input": {"issueId": key, "url": quote.url, "title": title}},
                    "attach evidence",
                )

    async def create(self, item: TrackerItem) -> TrackerRef:
        body, digest = markdown_body(item)
        data = await self._gql(
            CREATE_MUTATION,
            {"input": {"teamId": self.team_id, "title": item.title, "description": body}},
            "create issue",
            creates=True,
        )
        issue = (data.get("issueCreate") or {}).get("issue")
        if not issue:
            raise TrackerError("create issue: no issue in the answer")
        ref = replace(self._ref(issue), block_sha256=digest)
        await self._attach(ref.key, item)
        return ref

    async def link(self, key: str, item: TrackerItem) -> TrackerRef:
        wanted = key.strip().upper()
        data = await self._gql(LINK_QUERY, {"id": wanted}, f"read issue {wanted}")
        issue = data.get("issue")
        if not issue:
            raise TrackerNotFound(f"read issue {wanted}: not found")
        ref = self._ref(issue)
        adopted = adopt_markdown_body(issue.get("description"), item)
        if adopted.body is not None and not adopted.unchanged:
            await self._gql(UPDATE_MUTATION, {"id": ref.key, "input": {"description": adopted.body}}, "update issue")
        if adopted.body is not None:
            await self._attach(ref.key, item)
        return replace(ref, block_sha256=adopted.digest)

    async def update(self, ref: TrackerRef, item: TrackerItem) -> str | None:
        data = await self._gql(READ_QUERY, {"id": ref.key}, "read issue")
        replaced = replace_markdown_block((data.get("issue") or {}).get("description"), item)
        if replaced.body is None:
            logger.info("linear issue %s: a person edited Threadline's block; update skipped", ref.key)
            return None
        if not replaced.unchanged:
            await self._gql(UPDATE_MUTATION, {"id": ref.key, "input": {"description": replaced.body}}, "update issue")
        await self._attach(ref.key, item)
        return replaced.digest

    async def comment(self, ref: TrackerRef, text: str) -> None:
        await self._gql(
            COMMENT_MUTATION, {"input": {"issueId": ref.key, "body": text}}, "comment on issue", creates=True
        )

    async def state(self, ref: TrackerRef) -> TrackerState:
        data = await self._gql(STATE_QUERY, {"id": ref.key}, "read issue")
        issue = data.get("issue") or {}
        kind = (issue.get("state") or {}).get("type")
        closed = kind in CLOSED_STATE_TYPES
        when = issue.get("completedAt") or issue.get("canceledAt")
        return TrackerState(closed=closed, closed_at=_parse_time(when) if closed else None)


@asynccontextmanager
async def open_linear(config: LinearTrackerConfig) -> AsyncIterator[LinearClient]:
    """A checked client for the team (key read from the environment now, never stored)."""
    key = os.environ.get(config.api_key_env, "").strip()
    if not key:
        raise TrackerAuthError(f"no API key: set the environment variable {config.api_key_env}")
    headers = {"Authorization": key, "Content-Type": "application/json", "User-Agent": "threadline"}
    async with new_client(config.base_url or DEFAULT_BASE_URL, headers) as http:
        client = LinearClient(http, config)
        await client.check()
        yield client


EXPORTER = Exporter(kind="linear", label="Linear", config_model=LinearTrackerConfig, open=open_linear)
