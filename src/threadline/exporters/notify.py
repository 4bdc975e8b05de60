"""Notification channels: a generic webhook (signed JSON) and a Slack incoming webhook (Block Kit).

What a channel receives is a *digest* (see `threadline.exporters.notifications`): a JSON object
already masked. This module only knows how a digest travels:

* **webhook**: `POST` of the digest as JSON (UTF-8, compact) to the URL in the channel's
  `url_env` variable, signed when the channel names a `secret_env` variable. The header
  `Threadline-Signature: t=<unix seconds>,v1=<hex>` carries HMAC-SHA256 with the secret as key
  over the bytes `"<t>." + <raw body>`; a receiver recomputes it over the body exactly as
  received, compares in constant time, and rejects a `t` older than its tolerance (replays).
  `verify_signature` is that check. `Threadline-Event` names the event (`run.finished`).
* **slack**: `POST` of a Block Kit message (`text` fallback plus `blocks`) to the incoming
  webhook URL in `url_env`; Slack's limits (50 blocks, 3000 characters per section text, 150
  per header) are respected by construction.

Both go through the shared retry policy (`threadline.net.retry`) with the `notify` settings:
5xx, 429 and transport errors retry, Retry-After is honoured. A webhook delivery carries the
same body (and signature) on every attempt, so a receiver can de-duplicate by the digest's
`id`. Errors are one line (`NotifyError`): the channel kind and the HTTP status, never the
URL (Slack's URL is itself the secret), a body or customer text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from threadline.config import get_settings
from threadline.net.retry import RetryPolicy, call_with_retries

SIGNATURE_HEADER = "Threadline-Signature"  # t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
EVENT_HEADER = "Threadline-Event"  # the digest's event: run.finished, run.failed, sync.failed
SIGNATURE_VERSION = "v1"  # the scheme's version: a later scheme gets v2 next to it
DEFAULT_TOLERANCE_S = 300  # s: receivers reject signatures older than this (clock skew plus retries)
SLACK_MAX_BLOCKS = 50  # Block Kit: blocks per message
SLACK_MAX_SECTION_CHARS = 3000  # Block Kit: characters of a section's text
SLACK_MAX_HEADER_CHARS = 150  # Block Kit: characters of a header's plain text
SLACK_MAX_FALLBACK_CHARS = 3000  # characters of the notification fallback text (Slack truncates far later)
ELLIPSIS = "…"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class NotifyError(Exception):
    """A delivery failed; one line, safe to show (no URL, no secret, no customer text)."""


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError("must be the name of an environment variable")
    return value


class WebhookConfig(BaseModel):
    """A generic webhook: the variables holding its URL and (optionally) the signing secret."""

    model_config = ConfigDict(extra="forbid")

    url_env: str = Field(description="Environment variable holding the webhook URL.")
    secret_env: str | None = Field(
        default=None, description="Environment variable holding the HMAC-SHA256 signing secret."
    )

    @field_validator("url_env", "secret_env")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else _env_name(value)


class SlackConfig(BaseModel):
    """A Slack incoming webhook: the variable holding its URL (the URL is the secret)."""

    model_config = ConfigDict(extra="forbid")

    url_env: str = Field(description="Environment variable holding the Slack incoming-webhook URL.")

    @field_validator("url_env")
    @classmethod
    def _names(cls, value: str) -> str:
        return _env_name(value)


CHANNEL_KINDS: dict[str, type[BaseModel]] = {"webhook": WebhookConfig, "slack": SlackConfig}


# --- signing -----------------------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` signed at `timestamp`: `t=<timestamp>,v1=<hex HMAC-SHA256>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},{SIGNATURE_VERSION}={mac}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> bool:
    """A receiver's check: the header's MAC matches `body` and its timestamp is within `tolerance_s` of `now`."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).rsplit("=", 1)[1]
    return hmac.compare_digest(expected, parts.get(SIGNATURE_VERSION, ""))


# --- Slack Block Kit ---------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn escapes (&, <, >): customer-derived names cannot form links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _line(item: Mapping[str, Any], detail: str) -> str:
    name = _slack_escape(str(item.get("name") or item.get("title") or ""))
    url = item.get("url")
    shown = f"<{url}|{name}>" if isinstance(url, str) and url.startswith("http") else f"*{name}*"
    return f"• {shown} {detail}"


def _section_lines(digest: Mapping[str, Any]) -> list[tuple[str, list[str], int]]:
    """(title, lines, total) per non-empty section of the digest."""
    sections = [
        (
            "New themes",
            [_line(t, f"({t['conversations']} conversations)") for t in digest.get("new_themes", [])],
            int(digest.get("new_themes_total", 0)),
        ),
        (
            "Growing themes",
            [
                _line(t, f"({t['previous']} → {t['conversations']} conversations, +{round(t['growth'] * 100)}%)")
                for t in digest.get("growing_themes", [])
            ],
            int(digest.get("growing_themes_total", 0)),
        ),
        (
            "Recurring after close",
            [
                _line(r, f"({r['conversations']} conversations since {str(r.get('closed_at') or '')[:10]})")
                for r in digest.get("regressions", [])
            ],
            int(digest.get("regressions_total", 0)),
        ),
    ]
    return [(title, lines, total) for title, lines, total in sections if lines or total]


def slack_message(digest: Mapping[str, Any]) -> dict[str, Any]:
    """The digest as a Block Kit message: a header, a context line, one section per part, within Slack's limits."""
    summary = str(digest.get("summary") or "Threadline digest")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(summary, SLACK_MAX_HEADER_CHARS)}},
    ]
    context = str(digest.get("context") or "")
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(context)}]})
    for title, lines, total in _section_lines(digest):
        more = total - len(lines)
        text = f"*{title}*\n" + "\n".join(lines) + (f"\n…and {more} more" if more > 0 else "")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SLACK_MAX_SECTION_CHARS)}})
    if digest.get("error"):
        text = f"*Error*\n{_slack_escape(str(digest['error']))}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SLACK_MAX_SECTION_CHARS)}})
    return {"text": _cut(summary, SLACK_MAX_FALLBACK_CHARS), "blocks": blocks[:SLACK_MAX_BLOCKS]}


# --- delivery ----------------------------------------------------------------------------------


def retry_policy() -> RetryPolicy:
    """The shared retry policy with the `notify` settings."""
    settings = get_settings().notify
    return RetryPolicy(
        attempts=settings.max_attempts,
        base_s=settings.backoff_base_s,
        cap_s=settings.backoff_cap_s,
        max_requested_wait_s=settings.max_retry_after_s,
    )


def _variable(variable_name: str, what: str) -> str:
    value = os.environ.get(variable_name, "")
    if not value:
        raise NotifyError(f"{what} variable ${variable_name} is not set")
    return value


def body_of(digest: Mapping[str, Any]) -> bytes:
    """The webhook body: the digest as compact UTF-8 JSON (the bytes the signature covers)."""
    return json.dumps(digest, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


async def send(kind: str, config: Mapping[str, Any], digest: Mapping[str, Any]) -> int:
    """Deliver `digest` through a channel of `kind`; the number of attempts it took (`NotifyError` on failure)."""
    if kind not in CHANNEL_KINDS:
        raise NotifyError(f"unknown channel kind {kind!r}")
    url = _variable(str(config["url_env"]), "URL")
    headers = {"Content-Type": "application/json", "User-Agent": "threadline"}
    if kind == "slack":
        body = json.dumps(slack_message(digest), ensure_ascii=False).encode()
    else:
        body = body_of(digest)
        headers[EVENT_HEADER] = str(digest.get("event", ""))
        if config.get("secret_env"):
            secret = _variable(str(config["secret_env"]), "signing secret")
            headers[SIGNATURE_HEADER] = signature(secret, int(time.time()), body)
    settings = get_settings().notify
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    async with httpx.AsyncClient(timeout=timeout) as client:

        async def once() -> httpx.Response:
            return await client.post(url, content=body, headers=headers)

        try:
            attempt = await call_with_retries(once, policy=retry_policy(), label=f"{kind} delivery")
        except httpx.HTTPError as exc:  # an invalid URL or a non-retried failure: the class only, never the URL
            raise NotifyError(f"{kind} delivery: {type(exc).__name__}") from None
    if attempt.response is None:
        raise NotifyError(f"{kind} delivery: {attempt.describe} after {attempt.number} attempts")
    status = attempt.response.status_code
    if status >= 300:
        raise NotifyError(f"{kind} delivery: HTTP {status} after {attempt.number} attempts")
    return attempt.number
