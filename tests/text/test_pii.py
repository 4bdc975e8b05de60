"""Tests for pii.py: planted corpus recall, the issue's examples, non-PII text left alone,
span masking at quote boundaries, chunking of long inputs, and linear running time."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from threadline.text import pii
from threadline.text.pii import PiiKind, PiiSpan, detect_pii, mask, mask_span, source_span_of_shown

HERE = Path(__file__).resolve().parent / "data"


def _planted() -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    for name in ("pii_corpus.jsonl", "pii_holdout.jsonl"):
        path = HERE / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                rows.extend((record["text"], item) for item in record["items"])
    return rows


PLANTED = _planted()
MIN_PLANTED_ITEMS = 60  # the issue's floor for the corpus: varied formats of every kind
MIN_RECALL = 0.98  # the issue's target recall over planted items (addresses reported apart)


def test_corpus_is_present_and_large_enough() -> None:
    """The parametrised test below would silently collect nothing if the data files went missing."""
    kinds = {item["kind"] for _, item in PLANTED}
    assert len(PLANTED) >= MIN_PLANTED_ITEMS
    assert {"email", "phone", "card", "iban", "pin", "code", "password", "api_key", "address"} <= kinds


def test_recall_over_the_corpus_meets_the_target() -> None:
    scored = [(text, item) for text, item in PLANTED if item["kind"] != "address"]
    found = sum(
        any(s.start <= i["start"] and s.end >= i["end"] and s.kind == i["kind"] for s in detect_pii(t))
        for t, i in scored
    )
    assert found / len(scored) >= MIN_RECALL


# Known misses, kept visible instead of deleted from the corpus (see REPORT.md).
KNOWN_MISSES = {"Password123"}  # "I reset it to Password123": no password cue word


@pytest.mark.parametrize(("text", "item"), PLANTED, ids=[f"{i['kind']}:{i['value'][:24]}" for _, i in PLANTED])
def test_planted_item_is_detected(text: str, item: dict[str, Any]) -> None:
    if item["value"] in KNOWN_MISSES:
        pytest.xfail("known miss without a cue word")
    spans = detect_pii(text)
    assert any(s.start <= item["start"] and s.end >= item["end"] and s.kind == item["kind"] for s in spans), spans
    assert item["value"] not in mask(text)


# --- examples from the issue -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my pin is either 1596 or 9431", "my pin is either [pin] or [pin]"),
        ("I got code 482913 just now", "I got code [code] just now"),
        ("password: hunter2", "password: [password]"),
        ("my password is S3cret!", "my password is [password]"),
        ("mail jane.doe@example.com today", "mail [email] today"),
        ("call (212) 736-5000 or +44 20 7946 0958", "call [phone] or [phone]"),
        ("card 4111 1111 1111 1111 was charged", "card [card] was charged"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [iban] please"),
        ("key sk-proj-4fJ9aQ2LmX7rT1vB8nK3pW6yZ0cD5eH2 leaked", "key [api_key] leaked"),
        ("token ghp_R4nd0mT0k3nV4lu3Abcdefghij1234567890 leaked", "token [api_key] leaked"),
        ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp", "slack [api_key]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [api_key]"),
        ("ship to 742 Evergreen Terrace now", "ship to [address] now"),
    ],
)
def test_issue_examples(text: str, expected: str) -> None:
    assert mask(text) == expected


# --- text that must stay as it is --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "My PIN got blocked, what now?",
        "My password isn't accepted anymore, please help me reset it.",
        "Why doesn't my passcode work?",
        "I forgot my passcode to open the app",
        "Where do I see the verification code for a top-up?",
        "I checked twice and the account number is correct.",
        "The ATM gave me $20 when I asked for $100",
        "Someone withdrew 300£ in cash from my account.",
        "A transfer abroad in 2024 should not take a week.",
        "My card ending 1234 was declined.",
        "Order #10482 shipped on 18/07/2026 at 17:50:08, total $1,299.99.",
        "We are on version 4.13.2 and the webhook task.updated fires twice.",
        "The API returns error code 504 after ~30s.",
        "Workspace 123e4567-e89b-12d3-a456-426614174000 is slow.",
        "We moved house from a village near Leeds to a town called Stoke-On-Trent.",
        "I waited 20 minutes down the road for the courier.",
        "Our ProjectAlpha2025Q3Roadmap board is empty.",
        "I tried to pin task 4821 but it jumps back.",
        "Please pin the comment 5521 to the top.",
    ],
)
def test_non_pii_is_unchanged(text: str) -> None:
    assert mask(text) == text, detect_pii(text)


# --- spans and masking -------------------------------------------------------------------------


def test_spans_are_sorted_and_disjoint_with_kinds() -> None:
    text = "Mail a@b.io or call +1 650-253-0000; pin 1234."
    spans = detect_pii(text)
    assert [s.kind for s in spans] == [PiiKind.EMAIL, PiiKind.PHONE, PiiKind.PIN]
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))
    assert [text[s.start : s.end] for s in spans] == ["a@b.io", "+1 650-253-0000", "1234"]


def test_mask_span_masks_entity_cut_by_the_boundary() -> None:
    text = "Call me on +44 20 7946 0958 today. Thanks!"
    cut = text.index("7946")
    assert mask_span(text, 0, cut) == "Call me on [phone]"
    assert mask_span(text, cut, len(text)) == "[phone] today. Thanks!"
    # the same substring on its own would not be recognised as a phone number
    assert mask(text[cut:]) != "[phone] today. Thanks!"


def test_mask_span_keeps_text_outside_entities_verbatim() -> None:
    text = "Hi team, my email is jo@example.org and the bug is in task.updated."
    start = text.index("my")
    assert mask_span(text, start, len(text)) == "my email is [email] and the bug is in task.updated."
    assert mask_span(text, 0, 8) == "Hi team,"
    assert mask_span(text, 5, 5) == ""


def test_mask_span_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError):
        mask_span("abc", 2, 1)
    with pytest.raises(ValueError):
        mask_span("abc", 0, 4)


def test_repeated_secret_is_masked_everywhere() -> None:
    text = "Maybe my PIN is 4821 or 7730? Please try 4821 first."
    assert mask(text) == "Maybe my PIN is [pin] or [pin]? Please try [pin] first."


def test_pin_named_in_the_next_sentence() -> None:
    assert mask("Now I recall the PIN. It could be 6612 or 2087.") == (
        "Now I recall the PIN. It could be [pin] or [pin]."
    )


def test_long_text_is_chunked_without_losing_entities() -> None:
    filler = "The sync is slow again today. "
    pieces = []
    emails = []
    for i in range(100):
        email = f"user{i}@example{i}.com"
        emails.append(email)
        pieces.append(filler * 9 + email + " ")
    text = "".join(pieces)
    assert len(text) > 3 * pii.CHUNK_CHARS
    masked = mask(text)
    assert not any(email in masked for email in emails)
    assert masked.count("[email]") == len(emails)


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_span_invariants(text: str) -> None:
    spans = detect_pii(text)
    previous = 0
    for span in spans:
        assert isinstance(span, PiiSpan)
        assert previous <= span.start < span.end <= len(text)
        previous = span.end
    assert mask_span(text, 0, len(text)) == mask(text)


# --- linear running time -----------------------------------------------------------------------

# Adversarial pieces: near-misses for every detector (digits with separators, '@' and dots,
# cue words without values, long token runs, parentheses, '+' and '00' prefixes).
_PIECES = st.sampled_from(
    [
        "1",
        "0",
        "9",
        " ",
        "-",
        ".",
        "/",
        "(",
        ")",
        "+",
        "@",
        "a",
        "Z",
        "_",
        "=",
        ":",
        "\n",
        "00",
        "+1 ",
        "(0)",
        "pin ",
        "code ",
        "password ",
        "password: ",
        "token ",
        "account ",
        "sk-",
        "AKIA",
        "eyJ",
        "DE89 ",
        "1234 5678 ",
        "a.b@",
        "x@y.",
        "12 Oak ",
        "Street",
        "rue ",
        "Hauptstraße ",
        "call ",
        "Ab1/",
        "é",
    ]
)
# Generous bound (4x linear, half of quadratic's 64x): see test_sentences.py for the reasons.
_LINEAR_BOUND = 32.0
_BASE_CHARS = 2_000  # characters: digit-dense text costs ~50 us/char, so 16 KB stays quick
_MIN_SECONDS = 5e-4  # timer floor


def _best_seconds(text: str, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        pii.clear_detection_cache()
        start = time.perf_counter()
        detect_pii(text)
        best = min(best, time.perf_counter() - start)
    return best


def _time_ratio(unit: str) -> float:
    """time(8n) / time(n), each the best of three runs, small and large interleaved so that
    load from other processes affects both alike."""
    base = unit * (_BASE_CHARS // len(unit) + 1)
    large = base * 8
    small_best = large_best = float("inf")
    for _ in range(3):
        small_best = min(small_best, _best_seconds(base, repeats=1))
        large_best = min(large_best, _best_seconds(large, repeats=1))
    return large_best / max(small_best, _MIN_SECONDS)


@given(st.lists(_PIECES, min_size=1, max_size=10).map("".join))
@settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@example("1 ")
@example("1234 5678 ")
@example("a.b@")
@example("my pin is ")
@example("Ab1/")
@example("+1 (")
@example("?")
@example("x")
def test_running_time_is_linear(unit: str) -> None:
    ratio = _time_ratio(unit)
    if ratio >= _LINEAR_BOUND:
        ratio = min(ratio, _time_ratio(unit))
    assert ratio < _LINEAR_BOUND, (unit, ratio)


def test_a_fragment_of_the_shown_text_maps_to_its_verbatim_source():
    text = "Write to  jane.doe@example.com\nor call me."
    start, end = source_span_of_shown(text, "to [email] or call") or (0, 0)
    assert text[start:end] == "to  jane.doe@example.com\nor call"
    assert source_span_of_shown(text, "to jane.doe@example.com") is None  # not what was shown
    unmasked = source_span_of_shown(text, "to jane.doe@example.com or", masked=False)
    assert unmasked is not None and text[unmasked[0] : unmasked[1]] == "to  jane.doe@example.com\nor"
    assert source_span_of_shown(text, "   ") is None


@pytest.mark.parametrize(
    "text",
    [
        "call me on ０１７６ ２３４５６７８９ please",  # fullwidth digits
        "call me on ٠١٧٦ ٢٣٤٥٦٧٨٩ please",  # Arabic-Indic digits
        "call +49 176 23456789 now",
    ],
)
def test_phones_in_any_decimal_digits_are_found_past_the_digit_prefilter(text):
    """Texts without a digit skip libphonenumber; a digit of any script still reaches it."""
    assert [span.kind for span in detect_pii(text)] == [PiiKind.PHONE]
    assert list(detect_pii("Exports fail every night since the update, the whole team is blocked")) == []
