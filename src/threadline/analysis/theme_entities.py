"""Entities per conversation as stored values, and the top entities of a theme with their shares.

Pure: the `coverage` stage feeds it the stored entities of each conversation and each theme's
members. A share is the fraction of a theme's conversations that mention an entity at least
once, so one chatty conversation does not make a theme "mostly iOS".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from threadline.text.entities import Entity, EntityExtractor

ENTITIES_ANALYSIS = "entities"  # `analyses.stage` of per-conversation entities
ENTITIES_VERSION = "1"  # bump when the stored output or the extractor's rules change
THEME_TOP_ENTITIES = 8  # entities kept per theme: the ones that characterise it, not a long tail
THEME_MIN_ENTITY_SHARE = 0.1  # share of a theme's conversations: rarer entities are noise, not a trait
PRODUCT_AREA_TYPE = "product_area"  # entity type of an LLM facet's product area (the extractor never reports it)
LLM_SOURCE = "llm"  # `source` of an entity an LLM facet gave (the extractor's own carry none)


def entity_key(kind: str, value: str) -> str:
    """The filter key of one entity: ``type:value`` in lower case (``platform:ios``)."""
    return f"{kind}:{value}".lower()


def conversation_output(entities: Iterable[Entity]) -> dict[str, Any]:
    """The `analyses.output` of one conversation: distinct entities (first mention first) and filter keys.

    `keys` holds each entity's ``type:value`` and bare value in lower case, so a filter can ask
    for ``ios`` or ``platform:ios``.
    """
    distinct: dict[tuple[str, str], None] = {}
    for entity in entities:
        distinct.setdefault((str(entity.type), entity.value), None)
    keys: dict[str, None] = {}
    for kind, value in distinct:
        keys.setdefault(entity_key(kind, value), None)
        keys.setdefault(value.lower(), None)
    return {"entities": [{"type": k, "value": v} for k, v in distinct], "keys": list(keys)}


def extract_output(extractor: EntityExtractor, text: str, product_area: str | None = None) -> dict[str, Any]:
    """Extract and shape one conversation's stored entities, with its LLM facet's product area when it has one."""
    output = conversation_output(extractor.extract(text))
    return with_product_area(output, product_area) if product_area else output


def with_product_area(output: Mapping[str, Any], area: str) -> dict[str, Any]:
    """`output` plus the LLM facet's product area as a ``product_area`` entity (source ``llm``) and its filter keys.

    Kept after the extractor's entities, so a theme counts it like any other and the
    conversation list's ``entity`` filter finds it (``product_area:billing`` or ``billing``).
    """
    entities = [*output.get("entities", []), {"type": PRODUCT_AREA_TYPE, "value": area, "source": LLM_SOURCE}]
    keys = dict.fromkeys([*output.get("keys", []), entity_key(PRODUCT_AREA_TYPE, area), area.lower()])
    return {**output, "entities": entities, "keys": list(keys)}


def theme_entity_shares(
    members: Sequence[int],
    outputs: Mapping[int, Mapping[str, Any]],
    *,
    top: int = THEME_TOP_ENTITIES,
    min_share: float = THEME_MIN_ENTITY_SHARE,
) -> list[dict[str, Any]]:
    """Top entities of a theme's `members`: [{"type", "value", "share"}], most shared first.

    `outputs` maps conversation id to its stored output; members without one count as
    mentioning nothing. Ties break by type, then value, so a snapshot is reproducible.
    """
    if not members:
        return []
    counts: Counter[tuple[str, str]] = Counter()
    for conversation_id in members:
        output = outputs.get(conversation_id)
        if output:
            counts.update({(e["type"], e["value"]) for e in output.get("entities", [])})
    total = len(members)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [
        {"type": kind, "value": value, "share": round(n / total, 3)}
        for (kind, value), n in ranked
        if n / total >= min_share
    ][:top]


def dominant_entities(entities: Sequence[Mapping[str, Any]], *, min_share: float) -> list[Mapping[str, Any]]:
    """The most shared entity of each type at or above `min_share` ("mostly iOS, plan Business"), in order."""
    seen: set[str] = set()
    chosen = []
    for entity in entities:
        if entity["share"] >= min_share and entity["type"] not in seen:
            seen.add(entity["type"])
            chosen.append(entity)
    return chosen
