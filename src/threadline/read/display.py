"""The one place customer-derived text passes on its way to a person: masking and wording of gaps.

Snapshots store text verbatim (quotes, story text, theme names, messages); whatever is done
to text before it is shown (masking personal data; escaping is the template's job) happens
here, when it is read, so an improvement reaches old snapshots too. Every read model calls
`shown` on the customer-derived text it returns.
"""

from __future__ import annotations

NOT_RECORDED = "not recorded for this run"  # runs that predate snapshots: their names were overwritten later


def shown(value: str | None) -> str | None:
    """Customer-derived text as a person may see it (the masking of personal data plugs in here)."""
    return value


def shown_list(values: list[str] | None) -> list[str]:
    return [v for v in (shown(value) for value in values or []) if v is not None]
