"""Theme name and description from member facets, contrasted with the nearest non-members.

Showing the model the closest conversations that are *not* in the theme makes it name
what is specific to the members ("Card declined abroad") instead of the shared topic
("Card problems"). Facets are derived from customer text, so they go in a data block.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from pydantic import BaseModel

from threadline.ai.llm.client import LLMClient
from threadline.ai.llm.cost import CallUsage
from threadline.ai.llm.privacy import scrub
from threadline.ai.llm.prompts import NAMING_PROMPT_VERSION, NAMING_SYSTEM, chat_messages
from threadline.ai.llm.schemas import ThemeNameOut
from threadline.config import LLMSettings, get_settings
from threadline.text.pii import PII_VERSION, mask_for_display, masking_enabled

STAGE = "naming"
# Prompt and output sizes are settings (`LLMSettings.naming_*`); the output-token sizes belong to the prompt version.
MAX_OUTPUT_TOKENS = 300  # tokens: name + two sentences fit easily
EXPECTED_OUTPUT_TOKENS = 90  # tokens: initial estimate before real usage is observed


@dataclass(frozen=True)
class ThemeMember:
    """Facets of one conversation, as used to describe a theme."""

    conversation_id: str
    summary: str
    customer_problem: str
    requested_change: str | None
    product_area: str
    conversation_type: str


@dataclass(frozen=True)
class ThemeNamingInput:
    """Members of a theme and its nearest non-members (by embedding distance)."""

    theme_id: str
    members: tuple[ThemeMember, ...]
    nearest_non_members: tuple[ThemeMember, ...] = ()


class ThemeName(BaseModel):
    """Validated theme label (stored on `themes`)."""

    name: str
    description: str
    contrast: str


@dataclass(frozen=True)
class ThemeNameResult:
    """Name of one theme plus its cache key and cost."""

    theme_id: str
    input_hash: str
    model: str
    prompt_version: str
    name: ThemeName
    usages: tuple[CallUsage, ...]
    attempts: int


def _digest(member: ThemeMember, index: int, field_chars: int) -> dict[str, str | None]:
    def clip(text: str | None) -> str | None:
        return mask_for_display(text)[:field_chars] if text else text  # personal data never leaves

    return {
        "id": f"M{index}",
        "summary": clip(member.summary),
        "problem": clip(member.customer_problem),
        "requested_change": clip(member.requested_change),
        "product_area": clip(member.product_area),
        "type": member.conversation_type,
    }


def naming_payload(inp: ThemeNamingInput, limits: LLMSettings | None = None) -> dict[str, object]:
    """What the model sees, bounded by `limits` (default: the process's): member and non-member digests, no ids.

    Every text is masked (`threadline.text.pii.mask_for_display`) before it is clipped.
    """
    limits = limits or get_settings().llm
    chars = limits.naming_field_chars
    return {
        "members": [_digest(m, i, chars) for i, m in enumerate(inp.members[: limits.naming_members], 1)],
        "nearest_non_members": [
            _digest(m, i, chars) for i, m in enumerate(inp.nearest_non_members[: limits.naming_contrasts], 1)
        ],
    }


def naming_input_hash(inp: ThemeNamingInput, model: str, prompt_version: str = NAMING_PROMPT_VERSION) -> str:
    """Content-addressed key: same members, contrasts, model and prompt -> same name."""
    material = {
        "prompt_version": prompt_version,
        "model": model,
        "members": [asdict(m) for m in inp.members],
        "nearest_non_members": [asdict(m) for m in inp.nearest_non_members],
        "masking": PII_VERSION if masking_enabled() else None,  # what is sent changes with the masking
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


async def name_theme(client: LLMClient, inp: ThemeNamingInput) -> ThemeNameResult:
    """One call naming one theme. Raises `LLMCallFailed` after bounded attempts."""
    model = client.settings.models.naming
    result = await client.structured(
        stage=STAGE,
        model=model,
        messages=chat_messages(NAMING_SYSTEM, "theme_data", naming_payload(inp, client.settings)),
        output=ThemeNameOut,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        expected_output_tokens=EXPECTED_OUTPUT_TOKENS,
        check=lambda out: None if out.name.strip() else "name is empty",
    )
    out = result.value
    limits = client.settings
    return ThemeNameResult(
        theme_id=inp.theme_id,
        input_hash=naming_input_hash(inp, model),
        model=model,
        prompt_version=NAMING_PROMPT_VERSION,
        name=ThemeName(
            name=scrub(out.name.strip())[: limits.naming_name_chars],
            description=scrub(out.description.strip())[: limits.naming_text_chars],
            contrast=scrub(out.contrast.strip())[: limits.naming_text_chars],
        ),
        usages=result.usages,
        attempts=result.attempts,
    )
