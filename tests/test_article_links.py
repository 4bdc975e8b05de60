"""Articles linked in conversations (URL or quoted title) and whether the customer was still stuck afterwards."""

from __future__ import annotations

from threadline.analysis.article_links import (
    ArticleRef,
    ArticleTally,
    LinkFinder,
    confusing_articles,
    conversation_links,
    is_closing,
    normalise_url,
)

FINDER = LinkFinder(
    [
        ArticleRef(1, "Accept online payments with Stripe", "https://help.example.test/accept-online-payments.md"),
        ArticleRef(2, "Two-factor authentication", None),
    ]
)


def test_urls_match_without_scheme_www_suffix_query_or_trailing_punctuation():
    assert normalise_url("https://www.Help.Example.test/accept-online-payments/?x=1#top") == (
        "help.example.test/accept-online-payments"
    )
    assert FINDER.find("Here's the guide: https://help.example.test/accept-online-payments.") == {1}
    assert FINDER.find("see http://help.example.test/accept-online-payments.html") == {1}
    assert FINDER.find("our docs: https://help.example.test/ and https://other.test/accept-online-payments") == set()


def test_titles_count_only_in_quotes():
    assert FINDER.find("Have a look at \u201cAccept online payments with Stripe\u201d, it explains it.") == {1}
    assert FINDER.find('the article "two-factor  authentication" has it') == {2}
    assert FINDER.find("I turned on two-factor authentication yesterday") == set()


def test_closing_messages_thank_without_saying_the_problem_persists():
    assert is_closing("Found it, thanks! Can it also attach the timesheet automatically?")
    assert is_closing("ok great, closing this")
    assert not is_closing("Thanks, but it still doesn't show the Pay now button.")
    assert not is_closing("I followed the guide, nothing imported.")


def test_stuck_means_a_later_customer_message_that_does_not_close():
    link = ("agent", 'See "Accept online payments with Stripe".')
    assert [
        o.stuck for o in conversation_links([("customer", "How?"), link, ("customer", "Perfect, thank you!")], FINDER)
    ] == [False]
    stuck = [("customer", "How?"), link, ("customer", "Still no payment link."), ("customer", "Thanks anyway")]
    assert [o.stuck for o in conversation_links(stuck, FINDER)] == [True]
    assert [o.stuck for o in conversation_links([("customer", "How?"), link], FINDER)] == [False]
    assert conversation_links([("customer", "How do I pay?")], FINDER) == []


def test_confusing_articles_need_enough_stuck_conversations_and_share():
    tallies = {
        1: ArticleTally(1, linked=10, stuck=[11, 12, 13], stuck_customers={"a", "b", "c"}),
        2: ArticleTally(2, linked=10, stuck=[21], stuck_customers={"a"}),  # one stuck customer: an anecdote
        3: ArticleTally(3, linked=40, stuck=[31, 32, 33], stuck_customers={"a"}),  # helps most readers
        4: ArticleTally(4, linked=4, stuck=[41, 42, 43, 44], stuck_customers={"a", "b"}),
    }
    chosen = confusing_articles(tallies, min_conversations=2, min_share=0.25)
    assert [t.article_id for t in chosen] == [4, 1]
