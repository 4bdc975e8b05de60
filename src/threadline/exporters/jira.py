"""Jira Cloud as a tracker: one issue per story, an Atlassian Document Format description with a sealed block.

REST API v3 with basic auth (`email:api_token`, both read from the variables the tracker
names). Opening a client reads the project (`GET /rest/api/3/project/{key}`), so a refused
token or a missing project fails before anything is written.

Finding an item by its marker: enhanced JQL search (`POST /rest/api/3/search/jql`; the old
`/rest/api/3/search` is deprecated) with `project = KEY AND text ~ "threadline-story-<id>"`;
`~` matches words, and a candidate counts only when its description has the exact marker
paragraph. State: the status category (`done` is closed) and `resolutiondate`.

Rate limiting (Atlassian's "Rate limiting" guide): 429 with `Retry-After`, honoured by the
shared policy. Library: plain httpx, not `jira`/`atlassian-python-api`: both are synchronous,
the first still speaks the deprecated search and v2 (wiki markup), and neither exposes
responses to a retry policy that reads Retry-After.
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

from threadline.exporters.base import Exporter, TrackerAuthError, TrackerItem, TrackerRef, TrackerState
from threadline.exporters.http import field_names, new_client, raise_for, request, retry_policy
from threadline.exporters.render import (
    adf_comment,
    adf_document,
    adf_has_marker,
    adopt_adf_document,
    jira_marker,
    replace_adf_block,
)

logger = logging.getLogger(__name__)

API = "/rest/api/3"
SEARCH_RESULTS = 10  # search hits read per marker: one issue carries it, a few if a person copied it
MAX_SUMMARY_CHARS = 255  # Jira refuses longer summaries
_KEY = re.compile(r"^[A-Z][A-Z0-9_]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JiraTrackerConfig(BaseModel):
    """Where the issues go (stored on the tracker; e-mail and token stay in the environment)."""

    model_config = ConfigDict(extra="forbid")

    site: str = Field(description="Jira site URL, e.g. https://acme.atlassian.net (also how tests reach a stand-in).")
    project: str = Field(description="Project key, e.g. OPS.")
    issue_type: str = Field(default="Task", description="Issue type name for new issues.")
    email_env: str = Field(default="JIRA_EMAIL", description="Environment variable holding the account's e-mail.")
    token_env: str = Field(default="JIRA_API_TOKEN", description="Environment variable holding the API token.")

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        value = value.strip().upper()
        if not _KEY.match(value):
            raise ValueError("must be a project key such as OPS")
        return value

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be a URL such as https://acme.atlassian.net")
        return value.rstrip("/")

    @field_validator("email_env", "token_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not its value")
        return value


def _fields(body: Any) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    return field_names(errors.keys()) if isinstance(errors, dict) else ""


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):  # Jira's offset without a colon
        text = f"{text[:-2]}:{text[-2:]}"
    return datetime.fromisoformat(text)


class JiraClient:
    """One job's connection to one Jira project."""

    def __init__(self, http: httpx.AsyncClient, config: JiraTrackerConfig) -> None:
        self.http = http
        self.config = config
        self.site = config.site
        self.policy = retry_policy()
        self.create_policy = retry_policy(creates=True)

    async def _call(self, method: str, url: str, operation: str, *, creates: bool = False, **kwargs: Any) -> Any:
        policy = self.create_policy if creates else self.policy
        response = await request(self.http, method, url, operation=operation, policy=policy, **kwargs)
        raise_for(response, operation, fields=_fields)
        return response.json() if response.content else None

    async def check(self) -> None:
        await self._call("GET", f"{API}/project/{self.config.project}", f"read project {self.config.project}")

    def _ref(self, key: str) -> TrackerRef:
        return TrackerRef(key=key, url=f"{self.site}/browse/{key}")

    async def find(self, marker: str) -> TrackerRef | None:
        jql = f'project = {self.config.project} AND text ~ "{jira_marker(marker)}" ORDER BY created ASC'
        found = await self._call(
            "POST",
            f"{API}/search/jql",
            "search issues",
            json={"jql": jql, "fields": ["description"], "maxResults": SEARCH_RESULTS},
        )
        for issue in (found or {}).get("issues") or []:
            if adf_has_marker((issue.get("fields") or {}).get("description"), marker):
                return self._ref(str(issue["key"]))
        return None

    async def create(self, item: TrackerItem) -> TrackerRef:
        document, digest = adf_document(item)
        fields = {
            "project": {"key": self.config.project},
            "issuetype": {"name": self.config.issue_type},
            "summary": " ".join(item.title.split())[:MAX_SUMMARY_CHARS],
            "description": document,
        }
        created = await self._call("POST", f"{API}/issue", "create issue", creates=True, json={"fields": fields})
        return replace(self._ref(str(created["key"])), block_sha256=digest)

    async def link(self, key: str, item: TrackerItem) -> TrackerRef:
        wanted = key.strip().upper()
        issue = await self._call(
            "GET", f"{API}/issue/{wanted}", f"read issue {wanted}", params={"fields": "description"}
        )
        real_key = str(issue.get("key") or wanted)  # Jira answers a moved issue's old key with its new one
        document, digest, unchanged = adopt_adf_document((issue.get("fields") or {}).get("description"), item)
        if document is not None and not unchanged:
            await self._call(
                "PUT", f"{API}/issue/{real_key}", "update issue", json={"fields": {"description": document}}
            )
        return replace(self._ref(real_key), block_sha256=digest)

    async def update(self, ref: TrackerRef, item: TrackerItem) -> str | None:
        issue = await self._call("GET", f"{API}/issue/{ref.key}", "read issue", params={"fields": "description"})
        document, digest, unchanged = replace_adf_block((issue.get("fields") or {}).get("description"), item)
        if document is None:
            logger.info("jira issue %s: a person edited Threadline's block; update skipped", ref.key)
            return None
        if not unchanged:
            await self._call(
                "PUT", f"{API}/issue/{ref.key}", "update issue", json={"fields": {"description": document}}
            )
        return digest

    async def comment(self, ref: TrackerRef, text: str) -> None:
        await self._call(
            "POST", f"{API}/issue/{ref.key}/comment", "comment on issue", creates=True, json={"body": adf_comment(text)}
        )

    async def state(self, ref: TrackerRef) -> TrackerState:
        issue = await self._call(
            "GET", f"{API}/issue/{ref.key}", "read issue", params={"fields": "status,resolutiondate"}
        )
        fields = issue.get("fields") or {}
        category = ((fields.get("status") or {}).get("statusCategory") or {}).get("key")
        closed = category == "done"
        return TrackerState(closed=closed, closed_at=_parse_time(fields.get("resolutiondate")) if closed else None)


@asynccontextmanager
async def open_jira(config: JiraTrackerConfig) -> AsyncIterator[JiraClient]:
    """A checked client for the project (credentials read from the environment now, never stored)."""
    email = os.environ.get(config.email_env, "").strip()
    token = os.environ.get(config.token_env, "").strip()
    if not email or not token:
        raise TrackerAuthError(
            f"no credentials: set the environment variables {config.email_env} and {config.token_env}"
        )
    headers = {"Accept": "application/json", "User-Agent": "threadline"}
    async with new_client(config.site, headers, auth=httpx.BasicAuth(email, token)) as http:
        client = JiraClient(http, config)
        await client.check()
        yield client


EXPORTER = Exporter(kind="jira", label="Jira", config_model=JiraTrackerConfig, open=open_jira)
