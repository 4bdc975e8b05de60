"""Passages: Markdown split at headings with their heading path and offsets into the article."""

from threadline.text.passages import split_passages

ARTICLE = """Intro before any heading.

# Billing
Billing overview.

## Invoices
How to send an invoice.

### Recurring invoices
Schedule them monthly.

```
# not a heading inside code
```

## Refunds

# Account
Close your account here.
"""


def test_sections_carry_their_heading_path_and_offsets():
    passages = split_passages(ARTICLE, max_chars=10_000)
    assert [p.heading_path for p in passages] == [
        (),
        ("Billing",),
        ("Billing", "Invoices"),
        ("Billing", "Invoices", "Recurring invoices"),
        ("Account",),
    ]  # "Refunds" has a heading only: nothing to match, left out
    for passage in passages:
        assert ARTICLE[passage.start : passage.end] == passage.text
    assert "# not a heading inside code" in passages[3].text


def test_long_sections_are_cut_at_paragraphs_within_the_limit():
    body = "# Long\n" + "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(20))
    passages = split_passages(body, max_chars=400)
    assert len(passages) > 5
    assert all(len(p.text) <= 400 and p.heading_path == ("Long",) for p in passages)
    assert "".join(p.text for p in passages) == body  # nothing lost, nothing repeated


def test_a_text_without_breaks_is_cut_hard():
    passages = split_passages("x" * 1000, max_chars=300)
    assert [len(p.text) for p in passages] == [300, 300, 300, 100]
