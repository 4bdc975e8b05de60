"""Helpers for LLM tests: the stand-in under uvicorn on 127.0.0.1 (ephemeral port), clients."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from threadline_testing.openai import StandinConfig, create_app
from threadline_testing.openai.app import Standin

from threadline.ai.llm import LLMClient, LLMSettings

STARTUP_TIMEOUT_SECONDS = 10.0  # s: uvicorn binds in milliseconds; longer means it failed
SHUTDOWN_GRACE_SECONDS = 1  # s: hanging requests are cut after this on teardown
KEY_ENV = "THREADLINE_TEST_LLM_KEY"  # env var name tests pass via an explicit environ


@dataclass(frozen=True)
class RunningStandin:
    """A live stand-in: its OpenAI base URL and its in-process state (counters)."""

    base_url: str
    state: Standin
    api_key: str


@contextlib.contextmanager
def run_standin(config: StandinConfig) -> Iterator[RunningStandin]:
    """Serve `config` in a background thread for the duration of the block."""
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
    )
    thread = threading.Thread(target=server.run, name="standin", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("stand-in did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningStandin(f"http://127.0.0.1:{port}/v1", app.state.standin, config.api_key)
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_SECONDS)


def settings_for(server: RunningStandin, **overrides: object) -> LLMSettings:
    """LLM settings pointing at `server`, the key in env var THREADLINE_TEST_LLM_KEY."""
    fields: dict[str, object] = {
        "base_url": server.base_url,
        "api_key_env": KEY_ENV,
        "requests_per_minute": 60_000,
        "tokens_per_minute": 10_000_000,
        "timeout_seconds": 5,
    }
    fields.update(overrides)
    return LLMSettings(**fields)  # type: ignore[arg-type]


def client_for(server: RunningStandin, **overrides: object) -> LLMClient:
    """A client for `server` with a fresh limiter from the settings."""
    return LLMClient.from_settings(settings_for(server, **overrides), environ={KEY_ENV: server.api_key})
