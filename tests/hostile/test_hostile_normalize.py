"""Normalization runs in time linear in its input, on the review's cases and on generated adversarial text.

Timing is always relative: an input n and one 8n long (or a plain message of the same length),
each the best of several rounds, must differ by a factor a linear algorithm meets with room to
spare (8x expected, 24x allowed; quadratic is 64x). A SIGALRM guard only stops a runaway so the
test fails instead of hanging; it is not the assertion.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threadline.text.normalize import (
    clean_whitespace,
    looks_like_html,
    normalize_message,
    strip_quoted_reply,
    strip_signature,
)

GROWTH = 8  # the big input is this many times the small one
LINEAR_BOUND = 24  # allowed time ratio for GROWTH x the input (linear: ~8, quadratic: ~64)
SAME_SIZE_BOUND = 20  # allowed ratio against a plain message of the same length
ROUND_S = 0.02  # each timing round repeats the call until it lasts this long (timer noise)

DISCLAIMER = (
    "CONFIDENTIALITY NOTICE: This e-mail message, including any attachments, is for the sole use of the "
    "intended recipient(s) and may contain confidential and privileged information. Any unauthorized review, "
    "use, disclosure or distribution is prohibited. If you are not the intended recipient, please contact the "
    "sender by reply e-mail and destroy all copies of the original message. "
) * 60


class Runaway(Exception):
    pass


@contextmanager
def runaway_guard(seconds: float) -> Iterator[None]:
    def stop(signum, frame):
        raise Runaway(f"still running after {seconds:.1f} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def per_call(fn: Callable[[str], object], arg: str, rounds: int = 5) -> float:
    """Best per-call time over `rounds` rounds of at least ROUND_S each."""
    reps, best = 1, float("inf")
    for _ in range(rounds):
        while True:
            start = time.perf_counter()
            for _ in range(reps):
                fn(arg)
            elapsed = time.perf_counter() - start
            if elapsed >= ROUND_S or reps >= 1 << 16:
                break
            reps *= 4
        best = min(best, elapsed / reps)
    return best


def assert_faster_than(fn, slow_arg: str, ratio_to: float, base_time: float, what: str) -> float:
    guard = max(10.0, 50 * ratio_to * base_time)
    try:
        with runaway_guard(guard):
            took = per_call(fn, slow_arg, rounds=3)
    except Runaway as exc:
        pytest.fail(f"{what}: {exc} (the smaller input took {base_time * 1e3:.2f} ms)")
    assert took / base_time < ratio_to, f"{what}: {took * 1e3:.2f} ms vs {base_time * 1e3:.2f} ms"
    return took


def assert_linear(fn: Callable[[str], object], make: Callable[[int], str], n: int, what: str = "") -> None:
    small = per_call(fn, make(n))
    assert_faster_than(fn, make(GROWTH * n), LINEAR_BOUND, small, what or f"{fn.__name__} n={n}")


def assert_like_plain_text(message: str) -> None:
    plain = ("word " * (len(message) // 5 + 1))[: len(message)]
    base = per_call(normalize_message, plain)
    assert_faster_than(normalize_message, message, SAME_SIZE_BOUND, base, "compared with plain text")


# --- The review's cases -------------------------------------------------------------------------


def test_sign_off_followed_by_a_472_character_disclaimer():
    """Took 3.2 s: the sign-off pattern backtracked catastrophically over the disclaimer."""
    message = "Hi, the CSV export fails again.\n\nThanks,\n" + DISCLAIMER[:472]
    assert_like_plain_text(message)
    assert normalize_message(message).startswith("Hi, the CSV export fails again.")


def test_a_20_kb_thread_of_sign_offs_and_disclaimers():
    """A 20 KB message with a sign-off and disclaimer per reply ran for minutes."""
    block = "Thanks,\n" + DISCLAIMER[:472] + "\n"
    message = "Hi, the CSV export fails again.\n\n" + block * (20_000 // len(block))
    assert_like_plain_text(message)


def test_sign_off_tail_grows_linearly():
    assert_linear(normalize_message, lambda n: "Hi, it fails.\n\nThanks,\n" + DISCLAIMER[:n] + "\n\nx", 20)


def test_thousands_of_block_tags_grow_linearly():
    """6,000 <p> tags took 5.4 s: inserting a newline next to each tag is quadratic."""
    assert_linear(normalize_message, lambda n: "<p>x</p>" * n, 1500, "<p> tags")
    assert_linear(normalize_message, lambda n: "<div><br>" * n + "tail", 1500, "nested blocks")
    assert normalize_message("<p>a</p>" * 6000).count("a") == 6000


@pytest.mark.parametrize(
    ("fn", "make", "n"),
    [
        (strip_quoted_reply, lambda n: "x\n" + "\n" * n + "Onx", 3000),
        (strip_quoted_reply, lambda n: "x\n" + " \n" * n + "From: y", 3000),
        (strip_signature, lambda n: "x\n" + "\n " * n + "Sent from", 3000),
        (looks_like_html, lambda n: "<p " * n, 3000),
    ],
)
def test_every_pattern_is_linear_on_raw_input(fn, make, n):
    """The helpers are public: they stay linear even on text that was not cleaned first."""
    assert_linear(fn, make, n)


# --- Generated adversarial text -----------------------------------------------------------------

SIGN_OFFS = ["Thanks", "thank you", "Best regards", "regards", "Cheers", "Sincerely", "many thanks", "best"]
TOKENS = [
    "\n",
    "\n\n",
    " ",
    "\t",
    "\u00a0",
    "x",
    "word ",
    "Thanks,\n",
    "Best regards\n",
    "On ",
    " wrote:",
    "wrote:\n",
    "> ",
    "-- ",
    "--\n",
    "__",
    "\u2014",
    "-----Original Message-----",
    "From: a\n",
    "Sent: b\n",
    "Sent from my iPhone",
    "<p>",
    "</p>",
    "<br>",
    "<div ",
    "<blockquote>",
    "<",
    ">",
    "&nbsp;",
    "&amp;",
    "\r\n",
    "\x00",
]

fills = st.text(st.sampled_from("abc XYZ.,;:-_'\"!?"), min_size=1, max_size=12)


@st.composite
def adversarial(draw) -> tuple[Callable[[int], str], int]:
    """A family of inputs (size n -> text) built to stress one pattern, and its small size."""
    shape = draw(st.sampled_from(["sign-off", "tags", "soup", "soup-lines"]))
    if shape == "sign-off":
        word, punct, fill = draw(st.sampled_from(SIGN_OFFS)), draw(st.sampled_from(["", ",", ".", "!"])), draw(fills)
        end = draw(st.sampled_from(["\n\nx", "\n\n\n", "x" * 400, "\n" + "y" * 90]))
        return (lambda n: "Body text.\n\n" + word + punct + "\n" + (fill * n)[:n] + end), 20
    if shape == "tags":
        tag = draw(st.sampled_from(["<p>", "<div>", "<li>", "<br>", "<blockquote>", "<b>", "<p "]))
        inner = draw(st.sampled_from(["", "x", "\n", "&nbsp;"]))
        return (lambda n: (tag + inner) * n), 300
    unit = "".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6)))
    if shape == "soup-lines":
        unit += "\n"
    prefix = draw(st.sampled_from(["", "Hello.\n", "On Mon, Support <a@b.c> ", "Thanks,\n"]))
    return (lambda n: prefix + unit * max(1, n // len(unit))), 400


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=adversarial(), fn=st.sampled_from([normalize_message, strip_quoted_reply, strip_signature]))
def test_adversarial_text_is_normalized_in_linear_time(case, fn):
    make, n = case
    assert_linear(fn, make, n)
    for raw in (make(n), make(GROWTH * n)):
        out = normalize_message(raw)
        assert isinstance(out, str) and out == out.strip()
        assert "\n\n\n" not in out and "\x00" not in out and "\r" not in out
        assert len(out) <= len(raw)


# --- Behaviour kept ---------------------------------------------------------------------------

OLD_SIGN_OFF = re.compile(
    r"\n\s*(best regards|kind regards|regards|best|thanks|thank you|cheers|sincerely|many thanks)[,.!]?\s*\n"
    r"(?P<tail>(?:[^\n]{1,80}\n?){1,4})\s*$",
    re.I,
)

lines = st.one_of(
    st.sampled_from(
        ["Thanks,", "thank you!", "Best regards", "Kind regards.", "best", "Cheers", "", "Sent from my iPhone"]
    ),
    st.text(st.sampled_from("abcde XYZ|@.-"), min_size=1, max_size=30),
    st.text(st.sampled_from("ab "), min_size=70, max_size=90),
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(lines, min_size=1, max_size=7))
def test_sign_off_removal_matches_the_previous_pattern_on_cleaned_text(parts):
    """The linear rewrite cuts exactly where the old pattern did (on short inputs it finishes on)."""
    text = clean_whitespace("\n".join(parts))
    if not text:
        return
    old = text
    delimiter = re.compile(r"^(--|__+|—)\s*$", re.M).search(old)
    if delimiter and delimiter.start() > 0:
        old = old[: delimiter.start()]
    old = re.compile(r"^\s*Sent from my (iPhone|iPad|Android|mobile device|Galaxy).*$", re.I | re.M).sub("", old)
    match = OLD_SIGN_OFF.search(old + "\n")
    expected = old[: match.start()] if match and match.start() > 0 else old
    assert clean_whitespace(strip_signature(text)) == clean_whitespace(expected)
