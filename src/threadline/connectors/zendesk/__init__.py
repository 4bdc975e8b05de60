"""Zendesk connector: tickets with comments, users and organizations, incremental and interruption-safe.

Modules, one job each:
- `client`   async httpx client (API token or OAuth, pacing from Zendesk's headers, retries)
- `mapping`  Zendesk payloads -> `threadline.connectors.records` dataclasses
- `sync`     cursor-based incremental export writing through a `SyncSink`

`CONNECTOR` is what the registry knows (entry point `threadline.connectors: zendesk`).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from threadline.connectors.base import Connector, SyncSink
from threadline.connectors.records import ConversationRecord
from threadline.connectors.zendesk.client import (
    DEFAULT_EMAIL_ENV,
    DEFAULT_TOKEN_ENV,
    ZendeskClient,
    resolve_credentials,
)
from threadline.connectors.zendesk.sync import SyncReport, ZendeskSync

_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ZendeskConfig(BaseModel):
    """How to reach one Zendesk account (stored on the source; credentials stay in the environment)."""

    model_config = ConfigDict(extra="forbid")

    subdomain: str | None = Field(default=None, description="Zendesk subdomain: `acme` for acme.zendesk.com.")
    email_env: str = Field(
        default=DEFAULT_EMAIL_ENV, description="Environment variable holding the agent's email (API token auth)."
    )
    token_env: str = Field(default=DEFAULT_TOKEN_ENV, description="Environment variable holding the API token.")
    oauth_token_env: str | None = Field(
        default=None, description="Environment variable holding an OAuth access token (used instead of the API token)."
    )
    base_url: str | None = Field(default=None, description="Override the API URL (a proxy or a local stand-in).")

    @field_validator("subdomain")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower().removesuffix(".zendesk.com")
        if not _SUBDOMAIN.match(value):
            raise ValueError("a subdomain is letters, digits and hyphens (acme for acme.zendesk.com)")
        return value

    @field_validator("email_env", "token_env", "oauth_token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not its value")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> ZendeskConfig:
        if not self.subdomain and not self.base_url:
            raise ValueError("give --subdomain (or --base-url)")
        return self


async def sync(config: ZendeskConfig, sink: SyncSink[ConversationRecord], since: int | None) -> SyncReport:
    """One sync: one client (one httpx client, closed at the end), credentials from the named variables."""
    credentials = resolve_credentials(
        email_env=config.email_env, token_env=config.token_env, oauth_token_env=config.oauth_token_env
    )
    async with ZendeskClient(credentials, subdomain=config.subdomain, base_url=config.base_url) as client:
        return await ZendeskSync(client, sink).run(since=since)


CONNECTOR: Connector[ConversationRecord] = Connector(
    kind="zendesk",
    label="Zendesk",
    description="a Zendesk account",
    record_type=ConversationRecord,
    config_model=ZendeskConfig,
    sync=sync,
)
