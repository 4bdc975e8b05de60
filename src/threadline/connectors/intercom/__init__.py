"""Intercom connector: a thin async client, date-range backfill and incremental sync.

Modules, one job each:
- `client`   async httpx client (auth, regions, version pin, retries) for the endpoints we use
- `mapping`  Intercom payloads -> `threadline.connectors.records` dataclasses
- `sync`     watermark/overlap sync loop writing through a `SyncSink`

`CONNECTOR` is what the registry knows (entry point `threadline.connectors: intercom`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from threadline.connectors.base import Connector, SyncSink
from threadline.connectors.intercom.client import DEFAULT_TOKEN_ENV, IntercomClient, resolve_token
from threadline.connectors.intercom.sync import IntercomSync, SyncReport
from threadline.connectors.records import ConversationRecord


class IntercomConfig(BaseModel):
    """How to reach one Intercom workspace (stored on the source; the token stays in the environment)."""

    model_config = ConfigDict(extra="forbid")

    token_env: str = Field(default=DEFAULT_TOKEN_ENV, description="Environment variable holding the access token.")
    region: Literal["us", "eu", "au"] = Field(default="us", description="Intercom region: us, eu or au.")
    base_url: str | None = Field(default=None, description="Override the API URL (a proxy or a local stand-in).")


async def sync(config: IntercomConfig, sink: SyncSink[ConversationRecord], since: int | None) -> SyncReport:
    """One sync: one client (one httpx client, closed at the end), token read from the named variable."""
    token = resolve_token(token_env=config.token_env)
    async with IntercomClient(token, region=config.region, base_url=config.base_url) as client:
        return await IntercomSync(client, sink).run(since=since)


CONNECTOR: Connector[ConversationRecord] = Connector(
    kind="intercom",
    label="Intercom",
    description="an Intercom workspace",
    record_type=ConversationRecord,
    config_model=IntercomConfig,
    sync=sync,
)
