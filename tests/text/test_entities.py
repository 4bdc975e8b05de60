"""Tests for entities.py: each entity type, context rules, offsets, gazetteer, fingerprint, linear time."""

from __future__ import annotations

import time

import pytest

from threadline.text.entities import (
    MAX_TEXT_CHARS,
    Entity,
    EntityConfig,
    EntityExtractor,
    EntityType,
    Gazetteer,
)

PLANS = ("Free", "Team", "Business", "Enterprise")
GAZETTEER = Gazetteer.from_terms(
    {
        "recurring invoices": ["recurring invoice"],
        "invoices": ["invoice"],
        "single sign-on": ["SSO", "SAML"],
        "export": ["CSV export"],
    }
)


@pytest.fixture(scope="module")
def extractor() -> EntityExtractor:
    return EntityExtractor(EntityConfig(plans=PLANS, gazetteer=GAZETTEER))


def _pairs(extractor: EntityExtractor, text: str) -> set[tuple[str, str]]:
    return {(str(t), v) for t, v in extractor.distinct(text)}


def test_entities_carry_offsets_of_the_words_as_written(extractor: EntityExtractor) -> None:
    text = "The iPhone app crashes when I attach a file from Google Drive."
    entities = extractor.extract(text)
    assert [(e.type, e.value, text[e.start : e.end]) for e in entities] == [
        (EntityType.PLATFORM, "iOS", "iPhone"),
        (EntityType.INTEGRATION, "Google Drive", "Google Drive"),
    ]
    assert all(isinstance(e, Entity) for e in entities)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Crashes on Android 15 and on iOS 19.1", {("platform", "Android"), ("platform", "iOS")}),
        ("Uploads from the desktop web app work fine.", {("platform", "web")}),
        ("Same in Firefox and Safari.", {("platform", "Firefox"), ("platform", "Safari")}),
        ("It fails on my MacBook with Chrome", {("platform", "macOS"), ("platform", "Chrome")}),
        ("we hit an edge case", set()),  # "Edge" the browser only with its capital
        ("clean windows and a browser", set()),  # generic words are not platforms
    ],
)
def test_platforms(extractor: EntityExtractor, text: str, expected: set[tuple[str, str]]) -> None:
    assert {p for p in _pairs(extractor, text) if p[0] == "platform"} == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We upgraded from Team to Business yesterday.", {"Team", "Business"}),
        ("We're on the Enterprise plan.", {"Enterprise"}),
        ("Is SSO included in the Business tier?", {"Business"}),
        ("Team members can't log in. Our business is blocked.", set()),
        ("The whole team is free on Friday.", set()),
        ("Does the Team or Business plan include it?", {"Team", "Business"}),
    ],
)
def test_plans_need_plan_context(extractor: EntityExtractor, text: str, expected: set[str]) -> None:
    assert {v for t, v in _pairs(extractor, text) if t == "plan"} == expected


def test_plans_are_configured_not_built_in() -> None:
    assert _pairs(EntityExtractor(), "We're on the Business plan.") == set()
    custom = EntityExtractor(EntityConfig(plans=("Pro Plus",)))
    assert _pairs(custom, "after we switched to Pro Plus it broke") == {("plan", "Pro Plus")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Exporting gives me a 504 Gateway Timeout after a minute.", {("http_status", "504")}),
        ("The API returns 429 when we sync.", {("http_status", "429")}),
        ("we get HTTP 500 errors", {("http_status", "500")}),
        ("Got a 404 page on the invoice link", {("http_status", "404"), ("feature", "invoices")}),
        ("Browser says ERR_TOO_MANY_REDIRECTS", {("error_code", "ERR_TOO_MANY_REDIRECTS")}),
        ("Import fails with error E1042 every time", {("error_code", "E1042")}),
        ("crash code 0x80070005", {("error_code", "0x80070005")}),
        ("I'm in room 450, somebody withdrew $300 and transferred 500 from my account.", set()),
        ("My PIN is 7402 and the ride ID is 972.", set()),
        ("our endpoint answers in 200ms; we have 404 tasks", set()),
        ("a prefix like INV-2026 on invoices", {("feature", "invoices")}),
        ("see ticket TB-1840", set()),
    ],
)
def test_codes_and_statuses_need_context(extractor: EntityExtractor, text: str, expected: set) -> None:
    assert _pairs(extractor, text) == expected


def test_integrations_and_case_rules(extractor: EntityExtractor) -> None:
    text = "We use Okta, post to Slack via Zapier and sync Outlook; my outlook on this is poor."
    assert {v for t, v in _pairs(extractor, text) if t == "integration"} == {"Okta", "Slack", "Zapier", "Outlook"}
    outlook = [e for e in extractor.extract(text) if e.value == "Outlook"]
    assert len(outlook) == 1  # the lower-case "outlook" is the English word


def test_gazetteer_longest_match_plurals_and_any_case(extractor: EntityExtractor) -> None:
    text = "How do I set up Recurring Invoices? Normal invoices work. SAML login loops."
    assert extractor.distinct(text) == {
        (EntityType.FEATURE, "recurring invoices"),
        (EntityType.FEATURE, "invoices"),
        (EntityType.FEATURE, "single sign-on"),
    }
    first = extractor.extract(text)[0]
    assert text[first.start : first.end] == "Recurring Invoices"


def test_types_overlap_on_the_same_words() -> None:
    extractor = EntityExtractor(
        EntityConfig(gazetteer=Gazetteer.from_terms({"mobile app": ["iPhone app", "Android app"]}))
    )
    text = "How do I use the Android app offline? The iPhone app too."
    assert [(e.type, e.value, text[e.start : e.end]) for e in extractor.extract(text)] == [
        (EntityType.PLATFORM, "Android", "Android"),
        (EntityType.FEATURE, "mobile app", "Android app"),
        (EntityType.PLATFORM, "iOS", "iPhone"),
        (EntityType.FEATURE, "mobile app", "iPhone app"),
    ]


def test_gazetteer_from_plain_terms_and_fingerprint_changes_with_terms() -> None:
    a = Gazetteer.from_terms(["time tracking", "project templates"])
    b = Gazetteer.from_terms({"time tracking": ["timer"], "project templates": []})
    assert a.terms["time tracking"] == ("time tracking",)
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == Gazetteer.from_terms(["project templates", "time tracking"]).fingerprint()
    assert (
        EntityExtractor(EntityConfig(gazetteer=a)).fingerprint != EntityExtractor(EntityConfig(gazetteer=b)).fingerprint
    )
    assert _pairs(EntityExtractor(EntityConfig(gazetteer=b)), "the timer stops") == {("feature", "time tracking")}


def test_empty_and_oversized_input(extractor: EntityExtractor) -> None:
    assert extractor.extract("") == []
    text = "x " * MAX_TEXT_CHARS + "Slack"
    assert extractor.extract(text) == []  # beyond the scanned prefix


def _seconds(extractor: EntityExtractor, text: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        extractor.extract(text)
        best = min(best, time.perf_counter() - start)
    return best


LINEAR_BOUND = 4.0  # 8x the input may take at most 8 x 4 = 32x the time: quadratic would be 64x


@pytest.mark.parametrize(
    "unit",
    [
        "Slack Slack Slack recurring recurring recurring ",  # many partial trie walks
        "error E1 error E12 code 5004 HTTP ",  # many code candidates with context
        "Team to Team to Team from ",  # plan chains
        "504 " * 3 + "a_b_c_d_e ",
    ],
)
def test_running_time_is_linear(extractor: EntityExtractor, unit: str) -> None:
    small, large = unit * 500, unit * 4000
    ratio = _seconds(extractor, large) / max(_seconds(extractor, small), 1e-6)
    assert ratio < 8 * LINEAR_BOUND, (unit, ratio)
