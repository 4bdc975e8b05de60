"""Fixtures for the Intercom connector tests.

Every request and response that crosses the stand-in is validated against Intercom's
published 2.16 description (patched in memory, loaded once per session). Violations fail the
test that caused them and, as a safety net, the session at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from threadline_testing.contract import ContractCheckingMiddleware, ContractValidator, load_openapi
from threadline_testing.intercom import StandinConfig, Workspace, WorkspaceSpec, create_app

from threadline.connectors.intercom.client import IntercomClient

TOKEN = "standin-token-7f3a9c"  # a made-up token; tests assert it never leaks
SPEC_HOST = "https://api.intercom.io"


@dataclass
class Standin:
    """A stand-in app, its contract-checking wrapper and its workspace."""

    app: object
    checked: ContractCheckingMiddleware
    workspace: Workspace
    config: StandinConfig
    token: str = TOKEN

    @property
    def stats(self):
        return self.app.state.stats

    def client(self, **kwargs) -> IntercomClient:
        """A client talking to the checked app in-process (httpx.ASGITransport)."""
        token = kwargs.pop("token", TOKEN)
        return IntercomClient(token, base_url=SPEC_HOST, transport=httpx.ASGITransport(app=self.checked), **kwargs)

    def http(self, token: str = TOKEN) -> httpx.AsyncClient:
        """A raw httpx client for probing the stand-in itself."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.checked),
            base_url=SPEC_HOST,
            headers={"Authorization": f"Bearer {token}", "Intercom-Version": "2.16"},
        )


_session_validators: list[ContractValidator] = []


def pytest_terminal_summary(terminalreporter) -> None:
    """Say how much traffic was checked against the contract (and how much violated it)."""
    for validator in _session_validators:
        terminalreporter.write_line(
            f"intercom contract: {validator.exchanges} exchanges validated, {len(validator.violations)} violations"
        )


@pytest.fixture(scope="session")
def contract() -> Iterator[ContractValidator]:
    """Session-wide validator; fails the session if any violation slipped past a test."""
    validator = ContractValidator(load_openapi())
    _session_validators.append(validator)
    yield validator
    assert not validator.violations, "contract violations:\n" + "\n".join(map(str, validator.violations))


@pytest.fixture
def make_standin(contract: ContractValidator) -> Iterator[Callable[..., Standin]]:
    """Factory: `make_standin(WorkspaceSpec(...), **StandinConfig fields)`; checks the contract after the test."""
    before = len(contract.violations)

    def factory(spec: WorkspaceSpec | None = None, **config) -> Standin:
        workspace = Workspace(spec or WorkspaceSpec())
        cfg = StandinConfig(workspace=workspace, tokens=frozenset({TOKEN}), **config)
        app = create_app(cfg)
        return Standin(app=app, checked=ContractCheckingMiddleware(app, contract), workspace=workspace, config=cfg)

    yield factory
    new = contract.violations[before:]
    assert not new, "contract violations:\n" + "\n".join(map(str, new))
