"""Provider settings for the LLM stage (the integrator exposes them as THREADLINE_LLM_*).

Nothing here reads the API key's *value* until a client is built; `api_key_env` names
the environment variable that holds it, so settings can be logged and stored safely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat

from threadline.ai.ratelimit import RateLimit

DEFAULT_TIMEOUT_SECONDS = 60.0  # s per call: structured answers of ~1k tokens finish well within
DEFAULT_REQUESTS_PER_MINUTE = 500.0  # OpenAI tier-1 chat limit: safe default for a new account
DEFAULT_TOKENS_PER_MINUTE = 200_000.0  # OpenAI tier-1 tokens/min for small models
DEFAULT_MAX_ATTEMPTS = 5  # calls per item incl. the first: bounded retries, then dead-letter

StructuredMode = Literal["json_schema", "json_object"]


class TaskModels(BaseModel):
    """Model name per task (on Azure: the deployment name)."""

    facets: str = "gpt-4o-mini"
    naming: str = "gpt-4o-mini"
    stories: str = "gpt-4o-mini"
    embeddings: str = "text-embedding-3-small"


class ModelPrice(BaseModel):
    """Price per one million tokens, in the run's currency units."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class LLMSettings(BaseModel):
    """Everything needed to talk to one OpenAI-compatible endpoint."""

    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    models: TaskModels = Field(default_factory=TaskModels)
    requests_per_minute: PositiveFloat = DEFAULT_REQUESTS_PER_MINUTE
    tokens_per_minute: PositiveFloat | None = DEFAULT_TOKENS_PER_MINUTE
    timeout_seconds: PositiveFloat = DEFAULT_TIMEOUT_SECONDS
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=10)
    structured_mode: StructuredMode = "json_schema"
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    run_budget: float | None = Field(default=None, gt=0)

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key from the named environment variable, or None when unset/empty."""
        env = os.environ if environ is None else environ
        value = env.get(self.api_key_env, "").strip()
        return value or None

    def rate_limit(self) -> RateLimit:
        """The configured budget as a limiter input (per minute)."""
        return RateLimit(requests=self.requests_per_minute, tokens=self.tokens_per_minute)


def llm_enabled(settings: LLMSettings | None, environ: Mapping[str, str] | None = None) -> bool:
    """True when an endpoint is configured *and* its key variable is set (else: offline path)."""
    return settings is not None and settings.api_key(environ) is not None
