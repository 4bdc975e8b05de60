"""What Threadline sends to a model is masked: facets, naming and story prompts never carry planted personal data.

A facet quote is verified against the text the model saw (masked), so a quote the model
copied with ``[email]`` in it survives, and one that "restores" the address is dropped.
"""

from __future__ import annotations

import json

import pytest

from threadline.ai.llm.facets import conversation_input, facet_input_hash, facet_messages, finalize_facets
from threadline.ai.llm.naming import ThemeMember, ThemeNamingInput, naming_payload
from threadline.ai.llm.schemas import FacetsOut, QuoteOut
from threadline.ai.llm.stories import Evidence, StoryInput, story_payload
from threadline.config import get_settings

PLANTED = ("jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111")
TEXT = "My card 4111 1111 1111 1111 was charged twice, call +44 20 7946 0958 or write to jane.doe@example.com please."


@pytest.fixture(autouse=True)
def _fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _sent(payload: object) -> str:
    return json.dumps(payload, ensure_ascii=False)


def test_facet_prompt_is_masked_and_quotes_are_verified_against_what_the_model_saw():
    conv = conversation_input("c1", [("m1", "customer", TEXT)])
    messages, _ = facet_messages(conv)
    sent = _sent(messages)
    assert not any(value in sent for value in PLANTED) and "[email]" in sent and "[phone]" in sent
    seen = "My card [card] was charged twice, call [phone] or write to [email] please."
    raw = FacetsOut(
        summary="Charged twice.",
        customer_problem="Double charge.",
        requested_change=None,
        product_area="billing",
        conversation_type="billing",
        sentiment="negative",
        severity="medium",
        quotes=[QuoteOut(message_id="m1", text=seen), QuoteOut(message_id="m1", text=TEXT)],
    )
    facets = finalize_facets(raw, conv)
    assert [q.text for q in facets.quotes] == [seen]  # the unmasked "quote" is not what the model saw
    assert facets.quotes_dropped == 1


def test_masking_switched_off_sends_the_text_as_stored(monkeypatch):
    conv = conversation_input("c1", [("m1", "customer", TEXT)])
    masked_key = facet_input_hash(conv, "m")
    monkeypatch.setenv("THREADLINE_INSIGHT_MASK_PERSONAL_DATA", "false")
    get_settings.cache_clear()
    assert "jane.doe@example.com" in _sent(facet_messages(conv)[0])
    assert facet_input_hash(conv, "m") != masked_key  # what is sent changed, so the cache key does


def test_naming_and_story_prompts_are_masked():
    member = ThemeMember("c1", TEXT, TEXT, None, "billing", "billing")
    naming = _sent(naming_payload(ThemeNamingInput("t1", (member,), (member,))))
    story = _sent(
        story_payload(
            StoryInput("t1", "Charged twice", f"For example: {TEXT}", (Evidence("E1", "c1", "m1", TEXT, TEXT),))
        )
    )
    for sent in (naming, story):
        assert not any(value in sent for value in PLANTED), sent
        assert "[email]" in sent
