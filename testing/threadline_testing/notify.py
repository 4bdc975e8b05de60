"""Receivers for Threadline's notifications: a generic webhook receiver and a Slack incoming-webhook stand-in.

Both are Starlette apps served on loopback (`threadline_testing.serve.serve`). Each records
what it received and can answer the first N requests with a failure (503, or 429 with a
Retry-After) to exercise the retry policy, or every request (to force a dead letter).

* The **webhook receiver** verifies `Threadline-Signature` the way the README tells receivers
  to (HMAC-SHA256 over `"<t>." + raw body`, constant-time compare, timestamp tolerance) and
  answers 401 when it does not verify; it keeps the parsed JSON of every verified delivery.
* The **Slack stand-in** answers like Slack's incoming webhooks (`200 ok`, `400 invalid_blocks`,
  `400 invalid_payload`, `429` with `Retry-After`) and validates every message against a JSON
  Schema of the Block Kit subset Threadline sends (header, section, context, divider), with
  Slack's documented limits: 50 blocks, 150 characters in a header, 3000 in a section's text,
  10 elements in a context, `text` required as the notification fallback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

SIGNATURE_HEADER = "threadline-signature"
TOLERANCE_S = 300  # s: the receiver's replay window, as the README suggests

_TEXT_PLAIN = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "plain_text"}, "text": {"type": "string", "minLength": 1, "maxLength": 150}},
}
_MRKDWN = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"enum": ["mrkdwn", "plain_text"]},
        "text": {"type": "string", "minLength": 1, "maxLength": 3000},
    },
}
BLOCK_KIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text", "blocks"],
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "blocks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 50,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "header"},
                            "text": _TEXT_PLAIN,
                            "block_id": {"type": "string"},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "additionalProperties": False,
                        "properties": {"type": {"const": "section"}, "text": _MRKDWN, "block_id": {"type": "string"}},
                    },
                    {
                        "type": "object",
                        "required": ["type", "elements"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "context"},
                            "elements": {"type": "array", "minItems": 1, "maxItems": 10, "items": _MRKDWN},
                            "block_id": {"type": "string"},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type"],
                        "additionalProperties": False,
                        "properties": {"type": {"const": "divider"}, "block_id": {"type": "string"}},
                    },
                ]
            },
        },
    },
}


@dataclass
class Receiver:
    """What a receiver got, and how it misbehaves: the first `fail_first` requests answer `fail_status`."""

    fail_first: int = 0  # requests answered with a failure before the first success (-1: every request)
    fail_status: int = 503
    retry_after_s: int | None = None  # sent with failures (Slack sends it with 429)
    requests: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)  # verified, valid payloads
    rejected: list[str] = field(default_factory=list)  # why requests were refused (signature, shape)
    times: list[float] = field(default_factory=list)  # monotonic time of every request

    def failing(self) -> Response | None:
        self.requests += 1
        self.times.append(time.monotonic())
        if self.fail_first < 0 or self.requests <= self.fail_first:
            headers = {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}
            return PlainTextResponse("unavailable", status_code=self.fail_status, headers=headers)
        return None


def verify(secret: str, header: str, body: bytes, *, now: float | None = None) -> bool:
    """The README's receiver check, written independently of Threadline's code."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    if abs((time.time() if now is None else now) - int(parts["t"])) > TOLERANCE_S:
        return False
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def webhook_app(secret: str, receiver: Receiver | None = None) -> Starlette:
    """A webhook receiver that accepts only deliveries signed with `secret`; state in `app.state.receiver`."""
    state = receiver or Receiver()

    async def hook(request: Request) -> Response:
        failure = state.failing()
        if failure is not None:
            return failure
        body = await request.body()
        if not verify(secret, request.headers.get(SIGNATURE_HEADER, ""), body):
            state.rejected.append("signature")
            return JSONResponse({"error": "bad signature"}, status_code=401)
        state.received.append(json.loads(body))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hooks/threadline", hook, methods=["POST"])])
    app.state.receiver = state
    return app


def slack_app(receiver: Receiver | None = None) -> Starlette:
    """An incoming-webhook stand-in: `POST /services/T000/B000/XXXX` answers like Slack; state in `app.state.receiver`."""
    state = receiver or Receiver()
    validator = jsonschema.Draft202012Validator(BLOCK_KIT_SCHEMA)

    async def hook(request: Request) -> Response:
        failure = state.failing()
        if failure is not None:
            return failure
        try:
            message = json.loads(await request.body())
        except ValueError:
            state.rejected.append("invalid_payload")
            return PlainTextResponse("invalid_payload", status_code=400)
        errors = sorted(validator.iter_errors(message), key=lambda e: list(e.path))
        if errors:
            state.rejected.append("; ".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]))
            return PlainTextResponse("invalid_blocks", status_code=400)
        state.received.append(message)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/services/{team}/{channel}/{token}", hook, methods=["POST"])])
    app.state.receiver = state
    return app
