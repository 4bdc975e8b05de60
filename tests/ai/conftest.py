"""Fixtures for LLM tests: stand-ins served by uvicorn on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from llm_helpers import RunningStandin, run_standin
from threadline_testing.openai import StandinConfig


@pytest.fixture
def standin_factory() -> Iterator[Callable[..., RunningStandin]]:
    """Start stand-ins with given `StandinConfig` fields; all are stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(**fields: object) -> RunningStandin:
            return stack.enter_context(run_standin(StandinConfig(**fields)))  # type: ignore[arg-type]

        yield start


@pytest.fixture
def standin(standin_factory: Callable[..., RunningStandin]) -> RunningStandin:
    """A fast, fault-free stand-in with generous limits."""
    return standin_factory(requests_per_minute=60_000, tokens_per_minute=10_000_000)
