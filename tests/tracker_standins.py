"""Fixtures for the tracker stand-ins: each served on loopback behind its spec validator.

Shared by tests/trackers (the stand-ins themselves) and tests/exporters (Threadline's exporters
against them): each directory's conftest re-exports these fixtures and the summary hook.

Every request and response crossing a stand-in is validated (GitHub and Jira against their
patched OpenAPI descriptions, Jira's ADF bodies against the ADF JSON Schema, Linear's operations
and responses against its GraphQL schema). Violations fail the test that caused them and, as a
safety net, the session; the counts are printed at the end of the session.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from threadline_testing.contract import ContractCheckingMiddleware, ContractValidator
from threadline_testing.serve import serve
from threadline_testing.trackers import github, jira, linear
from threadline_testing.trackers.specs import (
    AdfValidator,
    GraphQLCheckingMiddleware,
    LinearValidator,
    github_validator,
    jira_validator,
)

GITHUB_TOKEN = "gh-standin-token"  # made-up tokens: the stand-ins accept nothing else
JIRA_EMAIL, JIRA_TOKEN = "bot@example.com", "jira-standin-token"
LINEAR_KEY = "lin_api_standin"

_validators: dict[str, Any] = {}
_adf: list[AdfValidator] = []


_summary_written: list[bool] = []


def pytest_terminal_summary(terminalreporter) -> None:
    """Say how much tracker traffic was checked against the vendors' descriptions (once per session)."""
    if _summary_written:
        return
    _summary_written.append(True)
    for name, validator in _validators.items():
        terminalreporter.write_line(
            f"{name} contract: {validator.exchanges} exchanges validated, {len(validator.violations)} violations"
        )
    for adf in _adf:
        terminalreporter.write_line(f"jira ADF: {adf.documents} documents validated, {adf.violations} violations")


def _session_validator(name: str, make: Callable[[], Any]) -> Iterator[Any]:
    validator = make()
    _validators[name] = validator
    yield validator
    assert not validator.violations, f"{name} contract violations:\n" + "\n".join(map(str, validator.violations))


@pytest.fixture(scope="session")
def github_contract() -> Iterator[ContractValidator]:
    yield from _session_validator("github", github_validator)


@pytest.fixture(scope="session")
def jira_contract() -> Iterator[ContractValidator]:
    validator, adf = jira_validator()
    _validators["jira"] = validator
    _adf.append(adf)
    yield validator
    assert not validator.violations, "jira contract violations:\n" + "\n".join(map(str, validator.violations))


@pytest.fixture(scope="session")
def linear_contract() -> Iterator[LinearValidator]:
    yield from _session_validator("linear", LinearValidator)


def _no_new_violations(validator: Any, before: int) -> None:
    new = validator.violations[before:]
    assert not new, "contract violations:\n" + "\n".join(map(str, new))


@dataclass
class Served:
    """A stand-in app running on loopback: its URL, its app (state, stats) and a client factory."""

    url: str
    app: Any
    auth: dict[str, str]

    @property
    def world(self) -> Any:
        return self.app.state.world

    @property
    def stats(self) -> Any:
        return self.app.state.stats

    def client(self, auth: dict[str, str] | None = None) -> httpx.Client:
        headers = {"Accept": "application/json", **(self.auth if auth is None else auth)}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0)


@pytest.fixture
def github_server(github_contract: ContractValidator) -> Iterator[Callable[..., Served]]:
    """Factory: `github_server(**GitHubConfig fields)` serves a checked GitHub stand-in."""
    before = len(github_contract.violations)
    with _servers() as start:

        def factory(**config: Any) -> Served:
            app = github.create_app(github.GitHubConfig(**config))
            return Served(start(ContractCheckingMiddleware(app, github_contract)), app, _github_auth(GITHUB_TOKEN))

        yield factory
    _no_new_violations(github_contract, before)


@pytest.fixture
def jira_server(jira_contract: ContractValidator) -> Iterator[Callable[..., Served]]:
    """Factory: `jira_server(**JiraConfig fields)` serves a checked Jira stand-in."""
    before = len(jira_contract.violations)
    with _servers() as start:

        def factory(**config: Any) -> Served:
            app = jira.create_app(jira.JiraConfig(**config))
            return Served(start(ContractCheckingMiddleware(app, jira_contract)), app, jira_auth(JIRA_EMAIL, JIRA_TOKEN))

        yield factory
    _no_new_violations(jira_contract, before)


@pytest.fixture
def linear_server(linear_contract: LinearValidator) -> Iterator[Callable[..., Served]]:
    """Factory: `linear_server(**LinearConfig fields)` serves a checked Linear stand-in."""
    before = len(linear_contract.violations)
    with _servers() as start:

        def factory(**config: Any) -> Served:
            app = linear.create_app(linear.LinearConfig(**config))
            return Served(start(GraphQLCheckingMiddleware(app, linear_contract)), app, {"Authorization": LINEAR_KEY})

        yield factory
    _no_new_violations(linear_contract, before)


def _github_auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2022-11-28"}


def jira_auth(email: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()}


class _servers:
    """Context manager handing out `start(app) -> url`; stops every server on exit."""

    def __enter__(self) -> Callable[[Any], str]:
        self._stack: list[Any] = []

        def start(app: Any) -> str:
            context = serve(app)
            url = context.__enter__()
            self._stack.append(context)
            return url

        return start

    def __exit__(self, *exc: object) -> None:
        while self._stack:
            self._stack.pop().__exit__(None, None, None)
