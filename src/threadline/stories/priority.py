"""Explained priority: a story's rank score and severity from named, documented factors.

Every factor is computed from plain data about the theme's conversations
(:class:`ThemeFacts`) and the run (:class:`RunFacts`), and is returned with its value,
its multiplier and a sentence saying why, so every view can show what put a story where
it is. The score is a product, so each factor reads as "x1.3 because ...":

    score = reach x spread x value x recency x trend x signals x type

- **reach**: distinct customers where the data has customer ids, plus conversations without
  one (each counted once, shown as "customer unknown", never as a customer);
- **spread**: 1 + ``COMPANY_SPREAD_WEIGHT`` x (distinct companies / reach): the same problem at
  many companies weighs more than one account writing often;
- **value** (only when configured): the theme's customers' mean plan weight
  (``insight.plan_weights``) and/or mean numeric attribute (``insight.value_attribute``),
  each relative to the run's average and clipped to [``VALUE_MIN``, ``VALUE_MAX``];
- **recency**: 0.5 + the share of the theme's conversations in the last quarter of the run's
  period (0.5 to 1.5);
- **trend**: ``TREND_MULTIPLIER`` by direction (rising, new, steady, falling);
- **signals**: 1 + ``SIGNAL_WEIGHT`` x the share of conversations whose customer text shows a
  severity signal (cannot log in, locked out, data loss, charged twice, outage, security);
- **type**: ``TYPE_WEIGHT`` of the theme's dominant conversation type (praise ranks low).

**Severity** is about harm, not volume: ``high`` when a strong signal (locked out, cannot
log in, data loss, charged twice, outage, security) appears in at least
``HIGH_SIGNAL_SHARE`` of the conversations; ``medium`` for bugs, billing, access problems
and complaints, or any signal in at least ``MEDIUM_SIGNAL_SHARE``; ``low`` otherwise
(feature requests, how-to questions, praise). A low story that carries at least
``HIGH_VOLUME_SHARE`` of the run's conversations is raised to medium; volume alone never
makes a story high.

Signals are English patterns (the sample, BANKING77 and STAR are English); other languages
get no signal and fall back to type and volume.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from threadline.text.caseless import ascii_variant

__all__ = [
    "PRIORITY_VERSION",
    "SIGNALS",
    "Factor",
    "Priority",
    "RunFacts",
    "ThemeFacts",
    "prioritise",
    "severity_signals",
]

PRIORITY_VERSION = "factors-1"
COMPANY_SPREAD_WEIGHT = 0.5  # multiplier gained when every customer is at a different company (x1.5 at most)
VALUE_MIN, VALUE_MAX = 0.5, 2.0  # clip of the customer-value multiplier: value informs, volume still matters
RECENT_QUARTER = 0.25  # share of the run's period counted as recent (its last quarter)
TREND_MULTIPLIER = {"rising": 1.25, "new": 1.25, "steady": 1.0, "falling": 0.8}
SIGNAL_WEIGHT = 1.0  # a theme where every conversation shows a severity signal counts double
TYPE_WEIGHT = {
    "bug": 1.2,
    "account_access": 1.2,
    "billing": 1.1,
    "complaint": 1.0,
    "feature_request": 1.0,
    "how_to": 0.8,
    "other": 0.8,
    "praise": 0.25,
}
HIGH_SIGNAL_SHARE = 0.2  # share of a theme's conversations with a strong signal that makes it high severity
MEDIUM_SIGNAL_SHARE = 0.2  # share with any signal that makes it at least medium
HIGH_VOLUME_SHARE = 0.10  # share of the run's conversations that lifts a low story to medium
MEDIUM_TYPES = frozenset({"bug", "billing", "account_access", "complaint"})

# name -> (pattern over customer text, strong?). Strong signals mean people cannot work or lose money/data.
SIGNALS: dict[str, tuple[re.Pattern[str], bool]] = {
    "cannot log in": (
        re.compile(
            r"\b(?:can(?:no|')?t|can not|unable to|couldn't|could not|won't let (?:me|us))\s+(?:log|sign)\s*(?:in|on)\b"
            r"|\blog(?:in|ging in)\s+(?:fails|failed|loop|not working|broken)|\bredirect loop\b",
            re.IGNORECASE,
        ),
        True,
    ),
    "locked out": (
        re.compile(
            r"\blocked out\b|\baccount (?:is |was |has been |got )?(?:locked|blocked|frozen|suspended|disabled)\b"
            r"|\b(?:pin|card) (?:is |was |has been |got )?blocked\b",
            re.IGNORECASE,
        ),
        True,
    ),
    "data loss": (
        re.compile(
            r"\bdata loss\b|\b(?:lost|deleted|wiped|disappeared|vanished)\b[^.!?\n]{0,40}\b(?:data|files?|tasks?|work|records?|history|projects?)\b"
            r"|\b(?:data|files?|tasks?|records?|history|projects?)\b[^.!?\n]{0,20}\b(?:disappeared|vanished|are gone|is gone|got deleted)\b",
            re.IGNORECASE,
        ),
        True,
    ),
    "charged twice": (
        re.compile(
            r"\b(?:charged|billed|debited|paid|taken)\s+(?:twice|two times|double|2 times)\b|\bdouble[- ]?(?:charge[ds]?|charging|payment|billed)\b"
            r"|\bduplicate (?:charges?|payments?|transactions?)\b|\bcharged (?:me )?(?:more than once|again)\b",
            re.IGNORECASE,
        ),
        True,
    ),
    "outage": (
        re.compile(
            r"\b(?:outage|is down|went down|service unavailable|nothing (?:loads|works)|5\d\d (?:error|gateway)|bad gateway)\b",
            re.IGNORECASE,
        ),
        True,
    ),
    "security": (
        re.compile(
            r"\b(?:fraud\w*|hacked|unauthori[sz]ed|stolen|compromised|scam\w*|phishing|did(?: not|n't) (?:make|authori[sz]e))\b",
            re.IGNORECASE,
        ),
        True,
    ),
    "crash or error": (
        re.compile(r"\b(?:crash\w*|error\w*|fail(?:s|ed|ing|ure)?|broken|timed? ?out|times out)\b", re.IGNORECASE),
        False,
    ),
    "blocked from work": (
        re.compile(
            r"\b(?:blocker|blocking us|can(?:no|')?t work|whole team|all (?:our )?users|everyone in (?:our|the) (?:team|company)|urgent|asap)\b",
            re.IGNORECASE,
        ),
        False,
    ),
}


# the signal patterns for lowercased ASCII text: several times faster than ignoring case
_ASCII_SIGNALS = {name: ascii_variant(pattern) for name, (pattern, _) in SIGNALS.items()}


def severity_signals(text: str) -> set[str]:
    """Names of the severity signals a customer text shows (see :data:`SIGNALS`)."""
    if text.isascii():
        lowered = text.lower()
        return {name for name, pattern in _ASCII_SIGNALS.items() if pattern.search(lowered)}
    return {name for name, (pattern, _) in SIGNALS.items() if pattern.search(text)}


@dataclass
class ThemeFacts:
    """What is known about one theme's conversations (plain data, no database)."""

    conversations: int
    customer_ids: list[str | None]  # one per conversation: its customer's id, None when unknown
    companies: list[str | None]  # one per conversation
    plans: list[str | None]  # one per conversation
    values: Mapping[str, float] = field(default_factory=dict)  # customer id -> configured numeric attribute
    times: list[datetime] = field(default_factory=list)  # creation time of each conversation that has one
    types: list[str] = field(default_factory=list)  # conversation type of each conversation that has one
    signals: Mapping[str, int] = field(default_factory=dict)  # signal name -> conversations showing it
    trend_direction: str = "steady"


@dataclass
class RunFacts:
    """The run-wide context a theme is weighed against."""

    conversations: int
    period: tuple[datetime, datetime] | None
    plan_weights: Mapping[str, float] = field(default_factory=dict)  # configured; empty = plans carry no weight
    mean_plan_weight: float | None = None  # over the run's conversations with a weighted plan
    value_attribute: str | None = None  # configured attribute name, e.g. "seats"
    mean_value: float | None = None  # over the run's customers that have the attribute


@dataclass(frozen=True)
class Factor:
    """One named factor: its measured value, the multiplier it contributes and why."""

    name: str
    value: Any
    multiplier: float
    reason: str


@dataclass
class Priority:
    """A story's score, severity and the factors and signals behind them (JSON-ready via :meth:`to_dict`)."""

    score: float
    severity: str
    severity_reason: str
    factors: list[Factor]
    signals: dict[str, int]
    customers_known: int
    customers_unknown_conversations: int
    companies: dict[str, int]
    plans: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = PRIORITY_VERSION
        return data


def _count(values: Iterable[str | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        if value:
            counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _recent_share(times: list[datetime], period: tuple[datetime, datetime] | None) -> float:
    """Share of the theme's conversations in the last quarter of the run's period."""
    if not times or period is None:
        return 0.0
    start, end = period
    cutoff = end - (end - start) * RECENT_QUARTER if end > start else end - timedelta(days=1)
    return sum(1 for t in times if t >= cutoff) / len(times)


def _value_factor(facts: ThemeFacts, run: RunFacts) -> Factor | None:
    """Customer value relative to the run's average, when plan weights or a value attribute are configured."""
    parts: list[tuple[float, str]] = []
    if run.plan_weights and run.mean_plan_weight:
        weights = [run.plan_weights[p] for p in facts.plans if p is not None and p in run.plan_weights]
        if weights:
            ratio = (sum(weights) / len(weights)) / run.mean_plan_weight
            parts.append(
                (ratio, f"plan weight {sum(weights) / len(weights):.2g} vs run mean {run.mean_plan_weight:.2g}")
            )
    if run.value_attribute and run.mean_value:
        known: set[str] = {c for c in facts.customer_ids if c is not None and c in facts.values}
        known_values = [facts.values[c] for c in known]
        if known:
            mean = sum(known_values) / len(known_values)
            parts.append(
                (mean / run.mean_value, f"mean {run.value_attribute} {mean:.3g} vs run mean {run.mean_value:.3g}")
            )
    if not parts:
        return None
    ratio = math.prod(r for r, _ in parts) ** (1 / len(parts))
    multiplier = min(VALUE_MAX, max(VALUE_MIN, ratio))
    return Factor("value", round(ratio, 3), round(multiplier, 3), "; ".join(reason for _, reason in parts))


def _severity(facts: ThemeFacts, run: RunFacts, dominant_type: str) -> tuple[str, str]:
    n = max(facts.conversations, 1)
    strong = {s: c for s, c in facts.signals.items() if SIGNALS.get(s, (None, False))[1]}
    top_strong = max(strong.items(), key=lambda item: (item[1], item[0]), default=None)
    any_signal_share = max(facts.signals.values(), default=0) / n
    if top_strong and top_strong[1] / n >= HIGH_SIGNAL_SHARE:
        return "high", f"\u201c{top_strong[0]}\u201d in {top_strong[1]} of {facts.conversations} conversations"
    if dominant_type in MEDIUM_TYPES:
        return "medium", f"mostly {dominant_type.replace('_', ' ')} conversations"
    if any_signal_share >= MEDIUM_SIGNAL_SHARE:
        name, count = max(facts.signals.items(), key=lambda item: (item[1], item[0]))
        return "medium", f"\u201c{name}\u201d in {count} of {facts.conversations} conversations"
    share = facts.conversations / max(run.conversations, 1)
    if share >= HIGH_VOLUME_SHARE:
        return "medium", f"{share:.0%} of the run's conversations (volume alone never makes a story high)"
    return "low", f"mostly {dominant_type.replace('_', ' ')} conversations without severity signals"


def prioritise(facts: ThemeFacts, run: RunFacts) -> Priority:
    """Score and severity of one theme's story, with every factor named (see the module docstring)."""
    n = facts.conversations
    known = {c for c in facts.customer_ids if c is not None}
    unknown = sum(1 for c in facts.customer_ids if c is None)
    reach = len(known) + unknown
    companies = _count(facts.companies)
    plans = _count(facts.plans)
    types = _count(facts.types)
    dominant_type = next(iter(types), "other")
    factors = [
        Factor(
            "reach",
            reach,
            float(reach),
            f"{len(known)} distinct customers" + (f" + {unknown} conversations, customer unknown" if unknown else "")
            if known
            else f"{n} conversations, customer unknown",
        ),
    ]
    if companies:
        spread = 1 + COMPANY_SPREAD_WEIGHT * min(1.0, len(companies) / max(reach, 1))
        factors.append(Factor("companies", len(companies), round(spread, 3), f"{len(companies)} distinct companies"))
    value = _value_factor(facts, run)
    if value is not None:
        factors.append(value)
    recent = _recent_share(facts.times, run.period)
    factors.append(
        Factor("recency", round(recent, 3), round(0.5 + recent, 3), f"{recent:.0%} in the last quarter of the period")
    )
    direction = facts.trend_direction
    factors.append(Factor("trend", direction, TREND_MULTIPLIER.get(direction, 1.0), f"volume is {direction}"))
    signal_share = max(facts.signals.values(), default=0) / max(n, 1)
    if facts.signals:
        listed = ", ".join(f"{name} ({count})" for name, count in sorted(facts.signals.items(), key=lambda i: -i[1]))
        factors.append(Factor("signals", round(signal_share, 3), round(1 + SIGNAL_WEIGHT * signal_share, 3), listed))
    type_weight = TYPE_WEIGHT.get(dominant_type, 1.0)
    share_of_type = types.get(dominant_type, 0) / max(len(facts.types), 1)
    factors.append(
        Factor("type", dominant_type, type_weight, f"{share_of_type:.0%} {dominant_type.replace('_', ' ')}")
        if facts.types
        else Factor("type", "unknown", 1.0, "conversation type not analysed")
    )
    score = math.prod(f.multiplier for f in factors)
    severity, reason = _severity(facts, run, dominant_type)
    return Priority(
        score=round(score, 4),
        severity=severity,
        severity_reason=reason,
        factors=factors,
        signals=dict(sorted(facts.signals.items(), key=lambda item: (-item[1], item[0]))),
        customers_known=len(known),
        customers_unknown_conversations=unknown,
        companies=companies,
        plans=plans,
    )
