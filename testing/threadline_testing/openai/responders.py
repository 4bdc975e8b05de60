"""Deterministic "model" behind the stand-in: JSON answers derived from the prompt's data.

Contract with Threadline's prompts (and any test prompt):
* data arrives in `<name_data>...</name_data>` blocks holding JSON; everything outside
  those blocks is treated as instructions;
* the task is the `response_format.json_schema.name`, or a `schema_name: X` line in
  the instructions when only JSON mode is requested;
* gullibility: if the *instructions* (text outside data blocks) contain "ignore
  previous instructions", the answer is poisoned: free-text fields become
  "INJECTED: ..." and the conversation type becomes "praise". Instructions inside data
  blocks are ignored, which is exactly what a safe prompt relies on.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from threadline_testing.openai.config import INVENTED_QUOTATION, StandinConfig
from threadline_testing.openai.faults import unit_hash

DATA_BLOCK = re.compile(r"<(\w+_data)>(.*?)</\1>", re.DOTALL)
SCHEMA_NAME_LINE = re.compile(r"schema_name:\s*([A-Za-z0-9_]+)")
INJECTION = re.compile(
    r"ignore (?:all )?(?:the )?(?:previous|prior|above) instructions(?: and)?\s*([^\n.]*)",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"[a-z][a-z']+")

MAX_SUMMARY_CHARS = 200  # characters: the stand-in writes short summaries like a real model
MAX_QUOTES = 2  # quotes per conversation: enough to exercise verification
FREE_TEXT_KEYS = frozenset(
    {
        "summary",
        "customer_problem",
        "requested_change",
        "product_area",
        "name",
        "description",
        "contrast",
        "title",
        "text",
        "severity_reason",
    }
)
STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "to",
        "of",
        "in",
        "on",
        "for",
        "with",
        "my",
        "i",
        "me",
        "is",
        "it",
        "this",
        "that",
        "be",
        "can",
        "you",
        "your",
        "we",
        "our",
        "not",
        "have",
        "has",
        "was",
        "are",
        "do",
        "does",
        "did",
        "at",
        "from",
        "as",
        "by",
        "but",
        "if",
        "so",
        "how",
        "what",
        "when",
        "why",
        "would",
        "could",
        "please",
        "hi",
        "hello",
        "thanks",
        "thank",
        "just",
        "get",
        "got",
        "any",
        "there",
        "their",
        "they",
        "them",
        "been",
        "will",
        "am",
    ]
)
PRODUCT_AREAS = (
    ("card", "cards"),
    ("transfer", "transfers"),
    ("refund", "refunds"),
    ("payment", "payments"),
    ("charge", "billing"),
    ("fee", "billing"),
    ("password", "login"),
    ("login", "login"),
    ("log in", "login"),
    ("pin", "cards"),
    ("account", "account"),
    ("app", "mobile app"),
    ("booking", "bookings"),
    ("reservation", "bookings"),
    ("appointment", "appointments"),
    ("ride", "rides"),
    ("flight", "flights"),
    ("apartment", "apartments"),
    ("trip", "trips"),
)
TYPE_RULES = (
    ("account_access", ("password", "log in", "login", "locked", "sign in", "verify my identity")),
    ("billing", ("refund", "charged", "charge", "fee", "invoice", "payment")),
    ("bug", ("error", "broken", "not working", "doesn't work", "failed", "crash", "declined")),
    (
        "feature_request",
        ("can you add", "would be nice", "feature", "wish", "would like to be able"),
    ),
    ("how_to", ("how do i", "how can i", "how to", "where can i", "what do i need")),
    ("complaint", ("terrible", "unacceptable", "angry", "worst", "disappointed")),
    ("praise", ("great", "love", "awesome", "excellent")),
)
NEGATIVE = (
    "not",
    "never",
    "still",
    "broken",
    "wrong",
    "fail",
    "declined",
    "angry",
    "lost",
    "stolen",
)
POSITIVE = ("thanks", "thank", "great", "love", "perfect", "awesome")
URGENT = ("urgent", "immediately", "stolen", "fraud", "lost", "locked out", "emergency")
REQUEST_CUES = ("please", "could you", "can you", "would like", "want to", "wish", "need")


def split_prompt(messages: list[dict[str, Any]]) -> tuple[str, list[tuple[str, Any]]]:
    """Split chat messages into instruction text and parsed data blocks (name, value)."""
    instructions: list[str] = []
    blocks: list[tuple[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            continue
        if message.get("role") == "assistant":
            continue
        position = 0
        for match in DATA_BLOCK.finditer(content):
            instructions.append(content[position : match.start()])
            raw = match.group(2).strip()
            try:
                blocks.append((match.group(1), json.loads(raw)))
            except json.JSONDecodeError:
                blocks.append((match.group(1), raw))
            position = match.end()
        instructions.append(content[position:])
    return "\n".join(instructions), blocks


def task_name(instructions: str, response_format: dict[str, Any] | None) -> str | None:
    """The requested schema name (json_schema mode) or the `schema_name:` line (JSON mode)."""
    if response_format and response_format.get("type") == "json_schema":
        name = (response_format.get("json_schema") or {}).get("name")
        if name:
            return str(name)
    match = SCHEMA_NAME_LINE.search(instructions)
    return match.group(1) if match else None


def respond(
    messages: list[dict[str, Any]],
    response_format: dict[str, Any] | None,
    config: StandinConfig,
) -> dict[str, Any] | str:
    """The deterministic answer: a JSON-able object, or plain text without a JSON format."""
    instructions, blocks = split_prompt(messages)
    data = dict(blocks)
    task = task_name(instructions, response_format)
    if task == "conversation_facets":
        answer: dict[str, Any] = _facets(data.get("conversation_data"), config)
    elif task == "theme_name":
        answer = _theme_name(data.get("theme_data"))
    elif task == "story":
        answer = _story(data.get("evidence_data"), config)
    elif response_format and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        answer = _fill(schema, schema)
    elif response_format:
        answer = {"answer": "ok"}
    else:
        return "ok"
    injected = INJECTION.search(instructions)
    if injected:
        answer = _poison(answer, injected.group(1).strip() or "obeyed")
    return answer


def _sentences(text: str) -> list[str]:
    return [s for s in SENTENCE_END.split(text.strip()) if s]


def _has(text: str, cues: tuple[str, ...]) -> bool:
    return any(cue in text for cue in cues)


def _facets(data: Any, config: StandinConfig) -> dict[str, Any]:
    messages = data.get("messages", []) if isinstance(data, dict) else []
    conv_id = str(data.get("conversation_id", "")) if isinstance(data, dict) else ""
    customer = [m for m in messages if m.get("role") == "customer" and m.get("text")]
    pool = customer or [m for m in messages if m.get("text")]
    text = " ".join(str(m["text"]) for m in pool)
    lower = text.lower()
    first = _sentences(str(pool[0]["text"]))[0] if pool else "No customer message."
    request = next(
        (s for m in pool for s in _sentences(str(m["text"])) if _has(s.lower(), REQUEST_CUES)),
        None,
    )
    area = next((area for cue, area in PRODUCT_AREAS if cue in lower), "general")
    kind = next((name for name, cues in TYPE_RULES if _has(lower, cues)), "other")
    words = set(WORD.findall(lower))
    negative = any(w in words for w in NEGATIVE)
    positive = any(w in words for w in POSITIVE)
    sentiment = (
        "mixed" if negative and positive else "negative" if negative else ("positive" if positive else "neutral")
    )
    severity = "high" if _has(lower, URGENT) else "medium" if negative else "low"
    quotes = []
    for message in pool[:MAX_QUOTES]:
        sentence = _sentences(str(message["text"]))[0]
        quotes.append({"message_id": str(message.get("id", "")), "text": sentence})
    if pool and unit_hash(str(config.seed), "fabricate", conv_id) < config.fabricated_quote_rate:
        quotes.append({"message_id": str(pool[0].get("id", "")), "text": "I was promised a full refund twice"})
    return {
        "summary": f"Customer wrote: {first}"[:MAX_SUMMARY_CHARS],
        "customer_problem": first[:MAX_SUMMARY_CHARS],
        "requested_change": request[:MAX_SUMMARY_CHARS] if request else None,
        "product_area": area,
        "conversation_type": kind,
        "sentiment": sentiment,
        "severity": severity,
        "quotes": quotes,
    }


def _keywords(items: list[Any]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in items:
        if isinstance(item, dict):
            text = " ".join(str(v) for v in item.values() if isinstance(v, str))
            counts.update(w for w in WORD.findall(text.lower()) if w not in STOPWORDS)
    return counts


def _theme_name(data: Any) -> dict[str, Any]:
    members = data.get("members", []) if isinstance(data, dict) else []
    others = data.get("nearest_non_members", []) if isinstance(data, dict) else []
    inside, outside = _keywords(members), _keywords(others)
    scored = sorted(inside, key=lambda w: (-(inside[w] - 2 * outside[w]), w))
    top = [w for w in scored if w not in {"customer", "wrote"}][:3] or ["misc"]
    contrast_words = [w for w, _ in outside.most_common(6) if w not in top][:2] or ["other topics"]
    return {
        "name": " ".join(top).capitalize(),
        "description": f"Customers asking about {', '.join(top)}.",
        "contrast": f"Unlike nearby conversations about {', '.join(contrast_words)}.",
    }


def _story(data: Any, config: StandinConfig) -> dict[str, Any]:
    evidence = data.get("evidence", []) if isinstance(data, dict) else []
    theme = data.get("theme", {}) if isinstance(data, dict) else {}
    ids = [str(e.get("id")) for e in evidence if isinstance(e, dict) and e.get("id")]
    name = str(theme.get("name") or "the reported problem")
    first_quote = str(evidence[0].get("quote", "")) if evidence else ""
    criteria: list[dict[str, Any]] = [
        {"text": f"The issue described as '{name}' no longer occurs.", "evidence_ids": ids[:2]},
        {"text": "Customers get a clear status message.", "evidence_ids": ids[1:3] or ids[:1]},
    ]
    if unit_hash(str(config.seed), "badcite", name) < config.bad_citation_rate:
        criteria.append({"text": "Made-up requirement.", "evidence_ids": ["E999999"]})
        criteria[0]["evidence_ids"] = [*criteria[0]["evidence_ids"], "nonexistent"]
    return {
        "title": f"Fix: {name}"[:120],
        "problem": {"text": _problem(first_quote, config), "evidence_ids": ids[:3]},
        "user_story": {
            "text": f"As a customer, I want {name.lower()} resolved, so that I can continue.",
            "evidence_ids": ids[:1],
        },
        "acceptance_criteria": criteria,
        "severity": "high" if len(ids) >= 5 else "medium",
        "severity_reason": {
            "text": f"{len(ids)} conversations report it.",
            "evidence_ids": ids[:3],
        },
    }


def _problem(first_quote: str, config: StandinConfig) -> str:
    if config.story_quotation == "verbatim":
        return f'A customer wrote: "{first_quote}"'
    if config.story_quotation == "invented":
        return f'A customer wrote: "{INVENTED_QUOTATION}"'
    return f"Customers report: {first_quote}"[:300]


def _poison(value: Any, command: str, key: str | None = None) -> Any:
    if isinstance(value, dict):
        poisoned = {k: _poison(v, command, k) for k, v in value.items()}
        if "conversation_type" in poisoned:
            poisoned["conversation_type"] = "praise"
        return poisoned
    if isinstance(value, list):
        return [_poison(v, command, key) for v in value]
    if isinstance(value, str) and key in FREE_TEXT_KEYS:
        return f"INJECTED: {command}"[:MAX_SUMMARY_CHARS]
    return value


def _fill(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """Minimal value satisfying a (strict-mode) JSON schema, for unknown task names."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _fill(root.get("$defs", {}).get(name, {}), root)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _fill(schema["anyOf"][0], root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        return {k: _fill(v, root) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return []
    return {"string": "x", "integer": 0, "number": 0.0, "boolean": False, "null": None}.get(str(kind), None)
