"""One shared `AsyncOpenAI` client per job, paced by the rate limiter, with bounded retries.

Responsibilities, in order, for one structured call:
1. estimate its tokens and take a permit from the process-wide `RateLimiter`;
2. call `/chat/completions` (SDK retries off: `max_retries=0`, retries are ours);
3. feed status and `x-ratelimit-*` headers back to the limiter, reconcile tokens;
4. on 429/5xx/timeouts retry up to `max_attempts` calls, honouring Retry-After, else
   exponential backoff with full jitter; other 4xx fail at once;
5. validate the reply against the pydantic schema; on failure make ONE repair call.
Everything a call cost is returned in `CallResult.usages` (or `LLMCallFailed.usages`).
Nothing here logs prompts, replies or keys.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from threadline.ai.llm.cost import CallUsage
from threadline.ai.llm.prompts import repair_messages
from threadline.ai.llm.schemas import SCHEMA_NAMES, strict_json_schema
from threadline.ai.ratelimit import RateLimit, RateLimiter, parse_retry_after
from threadline.config import LLMSettings, StructuredMode

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

CONNECT_TIMEOUT_SECONDS = 10.0  # s: TCP+TLS to a cloud endpoint; longer means it is down
WRITE_TIMEOUT_SECONDS = 30.0  # s: prompts are a few KB; a stalled upload is a dead socket
BACKOFF_BASE_SECONDS = 0.5  # s: first retry delay ceiling, doubled per attempt
BACKOFF_CAP_SECONDS = 30.0  # s: longest single backoff, keeps a run moving
MAX_RETRY_AFTER_SECONDS = 120.0  # s: ignore absurd Retry-After values beyond this
CHARS_PER_TOKEN = 4  # characters per token: OpenAI's rule of thumb, used only for estimates
TOKENS_PER_MESSAGE = 4  # framing tokens per chat message (OpenAI cookbook)
TOKENS_PER_REPLY = 3  # tokens priming the reply
OUTPUT_ESTIMATE_WEIGHT = 0.2  # EMA weight of the newest observed output size
MAX_PROBLEM_ERRORS = 5  # validation errors described to the model in a repair request
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})  # transient per OpenAI docs


class LLMCallFailed(Exception):
    """A call did not produce a valid answer within its bounded attempts (dead-letter it)."""

    def __init__(self, error_class: str, message: str, attempts: int, usages: Sequence[CallUsage]) -> None:
        super().__init__(f"{error_class}: {message} (after {attempts} calls)")
        self.error_class = error_class
        self.detail = message
        self.attempts = attempts
        self.usages = tuple(usages)


@dataclass(frozen=True)
class CallResult(Generic[T]):
    """A validated answer plus what it cost."""

    value: T
    usages: tuple[CallUsage, ...]
    attempts: int
    repaired: bool


@dataclass
class _Reply:
    content: str
    finish_reason: str | None


def llm_rate_limit(settings: LLMSettings) -> RateLimit:
    """The configured request and token budget per minute, as a limiter input."""
    return RateLimit(requests=settings.requests_per_minute, tokens=settings.tokens_per_minute)


def estimate_prompt_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Rough prompt size used to pre-charge the token bucket (reconciled afterwards)."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + math.ceil(len(message.get("content", "")) / CHARS_PER_TOKEN)
    return total


def backoff_seconds(attempt: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff for the given 1-based attempt number."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return rng.uniform(0.0, ceiling)


def response_format(model: type[BaseModel], mode: StructuredMode) -> dict[str, Any]:
    """`response_format` for strict structured outputs, or plain JSON mode."""
    if mode == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": SCHEMA_NAMES[model],
            "schema": strict_json_schema(model),
            "strict": True,
        },
    }


def _strip_fences(content: str) -> str:
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def describe_invalid(error: ValidationError) -> str:
    """Locations and error types only: never echo values (they may carry injected text)."""
    parts = [
        f"{'.'.join(str(p) for p in item['loc']) or 'root'}: {item['type']}"
        for item in error.errors()[:MAX_PROBLEM_ERRORS]
    ]
    return "; ".join(parts)


class LLMClient:
    """Shared client for one job: one `AsyncOpenAI`, one limiter, bounded retries."""

    def __init__(
        self,
        settings: LLMSettings,
        api_key: str,
        limiter: RateLimiter,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self._rng = rng or random.Random()
        # The SDK's own HTTP stack (httpx or, in openai>=3, httpx2): use its types.
        timeout = openai.Timeout(
            connect=CONNECT_TIMEOUT_SECONDS,
            read=settings.timeout_seconds,
            write=WRITE_TIMEOUT_SECONDS,
            pool=settings.timeout_seconds,
        )
        self._openai = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=settings.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=openai.DefaultAsyncHttpxClient(timeout=timeout),
        )
        self._output_estimate: dict[str, float] = {}

    @classmethod
    def from_settings(
        cls,
        settings: LLMSettings,
        limiter: RateLimiter | None = None,
        environ: dict[str, str] | None = None,
    ) -> LLMClient:
        """Build from settings, reading the key from `settings.api_key_env`."""
        key = settings.api_key(environ)
        if key is None:
            raise RuntimeError(f"LLM disabled: environment variable {settings.api_key_env} is not set")
        return cls(settings, key, limiter or RateLimiter(llm_rate_limit(settings)))

    async def aclose(self) -> None:
        """Close the shared HTTP client (once, at the end of the job)."""
        await self._openai.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def structured(
        self,
        *,
        stage: str,
        model: str,
        messages: list[dict[str, str]],
        output: type[T],
        max_output_tokens: int,
        expected_output_tokens: int,
        check: Callable[[T], str | None] | None = None,
    ) -> CallResult[T]:
        """Call until a reply validates as `output` (and passes `check`), with one repair.

        `check` returns a problem description (no untrusted text) or None when the value
        is acceptable; a problem triggers the repair call just like a schema error.
        """
        usages: list[CallUsage] = []
        schema_name = SCHEMA_NAMES[output]
        fmt = response_format(output, self.settings.structured_mode)
        attempt_messages = messages
        for repair in (False, True):
            reply = await self._call_with_retries(
                stage,
                model,
                attempt_messages,
                fmt,
                max_output_tokens,
                expected_output_tokens,
                usages,
            )
            problem: str | None
            value: T | None = None
            if reply.finish_reason == "length":
                problem = "reply was cut off at the token limit; answer more briefly"
            else:
                try:
                    value = output.model_validate_json(_strip_fences(reply.content))
                    problem = check(value) if check is not None else None
                except ValidationError as error:
                    problem = describe_invalid(error)
            if problem is None and value is not None:
                return CallResult(value, tuple(usages), len(usages), repair)
            if repair:
                raise LLMCallFailed("InvalidModelOutput", problem or "invalid", len(usages), usages)
            logger.info("stage %s: invalid reply (%s); one repair attempt", stage, problem)
            attempt_messages = repair_messages(messages, reply.content, schema_name, problem or "")
        raise AssertionError("unreachable")

    async def _call_with_retries(
        self,
        stage: str,
        model: str,
        messages: list[dict[str, str]],
        fmt: dict[str, Any],
        max_output_tokens: int,
        expected_output_tokens: int,
        usages: list[CallUsage],
    ) -> _Reply:
        """One logical call: bounded attempts over transient failures."""
        prompt_estimate = estimate_prompt_tokens(messages)

        def estimate() -> int:
            """Evaluated at grant time: the output average may have improved while queued."""
            out = self._output_estimate.get(stage, float(expected_output_tokens))
            return prompt_estimate + int(out)

        last_error = "unknown"
        error_class = "LLMError"
        for attempt in range(1, self.settings.max_attempts + 1):
            permit = await self.limiter.acquire(estimate)
            wait: float | None = None
            try:
                raw = await self._openai.chat.completions.with_raw_response.create(  # type: ignore[call-overload]
                    model=model,
                    messages=messages,
                    response_format=fmt,
                    max_tokens=max_output_tokens,
                    temperature=0,
                )
                self.limiter.observe(raw.http_response.status_code, raw.headers)
                completion = raw.parse()
            except openai.APIStatusError as error:
                self.limiter.observe(error.status_code, error.response.headers)
                error_class, last_error = type(error).__name__, f"HTTP {error.status_code}"
                if error.status_code not in RETRYABLE_STATUS:
                    usages.append(CallUsage(stage, model, 0, 0))
                    raise LLMCallFailed(error_class, last_error, len(usages), usages) from error
                retry_after = parse_retry_after(error.response.headers)
                if error.status_code == 429:
                    # The limiter already holds all callers for Retry-After; add jitter only.
                    wait = self._rng.uniform(0.0, BACKOFF_BASE_SECONDS)
                    if retry_after is None:
                        wait = backoff_seconds(attempt, self._rng)
                elif retry_after is not None:
                    wait = min(retry_after, MAX_RETRY_AFTER_SECONDS)
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                error_class, last_error = type(error).__name__, "no response"
            except (openai.APIResponseValidationError, ValueError) as error:
                error_class, last_error = type(error).__name__, "unparseable HTTP body"
            else:
                usage = completion.usage
                if usage is not None:
                    self.limiter.reconcile(permit, usage.total_tokens)
                    usages.append(CallUsage(stage, model, usage.prompt_tokens, usage.completion_tokens))
                    current = self._output_estimate.get(stage, float(expected_output_tokens))
                    self._output_estimate[stage] = (
                        1 - OUTPUT_ESTIMATE_WEIGHT
                    ) * current + OUTPUT_ESTIMATE_WEIGHT * usage.completion_tokens
                else:
                    usages.append(CallUsage(stage, model, prompt_estimate, 0))
                choice = completion.choices[0] if completion.choices else None
                content = choice.message.content if choice is not None else None
                return _Reply(content or "", choice.finish_reason if choice else None)
            # A failed attempt is still a call: record it (no usage was reported for it).
            usages.append(CallUsage(stage, model, 0, 0))
            if attempt < self.settings.max_attempts:
                delay = wait if wait is not None else backoff_seconds(attempt, self._rng)
                logger.debug("stage %s: %s, retry %d in %.2fs", stage, last_error, attempt, delay)
                await asyncio.sleep(delay)
        raise LLMCallFailed(error_class, last_error, len(usages), usages)

    async def embed(self, texts: Sequence[str]) -> tuple[list[list[float]], CallUsage]:
        """Embeddings for `texts` with the configured model (one call, bounded retries)."""
        model = self.settings.models.embeddings
        estimate = sum(math.ceil(len(t) / CHARS_PER_TOKEN) for t in texts)
        last: Exception | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            permit = await self.limiter.acquire(estimate)
            try:
                raw = await self._openai.embeddings.with_raw_response.create(model=model, input=list(texts))
                self.limiter.observe(raw.http_response.status_code, raw.headers)
                result = raw.parse()
            except openai.APIStatusError as error:
                self.limiter.observe(error.status_code, error.response.headers)
                if error.status_code not in RETRYABLE_STATUS:
                    raise LLMCallFailed(type(error).__name__, "embeddings", attempt, []) from error
                last = error
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                last = error
            else:
                self.limiter.reconcile(permit, result.usage.total_tokens)
                vectors = [item.embedding for item in sorted(result.data, key=lambda d: d.index)]
                return vectors, CallUsage("embeddings", model, result.usage.prompt_tokens, 0)
            if attempt < self.settings.max_attempts:
                await asyncio.sleep(backoff_seconds(attempt, self._rng))
        raise LLMCallFailed(type(last).__name__, "embeddings", self.settings.max_attempts, [])
