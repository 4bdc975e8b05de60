"""Output schemas the model must follow, and their strict JSON-schema form.

The pydantic models are the single source: `strict_json_schema()` turns one into the
`response_format.json_schema.schema` OpenAI's structured outputs accept (every object
closed with `additionalProperties: false`, every property required, nullable fields as
`anyOf [.., null]`), and the same model validates whatever comes back.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ConversationType = Literal[
    "bug",
    "feature_request",
    "how_to",
    "billing",
    "account_access",
    "complaint",
    "praise",
    "other",
]
Sentiment = Literal["negative", "neutral", "positive", "mixed"]
Severity = Literal["low", "medium", "high", "critical"]

_UNSUPPORTED_KEYS = ("default", "title")  # keys strict mode rejects or ignores


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuoteOut(_Closed):
    """A quote the model claims is verbatim from one message."""

    message_id: str
    text: str


class FacetsOut(_Closed):
    """Facets of one conversation as the model returns them (before verification)."""

    summary: str
    customer_problem: str
    requested_change: str | None
    product_area: str
    conversation_type: ConversationType
    sentiment: Sentiment
    severity: Severity
    quotes: list[QuoteOut]


class ThemeNameOut(_Closed):
    """Name and description of a theme, and how it differs from its neighbours."""

    name: str
    description: str
    contrast: str


class CitedText(_Closed):
    """One statement and the evidence ids that support it."""

    text: str
    evidence_ids: list[str]


class StoryOut(_Closed):
    """A backlog story as the model returns it (before citation validation)."""

    title: str
    problem: CitedText
    user_story: CitedText
    acceptance_criteria: list[CitedText]
    severity: Severity
    severity_reason: CitedText


SCHEMA_NAMES: dict[type[BaseModel], str] = {
    FacetsOut: "conversation_facets",
    ThemeNameOut: "theme_name",
    StoryOut: "story",
}


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """JSON schema for `model` in the form strict structured outputs require."""
    schema = copy.deepcopy(model.model_json_schema())
    _close(schema)
    for definition in schema.get("$defs", {}).values():
        _close(definition)
    return schema


def _close(node: Any) -> None:
    if isinstance(node, dict):
        for key in _UNSUPPORTED_KEYS:
            if key in node and not isinstance(node[key], dict):
                node.pop(key)
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
            node["required"] = list(node["properties"])
        for key, value in node.items():
            if key == "$defs":
                continue
            if key == "properties":
                for child in value.values():
                    _close(child)
            else:
                _close(value)
    elif isinstance(node, list):
        for item in node:
            _close(item)
