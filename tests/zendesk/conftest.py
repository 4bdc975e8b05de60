"""Fixtures for the Zendesk connector tests: a stand-in account and clients talking to it in-process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import httpx
import pytest
from threadline_testing.zendesk import Account, AccountSpec, StandinConfig, create_app

from threadline.connectors.zendesk.client import ZendeskClient, api_token_credentials, zendesk_retry_policy

EMAIL = "admin@example.com"
TOKEN = "standin-token-5b21e8"  # a made-up token; tests assert it never leaks
HOST = "https://acme.zendesk.com"
FAST_RETRIES = {"base_s": 0.01, "cap_s": 0.05}  # keep retry waits short in tests


@dataclass
class Standin:
    """A stand-in app and its account."""

    app: object
    account: Account
    config: StandinConfig
    email: str = EMAIL
    token: str = TOKEN

    @property
    def stats(self):
        return self.app.state.stats

    def client(self, *, app: object | None = None, token: str = TOKEN, **kwargs) -> ZendeskClient:
        """A client talking to the app in-process (httpx.ASGITransport), with fast retries."""
        kwargs.setdefault("retry_policy", replace(zendesk_retry_policy(), **FAST_RETRIES))
        return ZendeskClient(
            api_token_credentials(EMAIL, token, "$ZD_EMAIL/$ZD_TOKEN"),
            base_url=HOST,
            transport=httpx.ASGITransport(app=app or self.app),
            **kwargs,
        )


@pytest.fixture
def make_standin() -> Callable[..., Standin]:
    """Factory: `make_standin(AccountSpec(...), **StandinConfig fields)`; limits never bind unless asked."""

    def factory(spec: AccountSpec | None = None, **config) -> Standin:
        account = Account(spec or AccountSpec())
        config.setdefault("window_seconds", 1)
        config.setdefault("requests_per_window", 10_000)
        config.setdefault("export_requests_per_window", 1_000)
        cfg = StandinConfig(account=account, api_tokens=frozenset({TOKEN}), **config)
        return Standin(app=create_app(cfg), account=account, config=cfg)

    return factory
