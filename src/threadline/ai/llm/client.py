"""One shared `AsyncOpenAI` client per job, paced by the rate limiter, with bounded retries.

Responsibilities, in order, for one structured call:
1. estimate its tokens and take a permit from the process-wide `RateLimiter`;
2. call `/chat/completions` (SDK retries off: `max_retries=0`, retries are ours);
3. feed status and `x-ratelimit-*` headers back to the limiter, reconcile tokens;
4. on 429/5xx/408/409/timeouts/unparseable bodies retry up to `max_attempts` calls with the
   shared outbound policy (`threadline.net.retry`: full-jitter backoff, never shorter than a
   Retry-After or a spent budget's reset); other 4xx fail at once;
5. validate the reply against the pydantic schema; on failure make ONE repair call.
Everything a call cost is returned in `CallResult.usages` (or `LLMCallFailed.usages`).
Nothing here logs prompts, replies or keys.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from threadline.ai.llm.cost import CallUsage, SpendGuard, call_cost
from threadline.ai.llm.prompts import repair_messages
from threadline.ai.llm.schemas import SCHEMA_NAMES, strict_json_schema
from threadline.ai.ratelimit import RateLimit, RateLimiter
from threadline.config import LLMSettings, StructuredMode
from threadline.net.retry import Jitter, RetryPolicy, call_with_retries

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

CHARS_PER_TOKEN = 4  # characters per token: OpenAI's rule of thumb, used only for estimates
TOKENS_PER_MESSAGE = 4  # framing tokens per chat message (OpenAI cookbook)
TOKENS_PER_REPLY = 3  # tokens priming the reply
OUTPUT_ESTIMATE_WEIGHT = 0.2  # EMA weight of the newest observed output size
MAX_PROBLEM_ERRORS = 5  # validation errors described to the model in a repair request
RETRY_EXTRA_STATUSES = frozenset({408, 409})  # request timeout, conflict: transient per OpenAI docs (429/5xx always)
# No response (timeouts included: APITimeoutError is an APIConnectionError) or an unparseable body: worth a retry.
RETRY_EXCEPTIONS: tuple[type[Exception], ...] = (
    openai.APIConnectionError,
    openai.APIResponseValidationError,
    ValueError,
)


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


@dataclass(frozen=True)
class _Answer:
    """One attempt's HTTP answer: the parsed reply (2xx) or the SDK's status error."""

    status_code: int
    headers: Mapping[str, str]
    reply: _Reply | None = None
    error: openai.APIStatusError | None = None


def llm_retry_policy(settings: LLMSettings) -> RetryPolicy:
    """The shared outbound policy with this client's attempts, backoff and extra statuses."""
    return RetryPolicy(
        attempts=settings.max_attempts,
        base_s=settings.backoff_base_seconds,
        cap_s=settings.backoff_cap_seconds,
        jitter=Jitter.FULL,
        max_requested_wait_s=settings.max_retry_after_seconds,
        extra_statuses=RETRY_EXTRA_STATUSES,
    )


def llm_rate_limit(settings: LLMSettings) -> RateLimit:
    """The configured request and token budget per minute, as a limiter input."""
    return RateLimit(requests=settings.requests_per_minute, tokens=settings.tokens_per_minute)


def estimate_prompt_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Rough prompt size used to pre-charge the token bucket (reconciled afterwards)."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + math.ceil(len(message.get("content", "")) / CHARS_PER_TOKEN)
    return total


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
        self.retry_policy = llm_retry_policy(settings)
        self._rng = rng or random.Random()
        # The SDK's own HTTP stack (httpx or, in openai>=3, httpx2): use its types.
        timeout = openai.Timeout(
            connect=settings.connect_timeout_seconds,
            read=settings.timeout_seconds,
            write=settings.write_timeout_seconds,
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
        self.spend_guard: SpendGuard | None = None  # the run's budget (set per job by the runtime)

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

        async def send() -> _Answer:
            """One call within the run's budget: reserve its largest cost, send, settle what it cost."""
            guard = self.spend_guard
            # Largest cost of this call: the prompt estimate and every output token it may produce.
            reserved = call_cost(self.settings.prices, model, prompt_estimate, max_output_tokens) or 0.0
            if guard is not None:
                await guard.reserve(reserved)  # raises BudgetExceeded: nothing is sent
            before = len(usages)
            try:
                return await send_call()
            finally:
                if guard is not None:  # settled with what the call is counted as everywhere else
                    await guard.settle(reserved, sum(u.cost(self.settings.prices) or 0.0 for u in usages[before:]))

        async def send_call() -> _Answer:
            """One call: limiter permit, request, limiter feedback, usage; every call is recorded."""
            permit = await self.limiter.acquire(estimate)
            try:
                raw = await self._openai.chat.completions.with_raw_response.create(  # type: ignore[call-overload]
                    model=model,
                    messages=messages,
                    response_format=fmt,
                    max_tokens=max_output_tokens,
                    temperature=0,
                )
                self.limiter.observe(raw.status_code, raw.headers)
                completion = raw.parse()
            except openai.APIStatusError as error:
                self.limiter.observe(error.status_code, error.response.headers)
                usages.append(CallUsage(stage, model, 0, 0))  # a failed call is still a call (no usage reported)
                return _Answer(error.status_code, error.response.headers, error=error)
            except RETRY_EXCEPTIONS:
                usages.append(CallUsage(stage, model, 0, 0))
                raise
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
            reply = _Reply(content or "", choice.finish_reason if choice else None)
            return _Answer(raw.status_code, raw.headers, reply=reply)

        last = await call_with_retries(
            send,
            policy=self.retry_policy,
            retry_on=RETRY_EXCEPTIONS,
            rng=self._rng,
            label=f"stage {stage}",
            log_level=logging.DEBUG,
        )
        answer = last.response
        if answer is not None and answer.reply is not None:
            return answer.reply
        if answer is not None:  # a status error: not retryable, or retryable on every attempt
            error: BaseException | None = answer.error
            error_class, detail = type(error).__name__, f"HTTP {answer.status_code}"
        else:
            error = last.error
            no_response = isinstance(error, openai.APIConnectionError)
            error_class, detail = type(error).__name__, "no response" if no_response else "unparseable HTTP body"
        raise LLMCallFailed(error_class, detail, len(usages), usages) from error
