"""Structured facets per conversation: one call per conversation, verified and scrubbed.

Input is a small dataclass (no ORM objects) so the stage can run in any worker; output
is a validated `Facets` model plus the usages it cost. `facet_input_hash` is the
content-addressed cache key the integrator stores in `analyses.input_hash`: the same
conversation text, model and prompt version always give the same key, so a rerun on
unchanged data makes zero calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from threadline.ai.llm.client import CallResult, LLMClient
from threadline.ai.llm.cost import CallUsage
from threadline.ai.llm.privacy import scrub
from threadline.ai.llm.prompts import FACETS_PROMPT_VERSION, FACETS_SYSTEM, chat_messages
from threadline.ai.llm.quotes import QuoteCandidate, verify_quotes
from threadline.ai.llm.schemas import ConversationType, FacetsOut, Sentiment, Severity
from threadline.config import LLMSettings, get_settings
from threadline.text.pii import PII_VERSION, mask_for_display, masking_enabled

STAGE = "facets"
# Prompt and output sizes are settings (`LLMSettings.facets_*`); the output-token sizes belong to the prompt version.
MAX_OUTPUT_TOKENS = 700  # tokens: a full facet object with 3 quotes is ~250-400
EXPECTED_OUTPUT_TOKENS = 250  # tokens: initial estimate before real usage is observed


@dataclass(frozen=True)
class MessageInput:
    """One message of a conversation as the LLM stage sees it."""

    message_id: str
    role: str
    text: str


@dataclass(frozen=True)
class ConversationInput:
    """A conversation to analyse; `known_names` (e.g. the contact's name) are scrubbed."""

    conversation_id: str
    messages: tuple[MessageInput, ...]
    known_names: tuple[str, ...] = field(default_factory=tuple)


class Quote(BaseModel):
    """A quote verified verbatim against its message."""

    message_id: str
    text: str


class Facets(BaseModel):
    """Validated, privacy-scrubbed facets of one conversation (stored as JSONB)."""

    summary: str
    customer_problem: str
    requested_change: str | None
    product_area: str
    conversation_type: ConversationType
    sentiment: Sentiment
    severity: Severity
    quotes: list[Quote] = Field(default_factory=list)
    quotes_dropped: int = 0
    input_truncated: bool = False


@dataclass(frozen=True)
class FacetResult:
    """Facets of one conversation plus its cache key and what it cost."""

    conversation_id: str
    input_hash: str
    model: str
    prompt_version: str
    facets: Facets
    usages: tuple[CallUsage, ...]
    attempts: int

    def analysis_record(self) -> dict[str, Any]:
        """Row for the `analyses` table: key columns, JSON output, per-call usage."""
        return {
            "conversation_id": self.conversation_id,
            "stage": STAGE,
            "input_hash": self.input_hash,
            "model": self.model,
            "version": self.prompt_version,
            "output": self.facets.model_dump(mode="json"),
            "usage": [asdict(u) for u in self.usages],
        }


def _bounded_messages(conv: ConversationInput, limits: LLMSettings) -> tuple[list[dict[str, str]], bool]:
    """Messages as sent: each capped, total capped (earliest messages kept)."""
    sent: list[dict[str, str]] = []
    budget = limits.facets_conversation_chars
    truncated = False
    for message in conv.messages:
        whole = mask_for_display(message.text)  # personal data never leaves: the model sees it masked
        text = whole[: limits.facets_message_chars]
        truncated |= len(text) < len(whole)
        if budget <= 0:
            truncated = True
            break
        if len(text) > budget:
            text, truncated = text[:budget], True
        budget -= len(text)
        sent.append({"id": message.message_id, "role": message.role, "text": text})
    return sent, truncated


def facet_input_hash(conv: ConversationInput, model: str, prompt_version: str = FACETS_PROMPT_VERSION) -> str:
    """Content-addressed key over prompt version, model, message texts and scrubbed names."""
    material = {
        "prompt_version": prompt_version,
        "model": model,
        "messages": [[m.message_id, m.role, m.text] for m in conv.messages],
        "known_names": sorted(conv.known_names),
        "masking": PII_VERSION if masking_enabled() else None,  # what is sent changes with the masking
    }
    encoded = json.dumps(material, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def facet_messages(conv: ConversationInput, limits: LLMSettings | None = None) -> tuple[list[dict[str, str]], bool]:
    """The chat prompt for one conversation: instructions + a single escaped data block, sized by `limits`.

    `limits` defaults to the process's LLM settings; the flag says whether anything was cut.
    """
    sent, truncated = _bounded_messages(conv, limits or get_settings().llm)
    payload = {"conversation_id": conv.conversation_id, "messages": sent}
    return chat_messages(FACETS_SYSTEM, "conversation_data", payload), truncated


def _clip(text: str, limit: int) -> str:
    return text.strip()[:limit]


def finalize_facets(
    raw: FacetsOut, conv: ConversationInput, input_truncated: bool = False, limits: LLMSettings | None = None
) -> Facets:
    """Verify quotes verbatim, scrub free text, clip lengths (`limits`, default the process's): output -> facets.

    Quotes are verified against the messages as the model saw them (personal data masked,
    see `facet_messages`), so a kept quote shows ``[email]`` where the customer wrote one.
    """
    names = conv.known_names
    limits = limits or get_settings().llm

    def clean(text: str, limit: int = limits.facets_field_chars) -> str:
        return _clip(scrub(text, names), limit)

    check = verify_quotes(
        (QuoteCandidate(q.message_id, q.text) for q in raw.quotes),
        [(m.message_id, mask_for_display(m.text)) for m in conv.messages],  # the text the model saw
        max_kept=limits.quotes_per_conversation,
    )
    return Facets(
        summary=clean(raw.summary),
        customer_problem=clean(raw.customer_problem),
        requested_change=clean(raw.requested_change) if raw.requested_change else None,
        product_area=clean(raw.product_area, limits.facets_area_chars).lower(),
        conversation_type=raw.conversation_type,
        sentiment=raw.sentiment,
        severity=raw.severity,
        quotes=[Quote(message_id=q.message_id, text=q.text) for q in check.kept],
        quotes_dropped=check.dropped,
        input_truncated=input_truncated,
    )


async def analyze_facets(client: LLMClient, conv: ConversationInput) -> FacetResult:
    """One conversation, one (validated, possibly repaired) call. Raises `LLMCallFailed`."""
    model = client.settings.models.facets
    messages, truncated = facet_messages(conv, client.settings)
    result: CallResult[FacetsOut] = await client.structured(
        stage=STAGE,
        model=model,
        messages=messages,
        output=FacetsOut,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        expected_output_tokens=EXPECTED_OUTPUT_TOKENS,
    )
    return FacetResult(
        conversation_id=conv.conversation_id,
        input_hash=facet_input_hash(conv, model),
        model=model,
        prompt_version=FACETS_PROMPT_VERSION,
        facets=finalize_facets(result.value, conv, truncated, client.settings),
        usages=result.usages,
        attempts=result.attempts,
    )


def conversation_input(
    conversation_id: str,
    messages: Sequence[tuple[str, str, str]],
    known_names: Sequence[str] = (),
) -> ConversationInput:
    """Convenience constructor from (message_id, role, text) triples."""
    return ConversationInput(
        conversation_id=conversation_id,
        messages=tuple(MessageInput(mid, role, text) for mid, role, text in messages),
        known_names=tuple(known_names),
    )
