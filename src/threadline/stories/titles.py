"""Offline story titles that state the problem in plain words.

A title is the clearest short statement of the problem that customers themselves made:
the best on-topic evidence sentences (already chosen for being closest to the theme and
farthest from the others) are cut to their first clause and rewritten out of the first
person ("My new card still hasn't arrived" -> "New card still hasn't arrived", "I can't
log in with SSO" -> "Customers can't log in with SSO", "How do I set up recurring
invoices?" -> "How to set up recurring invoices"). A candidate is kept only when it reads
as a title: ``MIN_TITLE_WORDS`` to ``MAX_TITLE_WORDS`` words, no leftover first person,
no masked personal data. When no sentence qualifies, the theme's name is the title.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["TITLES_VERSION", "story_title", "title_from_sentence"]

TITLES_VERSION = "clause-rewrite-2"
MIN_TITLE_WORDS = 3  # words: shorter is a label, not a statement of the problem
MAX_TITLE_WORDS = 14  # words: longer is a sentence to read, not a title to scan
MAX_TITLE_CHARS = 90  # characters: one line in a backlog list

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\u2019.-]*")
# Openers that carry no content: greetings, fillers, time phrases, politeness.
_OPENER = re.compile(
    r"^(?:(?:hi|hello|hey|dear \w+|good (?:morning|afternoon|evening)|so|also|just|well|ok(?:ay)?|quick question"
    r"|unfortunately|sadly|again|and|but|please|since (?:this morning|yesterday|last week|today|monday|the update)"
    r"|this morning|today|yesterday|lately|recently|for some reason|as of (?:today|yesterday))\b[\s,:;!.-]*)+",
    re.IGNORECASE,
)
_CLAUSE_END = re.compile(
    r"[;:!?()]|,\s|\s[-\u2013\u2014]\s|\.(?:\s|$)|\s['\"\u201c\u2018]|\s(?:but|because|so|although|and then)\s"
)
# First-person subject + verb -> "Customers" + verb, applied at the start of the clause only.
_SUBJECT_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"^how (?:do|can|should) (?:i|we)\b", "How to"),
        (r"^(?:can|could) (?:i|we)\b", "Can customers"),
        (r"^(?:why|when|where|what) (?:do|did|can|can't|should|must) (?:i|we)\b", None),  # handled below
        (r"^(?:i|we)(?:'d| would)\b", "Customers would"),
        (r"^(?:i|we)(?:'ll| will)\b", "Customers will"),
        (r"^i am\b|^i'm\b|^im\b", "Customers are"),
        (r"^we are\b|^we're\b", "Customers are"),
        (r"^i have\b|^i've\b|^we have\b|^we've\b", "Customers have"),
        (r"^i was\b|^we were\b", "Customers were"),
        (r"^(?:i|we)\b", "Customers"),
        (r"^(?:my|our)\b\s*", ""),
    )
    if replacement is not None
)
_QUESTION_SUBJECT = re.compile(r"^(why|when|where|what) (do|did|can|can't|should|must) (?:i|we)\b", re.IGNORECASE)
_INNER_POSSESSIVE = re.compile(r"\b(?:my|our)\b", re.IGNORECASE)
_INNER_FIRST_PERSON = re.compile(r"\b(?:i|me|we|us|i'm|i've|i'd|we're|we've|myself|ourselves)\b", re.IGNORECASE)
_MASK_MARKER = re.compile(r"\[(?:email|phone|card|iban|account|pin|code|password|api_key|address)\]")
# A clause opening with a subordinator is background ("Since connecting the calendar"), not the problem.
_SUBORDINATE = re.compile(
    r"^(?:since|when|whenever|after|before|if|while|because|although|though|as soon as|once|until)\b", re.I
)
_TRAILING = re.compile(
    r"(?:[\s,;:.-]|\b(?:with|the|a|an|to|for|of|and|or|in|on|at|by|from|that|which)\b)+$", re.IGNORECASE
)
_LEADING_ARTICLE = re.compile(r"^the\s+", re.IGNORECASE)
# A customer introducing themselves ("My name is Angela", "I'm Alexis from Acme", "This is Tom")
# states who writes, not the problem. Case-sensitive on the name: "I'm Unable" is rare, "I'm unable" is not.
_SELF_INTRODUCTION = re.compile(
    r"^(?:(?:[Mm]y|[Oo]ur) names? (?:is|are)\b|[Nn]ames? (?:is|are)\b|(?:[Tt]his is|I am|I'm|Im|[Ii]t's) [A-Z][a-z]+\b)"
)
# Abbreviations whose dot does not end a clause ("an appointment with Dr. Patel").
_ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "st", "vs", "etc", "approx", "no", "e.g", "i.e", "inc", "ltd", "jr", "sr"}
)


def _ends_an_abbreviation(sentence: str, dot: int) -> bool:
    word = sentence[:dot].rsplit(None, 1)[-1] if sentence[:dot].strip() else ""
    return word.lower().lstrip("(") in _ABBREVIATIONS


def _first_clause(sentence: str) -> str:
    match = next(
        (
            m
            for m in _CLAUSE_END.finditer(sentence)
            if not (sentence[m.start()] == "." and _ends_an_abbreviation(sentence, m.start()))
        ),
        None,
    )
    if match is None:
        return sentence
    clause = sentence[: match.start()]
    if sentence[match.start()] == "?":
        clause += "?"
    return clause


def title_from_sentence(sentence: str) -> str | None:
    """The sentence's first clause as a title, out of the first person, or None when it does not read as one."""
    text = " ".join(sentence.replace("\u2019", "'").split())
    text = _OPENER.sub("", text)
    if _SELF_INTRODUCTION.match(text):
        return None
    clause = _TRAILING.sub("", _first_clause(text)).strip()
    if _SUBORDINATE.match(clause):
        return None
    question = _QUESTION_SUBJECT.match(clause)
    if question:
        clause = f"{question.group(1)} {question.group(2)} customers" + clause[question.end() :]
    else:
        for pattern, replacement in _SUBJECT_REWRITES:
            new, count = pattern.subn(replacement, clause, count=1)
            if count:
                clause = new.strip()
                break
    subject_is_customers = clause.lower().startswith(("customers", "can customers", "how to"))
    clause = _INNER_POSSESSIVE.sub("their" if subject_is_customers else "the", clause)
    clause = _LEADING_ARTICLE.sub("", clause)
    if clause.lower().startswith("how to "):
        clause = clause.rstrip("?")
    if _INNER_FIRST_PERSON.search(clause) or _MASK_MARKER.search(clause):
        return None
    words = _WORD.findall(clause)
    if not MIN_TITLE_WORDS <= len(words) <= MAX_TITLE_WORDS or len(clause) > MAX_TITLE_CHARS:
        return None
    return clause[:1].upper() + clause[1:]


def story_title(sentences: Sequence[str], name: str) -> str:
    """The first of ``sentences`` (best first) that makes a title, else the theme's ``name``."""
    for sentence in sentences:
        title = title_from_sentence(sentence)
        if title is not None:
            return title
    return name
