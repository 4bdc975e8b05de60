"""ASGI app of the stand-in: OpenAI-shaped routes, auth, limits, faults, latency."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import time
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from threadline_testing.openai.config import StandinConfig
from threadline_testing.openai.faults import Fault, FaultPlan
from threadline_testing.openai.limits import Admission, ProviderLimits, format_duration
from threadline_testing.openai.responders import respond

CHARS_PER_TOKEN = 4  # characters per token: OpenAI's rule of thumb for English text
TOKENS_PER_MESSAGE = 4  # tokens of chat framing per message, as in OpenAI's cookbook count
TOKENS_PER_REPLY = 3  # tokens priming the assistant reply


def count_tokens(text: str) -> int:
    """The stand-in's token count for a piece of text (UTF-8 bytes / 4, rounded up)."""
    return math.ceil(len(text.encode("utf-8")) / CHARS_PER_TOKEN)


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Token count of a chat prompt including per-message framing."""
    total = TOKENS_PER_REPLY
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        total += TOKENS_PER_MESSAGE + count_tokens(str(content or ""))
    return total


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


class Standin:
    """State of one stand-in instance: limits, fault plan, counters."""

    def __init__(self, config: StandinConfig) -> None:
        self.config = config
        self.limits = ProviderLimits(config.requests_per_minute, config.tokens_per_minute, config.burst_seconds)
        self.faults = FaultPlan(config)
        self.counters: Counter[str] = Counter()
        self.started = time.monotonic()

    def _headers(self, admission: Admission) -> dict[str, str]:
        cfg = self.config
        return {
            "x-ratelimit-limit-requests": str(int(cfg.requests_per_minute)),
            "x-ratelimit-limit-tokens": str(int(cfg.tokens_per_minute)),
            "x-ratelimit-remaining-requests": str(admission.remaining_requests),
            "x-ratelimit-remaining-tokens": str(admission.remaining_tokens),
            "x-ratelimit-reset-requests": format_duration(admission.reset_requests_seconds),
            "x-ratelimit-reset-tokens": format_duration(admission.reset_tokens_seconds),
        }

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self.config.api_key}"

    async def _admit(self, tokens: int) -> Response | None:
        self.counters["requests"] += 1
        admission = self.limits.admit(tokens)
        if admission.admitted:
            self.counters["admitted"] += 1
            self.counters["tokens"] += tokens
            return None
        self.counters["rate_limited"] += 1
        retry = admission.retry_after_seconds
        headers = self._headers(admission)
        headers["retry-after"] = str(max(1, math.ceil(retry)))
        headers["retry-after-ms"] = str(max(1, math.ceil(retry * 1000)))
        return _error(429, "Rate limit reached; retry later.", "rate_limit_exceeded", headers)

    async def chat(self, request: Request) -> Response:
        """POST /v1/chat/completions."""
        if not self._authorised(request):
            return _error(401, "Invalid API key.", "invalid_request_error")
        raw = await request.body()
        try:
            body = json.loads(raw)
            messages = list(body["messages"])
            model = str(body["model"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "Body must be JSON with messages and model.", "invalid_request_error")
        response_format = body.get("response_format")
        answer = respond(messages, response_format, self.config)
        content = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        usage_in = prompt_tokens(messages)
        usage_out = count_tokens(content)
        refused = await self._admit(usage_in + usage_out)
        if refused is not None:
            return refused
        draw = self.faults.draw(raw)
        await asyncio.sleep(draw.latency_seconds)
        self.counters[f"fault_{draw.fault.value}"] += 1
        if draw.fault is Fault.HANG:
            await asyncio.sleep(self.config.hang_seconds)
        if draw.fault is Fault.ERROR_500:
            return _error(500, "The server had an error.", "server_error")
        finish = "stop"
        if draw.fault is Fault.MALFORMED_JSON:
            content = content[: len(content) // 2] + "}\u0000{"
        elif draw.fault is Fault.TRUNCATED_JSON:
            content = content[: max(1, len(content) * 3 // 5)]
            finish = "length"
        digest = hashlib.sha256(raw).hexdigest()[:24]
        payload = {
            "id": f"chatcmpl-{digest}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": usage_in,
                "completion_tokens": usage_out,
                "total_tokens": usage_in + usage_out,
            },
        }
        return JSONResponse(payload, headers=self._headers(self.limits.snapshot()))

    async def embeddings(self, request: Request) -> Response:
        """POST /v1/embeddings: deterministic unit vectors seeded by (seed, text)."""
        if not self._authorised(request):
            return _error(401, "Invalid API key.", "invalid_request_error")
        try:
            body = json.loads(await request.body())
            inputs = body["input"]
            model = str(body["model"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "Body must be JSON with input and model.", "invalid_request_error")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
        tokens = sum(count_tokens(t) for t in texts)
        refused = await self._admit(tokens)
        if refused is not None:
            return refused
        data = [{"object": "embedding", "index": i, "embedding": self._vector(text)} for i, text in enumerate(texts)]
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return JSONResponse(payload, headers=self._headers(self.limits.snapshot()))

    def _vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(f"{self.config.seed}:{text}".encode()).digest()[:8])
        rng = random.Random(seed)
        values = [rng.gauss(0.0, 1.0) for _ in range(self.config.embedding_dim)]
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        return [v / norm for v in values]

    async def stats(self, request: Request) -> Response:
        """GET /stats: counters for tests and benchmarks (not part of the OpenAI API)."""
        return JSONResponse({"uptime_seconds": time.monotonic() - self.started, **dict(self.counters)})


def create_app(config: StandinConfig | None = None) -> Starlette:
    """Build the ASGI app; `app.state.standin` exposes counters to in-process tests."""
    standin = Standin(config or StandinConfig())
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", standin.chat, methods=["POST"]),
            Route("/v1/embeddings", standin.embeddings, methods=["POST"]),
            Route("/stats", standin.stats, methods=["GET"]),
        ]
    )
    app.state.standin = standin
    return app
