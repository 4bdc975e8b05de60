"""Pure insight modules: evidence selection, titles, offline text and explained priority."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from threadline.stories.evidence import Sentence, candidate_sentences, is_small_talk, select_evidence
from threadline.stories.priority import SIGNALS, RunFacts, ThemeFacts, prioritise, severity_signals
from threadline.stories.text import problem_text
from threadline.stories.titles import story_title, title_from_sentence
from threadline.text.caseless import has_uppercase_literal


@pytest.mark.parametrize(
    "text",
    [
        "Hi there, hope you are well!",
        "Thanks so much for the quick help.",
        "Big fan of the latest update, the board is so much faster now.",
        "Love the app, it's made our invoicing so much easier.",
        "Kind regards and have a great weekend",
        "Any help appreciated.",
    ],
)
def test_greetings_thanks_and_praise_are_small_talk(text: str) -> None:
    assert is_small_talk(text)


@pytest.mark.parametrize(
    "text",
    [
        "Thanks, but the CSV export still fails with a timeout.",
        "Hi, my card payment was declined twice today.",
        "Please change our billing email to finance@example.com soon.",
    ],
)
def test_problem_sentences_are_not_small_talk(text: str) -> None:
    assert not is_small_talk(text)


def test_candidate_sentences_are_whole_and_never_cut_inside_a_token() -> None:
    body = (
        "Hello,\nWebhook deliveries for task.updated are arriving 2-3 hours late since v4.13.2 shipped.\n"
        "Contact finance@solsticeenergy.com or see https://status.example.com/incidents?id=42 for details.\n"
        "The fee was 2.5 percent, e.g. on the March invoice.\nThanks!"
    )
    sentences = candidate_sentences(7, [(70, body)])
    texts = [s.text for s in sentences]
    assert "Webhook deliveries for task.updated are arriving 2-3 hours late since v4.13.2 shipped." in texts
    assert "Contact finance@solsticeenergy.com or see https://status.example.com/incidents?id=42 for details." in texts
    assert "The fee was 2.5 percent, e.g. on the March invoice." in texts
    for s in sentences:
        assert body[s.start : s.end] == s.text
        assert s.start == 0 or not body[s.start - 1].isalnum()
        assert s.end == len(body) or not body[s.end].isalnum()
    assert not any("Hello" in t or "Thanks" in t for t in texts)


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_only_on_topic_quotes_from_distinct_conversations_are_chosen() -> None:
    centroids = np.stack([_unit([1, 0, 0]), _unit([0, 1, 0])])
    sentences = [
        Sentence(1, 10, 0, 30, "The CSV export times out on big projects", True),
        Sentence(1, 10, 31, 60, "The CSV export fails again after a minute", True),  # same conversation
        Sentence(2, 20, 0, 30, "Please change our billing email address", True),  # closer to theme 1
        Sentence(3, 30, 0, 30, "Exporting to CSV gives a gateway timeout", True),
    ]
    vectors = np.stack([_unit([1, 0.1, 0]), _unit([1, 0.2, 0]), _unit([0.3, 1, 0]), _unit([1, 0, 0.6])])
    selection = select_evidence(sentences, vectors, centroids, 0, contacts={1: 5, 2: 6, 3: 7})
    assert [q.conversation_id for q in selection.quotes] == [1, 3]
    assert selection.quotes[0].text == "The CSV export times out on big projects"
    assert selection.thin  # two quotes is fewer than the minimum, and it says so
    assert selection.notes


def test_identical_template_sentences_still_give_a_story_and_say_so() -> None:
    centroids = np.stack([_unit([1, 0]), _unit([0, 1])])
    template = "I was charged twice for my subscription this month"
    sentences = [Sentence(c, c * 10, 0, len(template), template, True) for c in range(1, 49)]
    vectors = np.stack([_unit([1, 0.1])] * len(sentences))
    selection = select_evidence(sentences, vectors, centroids, 0)
    assert len(selection.quotes) == 1
    assert selection.repetitive and selection.thin
    assert any("say the same" in note for note in selection.notes)


@pytest.mark.parametrize(
    ("sentence", "title"),
    [
        ("My new card still hasn't arrived", "New card still hasn't arrived"),
        ("I can't log in with SSO, it keeps looping", "Customers can't log in with SSO"),
        ("How do I set up recurring invoices?", "How to set up recurring invoices"),
        ("Hi, the CSV export keeps failing with 'Request timed out'.", "CSV export keeps failing"),
    ],
)
def test_titles_state_the_problem_without_first_person(sentence: str, title: str) -> None:
    assert title_from_sentence(sentence) == title


def test_title_falls_back_to_the_name_and_skips_masked_sentences() -> None:
    assert story_title(["Call me on [phone] about the invoice", "ok"], "Invoice VAT is wrong") == "Invoice VAT is wrong"
    assert not story_title(["x"], "CSV export timeout").startswith(("Fix:", "Add:"))


def test_severity_follows_harm_not_volume() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunFacts(conversations=100, period=(start, start + timedelta(days=40)))
    feature = ThemeFacts(
        conversations=40,
        customer_ids=[f"c{i}" for i in range(40)],
        companies=[None] * 40,
        plans=[None] * 40,
        types=["feature_request"] * 40,
        signals={},
    )
    lockout = ThemeFacts(
        conversations=8,
        customer_ids=["a"] * 8,
        companies=["Acme"] * 8,
        plans=["Team"] * 8,
        types=["account_access"] * 8,
        signals={"cannot log in": 6},
    )
    assert prioritise(feature, run).severity in ("low", "medium")
    high = prioritise(lockout, run)
    assert high.severity == "high" and "cannot log in" in high.severity_reason
    names = [f.name for f in high.factors]
    assert {"reach", "companies", "recency", "trend", "signals", "type"} <= set(names)
    assert "value" not in names  # no plan weights or value attribute configured


def test_unknown_customers_are_not_counted_as_customers_and_value_is_configurable() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    facts = ThemeFacts(
        conversations=4,
        customer_ids=[None, None, "a", "b"],
        companies=[None, None, "Acme", "Beta"],
        plans=[None, None, "Enterprise", "Enterprise"],
        values={"a": 100.0, "b": 300.0},
    )
    run = RunFacts(
        conversations=10,
        period=(start, start + timedelta(days=10)),
        plan_weights={"Enterprise": 3.0, "Free": 1.0},
        mean_plan_weight=1.5,
        value_attribute="seats",
        mean_value=100.0,
    )
    result = prioritise(facts, run)
    assert result.customers_known == 2 and result.customers_unknown_conversations == 2
    value = next(f for f in result.factors if f.name == "value")
    assert value.multiplier == 2.0  # clipped: plan 2x and seats 2x the run's mean
    assert "seats" in value.reason


def test_severity_signals_are_named() -> None:
    assert "charged twice" in severity_signals("I got charged twice for the upgrade")
    assert "locked out" in severity_signals("Our whole team is locked out since this morning")
    assert not severity_signals("Could you add a dark mode?")


def test_severity_signals_ignore_case_on_ascii_and_other_text() -> None:
    """ASCII text is searched lowercased (a faster path); it must find what a case-insensitive search finds."""
    for pattern, _ in SIGNALS.values():
        assert not has_uppercase_literal(pattern), pattern.pattern[:60]
    texts = [
        "I was CHARGED TWICE and my Card Was Blocked",
        "OUTAGE: nothing loads, 502 Bad Gateway",
        "We LOST all our Files after the update, URGENT",
        "Crashed \u00e9 again: FRAUD on my account",  # not ASCII: the original patterns
        "Someone HACKED it \u017ftill",
    ]
    for text in texts:
        expected = {name for name, (pattern, _) in SIGNALS.items() if pattern.search(text)}
        assert expected and severity_signals(text) == expected, text
    assert severity_signals("I WAS CHARGED TWICE") == {"charged twice"}


def test_offline_problem_text_says_only_what_is_known() -> None:
    text = problem_text(
        name="CSV export timeout",
        keywords=["csv export", "timeout"],
        typical_quote="The CSV export times out on big projects",
        conversations=34,
        customers_known=0,
        customers_unknown_conversations=34,
        companies={},
        plans={},
        first_seen=datetime(2026, 7, 18, tzinfo=UTC),
        last_seen=datetime(2026, 11, 14, tzinfo=UTC),
        trend={"counts": [1, 2, 8, 9], "direction": "rising", "bucket_days": 30},
    )
    assert "customer unknown" in text and "34 conversations" in text
    assert "3 conversations in the first 2 and 17 in the last 2" in text
    assert "As a customer" not in text and "Companies" not in text


def test_a_subordinate_clause_is_not_a_title() -> None:
    assert title_from_sentence("Since connecting the calendar integration, events are duplicated") is None


def test_offline_story_text_has_a_problem_title_and_no_boilerplate() -> None:
    from threadline.stories.template import StoryFacts, story_text

    facts = StoryFacts(
        theme_name="CSV export timeouts",
        keywords=["csv export", "timeout"],
        conversations=12,
        customers_known=0,
        customers_unknown_conversations=12,
        first_seen=datetime(2026, 9, 1, tzinfo=UTC),
        last_seen=datetime(2026, 9, 30, tzinfo=UTC),
        trend={"counts": [2, 10], "direction": "rising", "bucket_days": 14},
        quotes=["My CSV export times out on large projects"],
        title_quotes=["My CSV export times out on large projects"],
    )
    written = story_text(facts)
    assert written.title == "CSV export times out on large projects"
    assert written.user_story is None and written.acceptance_criteria == []
    assert "customer unknown" in written.problem and "12 conversations" in written.problem
    # A person's name for the theme is the story's title: their words win over extraction.
    named = story_text(StoryFacts(**{**facts.__dict__, "theme_name": "Exports time out", "named_by_person": True}))
    assert named.title == "Exports time out"


@pytest.mark.parametrize(
    "sentence",
    [
        "Name is Angela.",
        "My name is Alexis and I need a flight.",
        "I'm Tom from Acme, the export fails.",
        "This is Dana.",
    ],
)
def test_a_self_introduction_is_not_a_title(sentence):
    assert title_from_sentence(sentence) is None
    assert story_title([sentence, "The CSV export times out on large projects."], "CSV export") == (
        "CSV export times out on large projects"
    )


def test_an_abbreviation_does_not_end_the_title():
    assert title_from_sentence("I need to make an appointment with Dr. Patel next week.") == (
        "Customers need to make an appointment with Dr. Patel next week"
    )
    assert (
        title_from_sentence("I'm unable to log in since the update.")
        == "Customers are unable to log in since the update"
    )
