"""The one place customer-derived text passes on its way to a person: masking and wording of gaps.

Snapshots store text verbatim (quotes, story text, theme names, messages); whatever is done
to text before it is shown (masking personal data; escaping is the template's job) happens
here, when it is read, so an improvement reaches old snapshots too. Every read model calls
`shown` on the customer-derived text it returns; masking is
`threadline.text.pii.mask_for_display` (setting ``insight.mask_personal_data``, on by default).
"""

from __future__ import annotations

from typing import Any

from threadline.text.pii import mask_for_display, mask_span_for_display

NOT_RECORDED = "not recorded for this run"  # runs that predate snapshots: their names were overwritten later


def shown(value: str | None) -> str | None:
    """Customer-derived text as a person may see it: personal data masked."""
    return mask_for_display(value)


def shown_list(values: list[str] | None) -> list[str]:
    return [v for v in (shown(value) for value in values or []) if v is not None]


def shown_span(text: str, start: int, end: int) -> str:
    """``text[start:end]`` as shown, judged on the whole text.

    A highlight boundary may cut a phone number or an e-mail in two; masking each piece on
    its own would miss both halves, so the whole text decides what is personal data.
    """
    return mask_span_for_display(text, start, end)


def shown_priority(priority: dict[str, Any] | None) -> dict[str, Any]:
    """A story's priority factors as shown: every text in them (reasons, company and plan names) masked."""
    return _masked_tree(priority or {})


def _masked_tree(value: Any) -> Any:
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, list):
        return [_masked_tree(v) for v in value]
    if isinstance(value, dict):
        return {shown(k) if isinstance(k, str) else k: _masked_tree(v) for k, v in value.items()}
    return value
