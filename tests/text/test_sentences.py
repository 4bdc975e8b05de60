"""Tests for sentences.py: tricky cases, properties of spans, linear running time, truncation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from threadline.text.sentences import ELLIPSIS, sentence_spans, sentences, truncate_words

HERE = Path(__file__).resolve().parent / "data"
CASE_FILES = ("sentence_cases.json", "sentence_holdout.json")


def _load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for name in CASE_FILES:
        path = HERE / name
        if path.exists():
            cases.extend(json.loads(path.read_text(encoding="utf-8")))
    return cases


CASES = _load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case_file(case: dict[str, Any]) -> None:
    assert sentence_spans(case["text"]) == [tuple(span) for span in case["spans"]]


# --- the cases named in the issue, spelled out ------------------------------------------------


def test_dotted_name_is_not_split() -> None:
    assert sentences("The webhook task.updated fires twice. Please check.") == [
        "The webhook task.updated fires twice.",
        "Please check.",
    ]


def test_email_is_not_split() -> None:
    text = "Please change our billing email to finance@solsticeenergy.com. Thanks!"
    assert sentences(text) == ["Please change our billing email to finance@solsticeenergy.com.", "Thanks!"]


def test_url_is_not_split() -> None:
    text = (
        "See https://help.tallyboard.io/recurring-invoices. It didn't help. Also app.tallyboard.io/w/8665?tab=1 fails."
    )
    assert sentences(text) == [
        "See https://help.tallyboard.io/recurring-invoices.",
        "It didn't help.",
        "Also app.tallyboard.io/w/8665?tab=1 fails.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It takes 2.5 seconds. Fine.", ["It takes 2.5 seconds.", "Fine."]),
        ("We pay $1,299.99 per year. Too much.", ["We pay $1,299.99 per year.", "Too much."]),
        ("Version 4.13.2 broke it. Sad.", ["Version 4.13.2 broke it.", "Sad."]),
    ],
)
def test_decimals_amounts_versions(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "We use tools e.g. Slack and Jira.",
        "Some fields, i.e. the custom ones, are lost.",
        "Mr. Smith asked Dr. Morgan.",
        "We export CSV, XLSX, etc. and they all fail.",
        "I waited... nothing happened.",
    ],
)
def test_abbreviations_and_ellipses_do_not_split(text: str) -> None:
    assert sentences(text) == [text]


def test_newline_always_ends_a_sentence() -> None:
    assert sentences("The export has failed since last week\nPlease fix asap") == [
        "The export has failed since last week",
        "Please fix asap",
    ]
    assert sentences("since last week\r\nplease fix asap") == ["since last week", "please fix asap"]


def test_offsets_index_the_original_text() -> None:
    text = "  Hi all,\n\n- first item. Second sentence!  \n"
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["Hi all,", "first item.", "Second sentence!"]


def test_empty_and_blank() -> None:
    assert sentence_spans("") == []
    assert sentence_spans(" \n\t \n") == []
    assert sentence_spans("--\n🙂") == []


# --- properties -------------------------------------------------------------------------------

# An alphabet that produces the hard cases often: dots between letters and digits, abbreviations,
# URLs and e-mails, quotes and brackets, several kinds of line break and space.
_PIECES = st.sampled_from(
    [
        "a",
        "B",
        "x",
        "7",
        "0",
        ".",
        "..",
        "…",
        "!",
        "?",
        "?!",
        " ",
        "  ",
        "\n",
        "\r\n",
        "\t",
        "\u00a0",
        "\u2028",
        "e.g.",
        "Mr.",
        "etc.",
        "No.",
        "U.S.",
        "task.updated",
        "finance@solsticeenergy.com",
        "https://x.io/a?b=1",
        "2.5",
        "$1,299.99",
        "4.13.2",
        '"',
        "'",
        ")",
        "(",
        "- ",
        "1. ",
        "> ",
        ":)",
        "iPhone",
        "The",
        "ok",
    ]
)
_TEXTS = st.one_of(st.lists(_PIECES, max_size=60).map("".join), st.text(max_size=200))


@given(_TEXTS)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@example("a.b. c")
@example("x\u2028y")
def test_span_properties(text: str) -> None:
    spans = sentence_spans(text)
    previous_end = 0
    for start, end in spans:
        # exact, non-empty substring with no surrounding whitespace
        assert 0 <= start < end <= len(text)
        piece = text[start:end]
        assert piece == piece.strip()
        # ordered and non-overlapping
        assert start >= previous_end
        previous_end = end
        # no boundary strictly inside a word (alphanumeric on both sides) ...
        for boundary in (start, end):
            if 0 < boundary < len(text):
                assert not (text[boundary - 1].isalnum() and text[boundary].isalnum()), (text, boundary)
        # ... nor inside any token: a boundary always has whitespace (or the text edge) beside it
        assert start == 0 or text[start - 1].isspace(), (text, start)
        assert end == len(text) or text[end].isspace(), (text, end)
        # a sentence never spans two lines
        assert "\n" not in piece and "\r" not in piece


def _best_seconds(text: str, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        sentence_spans(text)
        best = min(best, time.perf_counter() - start)
    return best


# Linear time: the time for 8n characters must stay far below the 64x a quadratic algorithm
# needs. The bound is generous (4x linear): small inputs time noisily, CPU caches change with
# size, and other processes share the machine. A ratio over the bound is measured once more
# before failing, and shrinking is off (it would re-time hundreds of inputs).
_LINEAR_BOUND = 32.0
_BASE_CHARS = 10_000  # characters: the large input (80 KB) still fits in CPU caches
_MIN_SECONDS = 2e-4  # timer floor: below this, ratios are noise


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


@given(st.lists(_PIECES, min_size=1, max_size=12).map("".join))
@settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@example("a." * 4)
@example("e.g. ")
@example("x" * 30 + ". ")
@example(". " * 3)
@example("?")
@example("!)")
@example("\n")
def test_running_time_is_linear(unit: str) -> None:
    ratio = _time_ratio(unit)
    if ratio >= _LINEAR_BOUND:
        ratio = min(ratio, _time_ratio(unit))
    assert ratio < _LINEAR_BOUND, (unit, ratio)


# --- truncate_words ---------------------------------------------------------------------------


def test_truncate_keeps_short_text() -> None:
    assert truncate_words("short enough", 50) == "short enough"


def test_truncate_cuts_at_word_boundary() -> None:
    text = "The export to finance@solsticeenergy.com fails every single time"
    out = truncate_words(text, 30)
    assert out == "The export to" + ELLIPSIS
    assert len(out) <= 30


def test_truncate_drops_dangling_punctuation() -> None:
    assert truncate_words("Hello there, friend of mine", 14) == "Hello there" + ELLIPSIS


def test_truncate_single_long_word_is_cut_hard() -> None:
    assert truncate_words("a" * 50, 10) == "a" * 9 + ELLIPSIS


def test_truncate_rejects_nonpositive() -> None:
    with pytest.raises(ValueError):
        truncate_words("text", 0)


@given(st.text(max_size=300), st.integers(min_value=1, max_value=320))
@settings(max_examples=300)
def test_truncate_properties(text: str, max_chars: int) -> None:
    out = truncate_words(text, max_chars)
    assert len(out) <= max_chars
    if len(text) <= max_chars:
        assert out == text
    else:
        assert out.endswith(ELLIPSIS)
        assert text.startswith(out[: -len(ELLIPSIS)])
