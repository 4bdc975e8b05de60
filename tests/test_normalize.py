"""Normalization: HTML, whitespace, quoted replies and signatures."""

from threadline.text.normalize import normalize_message


def test_html_becomes_text_with_block_breaks():
    assert normalize_message("<p>Hello&nbsp;there,</p><p>Export <b>fails</b>.<br>Help</p>") == (
        "Hello there,\n\nExport fails.\n\nHelp"
    )


def test_html_blockquote_and_scripts_are_dropped():
    html = "<div>New issue here</div><blockquote>old thread</blockquote><script>alert(1)</script>"
    assert normalize_message(html) == "New issue here"


def test_quoted_reply_after_reply_header_is_removed():
    text = "Still broken.\n\nOn Mon, 3 Nov 2026 at 10:02, Support <help@example.com> wrote:\n> Did that work?"
    assert normalize_message(text) == "Still broken."


def test_outlook_original_message_is_removed():
    text = "Any news?\n\n-----Original Message-----\nFrom: Support\nSent: Monday\nold text"
    assert normalize_message(text) == "Any news?"


def test_signatures_are_removed():
    assert (
        normalize_message("It crashes on upload.\n\nBest regards,\nJane Doe\nHead of Ops | Acme")
        == "It crashes on upload."
    )
    assert normalize_message("It crashes.\n-- \nJane\nAcme Inc") == "It crashes."
    assert normalize_message("Crash again\n\nSent from my iPhone") == "Crash again"


def test_whitespace_is_collapsed_but_paragraphs_kept():
    assert normalize_message("  a   b \r\n\r\n\r\n\r\nc\t\td ") == "a b\n\nc d"


def test_text_that_is_only_a_quote_is_kept_rather_than_emptied():
    assert normalize_message("> quoted only") == "> quoted only"


def test_plain_text_with_angle_brackets_is_not_treated_as_html():
    assert normalize_message("if a < b and c > d then fail") == "if a < b and c > d then fail"
