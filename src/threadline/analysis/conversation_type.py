"""Offline conversation type: what kind of contact a conversation is, without an LLM.

Types (exactly these, in this order):

- ``bug``             something is broken, fails, is missing or is stuck (bug / problem)
- ``feature_request`` asks for a capability the product does not have
- ``how_to``          asks how to do something or how something works
- ``billing``         charges, fees, refunds, plans, invoices *from us*, payments
- ``account_access``  log-in, password, PIN, 2FA, SSO, identity checks, ownership
- ``complaint``       dissatisfaction is the point (prices, service, threats to leave)
- ``praise``          thanks and compliments with no problem to solve
- ``other``           none of the above (sales pitches, out-of-office, unrelated requests)

Why two signals: cue patterns are precise and explainable (they become ``cues``, shown to
users as "why this type"), but they miss paraphrases; embedding similarity to a few
prototype sentences per type catches paraphrases but confuses neighbours (a bug about
invoices vs. a billing question). Each covers the other's blind spot.

Decision rule (documented here because cached analyses are keyed by
``CONVERSATION_TYPE_VERSION``; change either together):

1. ``cue[t]``: sum of the weights of the distinct cue patterns of type ``t`` that match the
   customer-side text, capped at ``CUE_CAP`` so one verbose message cannot swamp the rest.
   A cue found only after the first ``OPENING_CHARS`` counts ``LATER_CUE_FACTOR`` of its
   weight (the opening states the reason for contact; later turns are answers to the
   agent and politeness), and praise cues count only in the first ``PRAISE_OPENING_CHARS``
   ("thanks, that worked!" closes many bug reports).
2. ``sim[t]``: mean of the ``PROTOTYPE_TOP_K`` highest cosine similarities between the
   conversation embedding and the prototype sentences of ``t`` (0 when no embedding).
3. ``score[t] = cue[t] + EMBEDDING_WEIGHT * sim[t]``; ``other`` also gets ``OTHER_PRIOR``
   so it wins only when nothing else has evidence.
4. Malfunction precedence: when the cues that say the product itself misbehaves (error,
   crash, timeout, redirect loop, "stopped working", ...) reach ``MALFUNCTION_MIN`` points,
   ``bug`` gets ``MALFUNCTION_BONUS``: a broken SSO log-in or wrong VAT on generated
   invoices is a bug in that area, not an access or billing question.
5. ``praise`` and ``other`` are suppressed (score -inf) when a problem type (bug,
   billing, account_access) has cue evidence of at least ``PROBLEM_CUE_VETO``: a customer
   who thanks you while reporting a crash is reporting a crash.
6. type = argmax(score); confidence = softmax(score / SOFTMAX_TEMPERATURE)[type].

Without an embedding only steps 1, 3-6 apply (cue-only mode, lower accuracy on
paraphrases; confidence is correspondingly flatter).
"""

from __future__ import annotations

import logging
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from threadline.ai.llm.schemas import ConversationType
from threadline.text.caseless import ascii_variant

logger = logging.getLogger(__name__)

TYPE_ANALYSIS = "type"  # `analyses.stage` of conversation types (stored by the embed stage, read by stories)
CONVERSATION_TYPE_VERSION = "1"  # bump when cues, prototypes, weights or the rule change

TYPES: tuple[str, ...] = typing.get_args(ConversationType)  # one vocabulary with the LLM's facets
PROBLEM_TYPES: frozenset[str] = frozenset({"bug", "billing", "account_access"})

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2 output size
MAX_TEXT_CHARS = 4000  # characters of customer text scanned for cues: the opening carries the type
OPENING_CHARS = 600  # characters treated as the opening (about one e-mail or two chat turns)
LATER_CUE_FACTOR = 0.5  # weight of a cue seen only after the opening: replies, not the reason
PRAISE_OPENING_CHARS = 200  # praise counts only this early: a later "excellent!" answers the agent
CUE_CAP = 4.0  # cue points per type: more matches add little evidence, only verbosity
EMBEDDING_WEIGHT = 6.0  # cue points per unit cosine: a 0.15 cosine lead ~ one strong cue
PROTOTYPE_TOP_K = 3  # nearest prototypes averaged per type: robust to one odd prototype
OTHER_PRIOR = 1.0  # cue points granted to "other": the answer when no type has evidence
PROBLEM_CUE_VETO = 1.0  # problem cue points that rule out praise/other
MALFUNCTION_MIN = 1.5  # malfunction cue points (one strong cue) that make a report a bug whatever its area
MALFUNCTION_BONUS = 2.0  # cue points added to bug then: beats one topic cue (log in, invoice)
SOFTMAX_TEMPERATURE = 0.5  # cue points: turns the score gap into a 0-1 confidence


@dataclass(frozen=True)
class Cue:
    """One regex that is evidence for a type, with its weight in cue points."""

    type: str
    name: str
    pattern: re.Pattern[str]
    weight: float = 1.0
    malfunction: bool = False  # evidence that the product itself misbehaves (see rule 4)


def _cue(
    type_: str,
    name: str,
    regex: str,
    weight: float = 1.0,
    malfunction: bool = False,
    flags: int = re.IGNORECASE | re.MULTILINE,
) -> Cue:
    """Build a Cue; patterns are case-insensitive unless `flags` says otherwise."""
    return Cue(type_, name, re.compile(regex, flags), weight, malfunction)


_NEG = r"(?:doesn'?t|does not|don'?t|do not|isn'?t|is not|won'?t|will not|can'?t|cannot|couldn'?t|didn'?t|did not|never|not)"

CUES: tuple[Cue, ...] = (
    # bug / problem
    _cue(
        "bug",
        "not working",
        r"\b(?:not|stopped|no longer|isn'?t|wasn'?t|aren'?t)\s+working\b|\bno longer (?:works|finishes|loads|syncs|opens|arrives)\b|\b"
        + _NEG
        + r"\s+(?:work|load|sync|open|go through|arrive|come through|update|finish|download|upload|save|show up|complete|stick|let|letting|accept|accepting|give|giving|dispense|dispensed)\b",
        2.0,
        True,
    ),
    _cue("bug", "won't work", r"\bwon'?t work\b|\bdoes ?n[o']t work\b", 1.0),
    _cue("bug", "error", r"\berror(?:s)?\b|\bexception\b|\b50[0-4]\b|\berr_", 1.5, True),
    _cue("bug", "timeout", r"\btim(?:es|ed|ing)? ?out\b|\btimeout\b", 1.5, True),
    _cue(
        "bug",
        "crash",
        r"\bcrash(?:es|ed|ing)?\b|\bfreez(?:es|ing)\b|\bfrozen\b|\bquits\b|\bcloses (?:itself|unexpectedly)\b|\bshuts? down\b|\bforce[- ]clos",
        2.0,
        True,
    ),
    _cue("bug", "bug", r"\bbug(?:s|gy)?\b|\bglitch", 2.0, True),
    _cue("bug", "broken", r"\bbroken\b|\bbroke\b", 2.0, True),
    _cue("bug", "fails", r"\bfail(?:s|ed|ing|ure)?\b|\bdidn'?t go through\b", 1.5, True),
    _cue("bug", "stuck", r"\bstuck\b|\bspins?\b|\bhangs?\b|\bforever\b|\bnever sticks\b", 1.5, True),
    _cue(
        "bug",
        "loop",
        r"\bloop(?:s|ing)?\b|\bin circles\b|\bredirect(?:s|ed|ing)?\b|\bbounces?\b|\bkeeps? reloading\b",
        1.5,
        True,
    ),
    _cue(
        "bug",
        "persists",
        r"\b(?:doesn'?t|didn'?t|did not|does not) help\b|\bstill (?:happening|there|the same|broken)\b|\bcomes? back\b",
        1.5,
    ),
    _cue(
        "bug",
        "fix it",
        r"\b(?:please|can you|could you|to) fix\b|\bfix (?:this|it)\b|\bknown (?:issue|problem)\b|\boutage\b|\bproblem on your (?:end|side)\b",
        1.5,
    ),
    _cue(
        "bug",
        "why isn't",
        r"\bwhy (?:hasn'?t|isn'?t|didn'?t|can'?t|won'?t|doesn'?t|don'?t|is my|was my|would my|has my|did my|am i not)\b",
        1.5,
    ),
    _cue("bug", "pending", r"\bstill (?:pending|waiting|awaiting|not|hasn'?t|missing)\b|\bpending\b|\bawaiting\b", 1.0),
    _cue(
        "bug",
        "not received",
        r"\bhas(?:n'?t| not) (?:arrived|been (?:credited|completed|updated)|updated|come|increased)\b|\bnot (?:arriving|arrived|received|showing)\b|\bnothing (?:has )?happen|\b(?:didn'?t|haven'?t|hasn'?t|never|not) (?:receive|received|get|got|gotten)\b",
        1.5,
    ),
    _cue(
        "bug",
        "declined",
        r"\bdeclin(?:ed|ing)\b|\brevert(?:ed|s)?\b|\breversed\b|\bswallowed\b|\bstill has my card\b",
        1.5,
    ),
    _cue(
        "bug",
        "wrong",
        r"\bwrong\b|\bincorrect\b|\bdoesn'?t match\b|\bmismatch|\b(?:isn'?t|not|wasn'?t) (?:right|correct)\b",
        1.0,
    ),
    _cue("bug", "duplicates", r"\bduplicat(?:e|es|ed|ing)\b|\b\d+ copies\b", 1.0),
    _cue("bug", "delay", r"\bdelay(?:ed|s)?\b|\b(?:hours?|days?) late\b|\barriving late\b", 1.5),
    _cue("bug", "missing", r"\bmissing\b|\bdisappeared\b|\bno longer there\b|\bgone\b", 1.0),
    _cue("bug", "keeps", r"\bkeeps? (?:\w+ing|coming back|failing)\b|\bevery (?:single )?time\b", 1.0),
    _cue("bug", "something wrong", r"\bsomething(?:'s| is)? wrong\b|\bsomething went wrong\b", 1.5),
    _cue(
        "bug",
        "fraud",
        r"\bfraud\b|\bstolen\b|\bstole\b|\bunauthori[sz]ed\b|\bsomeone (?:used|transferred|withdrew|is taking|took)\b|\bmessing with\b|\bi didn'?t make\b",
        2.5,
    ),
    _cue("bug", "can't", r"\bcan'?t (?:get|find|upload|export|use|see|open|access)\b|\bunable to\b", 0.5),
    _cue(
        "bug",
        "lost or kept",
        r"\b(?:lost|misplaced) (?:my|our|the) (?:card|phone|wallet|device)\b|\b(?:card|phone|wallet) (?:is|was) (?:lost|stolen)\b|\bcan'?t get (?:my|it|the) (?:\w+ )?back\b",
        1.5,
    ),
    _cue(
        "bug",
        "unusual wait",
        r"\bis (?:it|this|that) normal\b|\b(?:wait|waited|waiting) (?:over|more than|for over) (?:a|an|\d+)\b|\bthis long\b",
        1.5,
    ),
    # feature request
    _cue(
        "feature_request",
        "can you add",
        r"\b(?:can|could|would|will) you (?:please )?(?:add|build|make|implement|introduce|support|consider)\b|\bplease add\b",
        2.5,
    ),
    _cue(
        "feature_request",
        "would be great",
        r"\b(?:would|it'?d|it will) (?:be|save) (?:great|nice|awesome|amazing|helpful|useful|cool|fantastic|hours)\b",
        2.0,
    ),
    _cue(
        "feature_request",
        "feature request",
        r"\bfeature request\b|\brequest(?:ing)? (?:a|the) feature\b|\bsuggestion\b|\bsuggest\b",
        3.0,
    ),
    _cue(
        "feature_request",
        "roadmap",
        r"\broadmap\b|\b(?:any|are there) plans?\b|\bplanned\b|\bin the future\b|\b(?:will|would) there be\b|\bthere will be\b",
        2.0,
    ),
    _cue(
        "feature_request",
        "wish",
        r"\bwish (?:there was|you had|it could|it had)\b|\bwould love (?:to see|if|a|an)\b|\bwe'?d pay for\b",
        2.0,
    ),
    _cue(
        "feature_request",
        "add ability",
        r"\b(?:add|adding|need|want) (?:the |a |an )?(?:ability|option|way|feature|support|setting) (?:to|for)\b",
        1.5,
    ),
    _cue(
        "feature_request",
        "other tools have it",
        r"\bboth have this\b|\bmost tools\b|\bother tools\b|\bcompetitors? (?:have|has|offer)\b",
        1.5,
    ),
    # how-to
    _cue("how_to", "how do I", r"\bhow (?:do|can|could|should|would|might|to)\b|\bhow (?:do|can) (?:i|we)\b", 2.0),
    _cue("how_to", "where", r"\bwhere (?:do|can|is|are|in|should)\b", 1.5),
    _cue(
        "how_to",
        "is it possible",
        r"\bis (?:it|there) (?:possible|a way|an option)\b|\bcan (?:i|we)\b|\bam i able\b",
        1.5,
    ),
    _cue("how_to", "how long/much", r"\bhow (?:long|much|many|soon)\b|\bwhen (?:will|should|can|do)\b", 1.0),
    _cue("how_to", "what is", r"\bwhat (?:is|are|does|do|type|kind|types|kinds)\b|\bexplain\b", 1.0),
    _cue(
        "how_to",
        "question",
        r"\bquestion\b|\bwondering\b|\bwould like to know\b|\bwant to know\b|\bneed to find out\b",
        1.0,
    ),
    _cue("how_to", "ends with ?", r"\?\s*\Z", 0.5),
    _cue(
        "how_to",
        "asks a question",
        r"(?:^|[.!?]\s+)(?:are|is|do|does|can|could|will|would|should|which|what|when|where|how|who)\b[^.!?\n]*\?",
        1.5,
    ),
    _cue("how_to", "help with", r"\bneed help (?:with|to|\w+ing)\b|\bhelp me (?:with|to|\w+ing)\b", 1.0),
    _cue(
        "how_to",
        "setup",
        r"\bset ?up\b|\bconfigure\b|\bguide\b|\bdocumentation\b|\bhelp (?:center|article)\b|\bprocedure\b|\binstructions\b",
        1.0,
    ),
    _cue("how_to", "change my", r"\b(?:change|update|edit|rename) (?:my|our|the)\b", 1.0),
    _cue("how_to", "directions", r"\bdirections\b|\bi'?m lost\b", 1.0),
    # billing
    _cue("billing", "charged", r"\bcharg(?:e|ed|es|ing)\b|\bbilled\b|\bbilling\b", 2.0),
    _cue("billing", "refund", r"\brefund(?:s|ed)?\b|\bmoney back\b|\breimburse", 2.5),
    _cue("billing", "twice", r"\btwice\b|\bdouble(?:d)? (?:charge|payment|billed)\b|\btwo (?:charges|payments)\b", 1.5),
    _cue("billing", "fee", r"\bfees?\b|\bcost\b|\bprice\b|\bpricing\b|\bexchange rate\b", 1.0),
    _cue("billing", "plan", r"\b(?:subscription|plan|upgrade[d]?|downgrade[d]?|renewal|annual billing|seats?)\b", 1.0),
    _cue("billing", "payment", r"\bpayments?\b|\breceipt\b|\bcredit card\b|\bcompany card\b|\bpaid\b", 1.0),
    _cue("billing", "invoice", r"\binvoices?\b|\bvat id\b", 0.5),
    _cue("billing", "amount", r"[$€£]\s?\d|\b\d+(?:[.,]\d+)?\s?(?:pounds?|euros?|dollars?|usd|eur|gbp)\b", 1.0),
    # account access
    _cue("account_access", "log in", r"\blog ?(?:in|on)\b|\blogin\b|\bsign(?:ing)? ?in\b|\bsigned (?:out|in)\b", 2.0),
    _cue("account_access", "password", r"\bpass(?:word|code)s?\b|\breset (?:link|email|mail)\b", 2.5),
    _cue(
        "account_access",
        "2FA",
        r"\b2fa\b|\btwo[- ]factor\b|\bmfa\b|\bauthenticat(?:or|ion)\b|\bverification code\b",
        2.5,
    ),
    _cue(
        "account_access",
        "locked out",
        r"\blocked out\b|\block(?:ed)? (?:me|us) out\b|\baccount (?:is |was |got )?(?:locked|disabled|suspended|blocked)\b|\bcan'?t (?:get|log) (?:in|into|back)\b",
        3.0,
    ),
    _cue("account_access", "PIN", r"\bpin\b", 2.0),
    _cue("account_access", "SSO", r"\bsso\b|\bsaml\b|\bokta\b|\bsingle sign[- ]on\b|\bazure ad\b", 1.5),
    _cue("account_access", "identity", r"\bverif(?:y|ied|ication)\b|\bidentity\b|\bid check\b", 2.5),
    _cue(
        "account_access",
        "access account",
        r"\baccess (?:my|the|our) (?:account|app)\b|\bget (?:back )?into (?:my|the|our)\b",
        2.0,
    ),
    _cue("account_access", "ownership", r"\bowner(?:ship)?\b|\badmin rights\b|\bpermissions?\b|\blogin email\b", 1.5),
    # complaint
    _cue(
        "complaint",
        "angry words",
        r"\b(?:terrible|awful|horrible|ridiculous|unacceptable|disappoint(?:ed|ing)|frustrat(?:ed|ing)|angry|annoy(?:ed|ing)|fed up|worst|useless|rip[- ]?off|disgrace(?:ful)?|pathetic|furious|outrageous|not up to par|slap in the face|poor service)\b",
        2.5,
    ),
    _cue(
        "complaint",
        "leaving",
        r"\b(?:cancel|close|delete|terminate) (?:my|our) (?:account|subscription)\b|\b(?:switch(?:ing)?|mov(?:e|ing)) to (?:another|a different|a competitor)\b|\bconsidering (?:switching|leaving|cancel)|\bi'?m not paying\b",
        2.0,
    ),
    _cue(
        "complaint",
        "enough",
        r"\b(?:i'?ve|i have|we'?ve) had enough\b|\bi'?ve got enough\b|\bthis is (?:a joke|ridiculous|unacceptable)\b|\bnobody told us\b|\bloyal customers?\b",
        2.0,
    ),
    _cue("complaint", "shouting", r"!!+|\b[A-Z]{5,}\b.*\b[A-Z]{5,}\b", 0.5, flags=re.MULTILINE),
    # praise
    _cue(
        "praise",
        "thanks a lot",
        r"\b(?:thank you so much|thanks so much|huge thanks|big thanks|many thanks|thanks a (?:lot|ton|million))\b",
        1.5,
    ),
    _cue("praise", "love it", r"\b(?:love|loving|loved) (?:the|your|it|this|using|how)\b|\bbig fan\b|\bfan of\b", 2.5),
    _cue(
        "praise",
        "great words",
        r"\b(?:amazing|fantastic|awesome|excellent|brilliant|wonderful|superb|outstanding|great job|great work|kudos|well done)\b",
        1.5,
    ),
    _cue(
        "praise",
        "just wanted to say",
        r"\bjust (?:wanted|want) to (?:say|thank|let you know)\b|\bmade (?:my|our) day\b|\byou (?:guys|folks|all) (?:are|rock)\b|\bso much (?:easier|better|faster)\b",
        2.0,
    ),
    # other
    _cue(
        "other",
        "out of office",
        r"\bout of (?:the )?office\b|\bauto(?:matic)? reply\b|\blimited access to e-?mail\b",
        3.0,
    ),
    _cue(
        "other",
        "sales pitch",
        r"\bpartner(?:ship| program)?\b|\bseo\b|\bagency offering\b|\breseller\b|\bsurvey\b|\bapply for\b|\bjob\b|\brole i saw\b",
        2.0,
    ),
)

# Prototype sentences: short, product-neutral examples of each type. Embedding similarity
# to these generalises the cues to paraphrases. Keep them generic: they must not describe
# any evaluation dataset's specific problems.
PROTOTYPES: dict[str, tuple[str, ...]] = {
    "bug": (
        "It doesn't work, I get an error message.",
        "The app crashes every time I try to do this.",
        "The page keeps loading and then fails with a timeout.",
        "This feature is broken since the last update.",
        "My payment is stuck and still pending.",
        "Something is wrong, the numbers shown are incorrect.",
        "It has not arrived yet and nothing has happened.",
        "The sync creates duplicates and data is missing.",
        "My transfer was declined and did not go through.",
        "Notifications are delayed by several hours.",
        "Someone made transactions on my account that I did not make.",
        "The upload fails and the file never shows up.",
    ),
    "feature_request": (
        "Could you please add this feature?",
        "It would be great if the app supported this.",
        "Feature request: an option to do this in bulk.",
        "Are there any plans to add this to the roadmap?",
        "I wish there was a way to customise this.",
        "Please consider adding support for this in a future version.",
        "We would love to see a dark theme.",
        "Other tools have this, it would save us a lot of time.",
    ),
    "how_to": (
        "How do I set this up?",
        "Where can I find this setting in the app?",
        "Is it possible to do this, and how?",
        "Can you explain how this works?",
        "What is this option for?",
        "How long does it usually take?",
        "Quick question about how to use this feature.",
        "Which options are available for me?",
        "Can I change my details myself?",
        "I need instructions to get this done.",
    ),
    "billing": (
        "I was charged twice for my subscription.",
        "Please refund the extra payment.",
        "Why is there an extra fee on my statement?",
        "Can you send me a copy of my invoice?",
        "How much does the plan cost per month?",
        "There is a charge I don't recognise.",
        "My bill went up after I changed plans.",
        "I want my money back.",
    ),
    "account_access": (
        "I can't log in to my account.",
        "The password reset email never arrives.",
        "I'm locked out of my account.",
        "I lost my phone and can't pass two-factor authentication.",
        "I forgot my password and PIN.",
        "Single sign-on is not letting us sign in.",
        "My identity verification is not complete, can I still use my account?",
        "How do I transfer ownership of the account?",
    ),
    "complaint": (
        "This is unacceptable, I'm very disappointed with your service.",
        "Your prices are ridiculous, we are considering switching to a competitor.",
        "I'm fed up, this is the worst experience I've had.",
        "Please close my account, your service is terrible.",
        "I'm really frustrated with how this was handled.",
        "Nobody told us about this change, very annoyed.",
    ),
    "praise": (
        "Thank you so much, you were a great help!",
        "I love the app, it has made our work so much easier.",
        "Just wanted to say the new update is fantastic.",
        "Great job team, amazing support.",
        "Big fan of your product, keep up the good work.",
    ),
    "other": (
        "I am out of the office until Monday.",
        "We are an agency and would like to offer our services.",
        "I would like to apply for a job at your company.",
        "Would you take part in our survey?",
        "Hello",
        "I need to book a ride to the airport.",
        "I want to reserve a hotel room for next week.",
        "Can I schedule an appointment with the doctor?",
    ),
}


@dataclass(frozen=True)
class TypeResult:
    """The type of one conversation, how sure the rule is (0-1) and which cues fired."""

    type: str
    confidence: float
    cues: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PrototypeSet:
    """Prototype embeddings stacked in one matrix, with the type of each row."""

    matrix: np.ndarray  # (n_prototypes, EMBEDDING_DIM), L2-normalised
    types: tuple[str, ...]  # type of each row


Encoder = Callable[[list[str]], np.ndarray]


def build_prototypes(encode: Encoder) -> PrototypeSet:
    """Embed PROTOTYPES with `encode` (texts -> L2-normalised (n, 384) matrix)."""
    texts = [s for t in TYPES for s in PROTOTYPES[t]]
    types = tuple(t for t in TYPES for _ in PROTOTYPES[t])
    matrix = np.asarray(encode(texts), dtype=np.float32)
    return PrototypeSet(_l2(matrix), types)


@dataclass(frozen=True)
class CueEvidence:
    """Cue points per type (order of TYPES), malfunction points and fired cue names."""

    scores: np.ndarray
    malfunction: float
    fired: list[str]


CUE_GROUP_SIZE = 4  # cues behind one prefilter search: most texts match few cues, so most groups are ruled out at once (measured ~2x fewer search costs at 4, less at 8 and 16)


@dataclass(frozen=True)
class _CueGroup:
    """Consecutive cues sharing flags and search window, behind one alternation of their patterns.

    An alternation finds a match in a string exactly when one of its alternatives matches
    somewhere in it, so a miss of the prefilter on a window is a miss of every cue of the
    group on that window, and skipping them changes no score.
    """

    prefilter: re.Pattern[str]
    ascii_prefilter: re.Pattern[str]
    folded: bool  # case-insensitive: ASCII text is searched lowercased
    praise: bool
    cues: tuple[
        tuple[re.Pattern[str], re.Pattern[str], int, float, bool, str], ...
    ]  # original, ASCII variant, type index, weight, malfunction, label


def _cue_groups(cues: Sequence[Cue], size: int) -> tuple[_CueGroup, ...]:
    groups: list[_CueGroup] = []
    run: list[Cue] = []

    def close() -> None:
        for start in range(0, len(run), size):
            chunk = run[start : start + size]
            alternation = re.compile("|".join(f"(?:{c.pattern.pattern})" for c in chunk), chunk[0].pattern.flags)
            plan = tuple(
                (
                    c.pattern,
                    ascii_variant(c.pattern),
                    TYPES.index(c.type),
                    c.weight,
                    c.malfunction,
                    f"{c.type}:{c.name}",
                )
                for c in chunk
            )
            groups.append(
                _CueGroup(
                    alternation,
                    ascii_variant(alternation),
                    bool(alternation.flags & re.IGNORECASE),
                    chunk[0].type == "praise",
                    plan,
                )
            )
        run.clear()

    for cue in cues:
        if run and (cue.pattern.flags, cue.type == "praise") != (run[0].pattern.flags, run[0].type == "praise"):
            close()
        run.append(cue)
    close()
    return tuple(groups)


_CUE_GROUPS = _cue_groups(CUES, CUE_GROUP_SIZE)


def cue_scores(text: str) -> CueEvidence:
    """Score the cue patterns on one customer-side text (rule steps 1 and 4).

    A cue counts fully when it matches in the opening (praise: only in its shorter
    opening), and `LATER_CUE_FACTOR` of its weight when it matches only later on.
    """
    text = text[:MAX_TEXT_CHARS]
    ascii_text = text.isascii()
    lowered = text.lower() if ascii_text else text  # same length as `text` when ASCII
    has_later_part = len(text) > OPENING_CHARS  # else a miss in the opening is a miss in the text
    windows = {
        folded: (source, source[:OPENING_CHARS], source[:PRAISE_OPENING_CHARS])
        for folded, source in ((False, text), (True, lowered))
    }
    scores = [0.0] * len(TYPES)
    malfunction = 0.0
    fired: list[str] = []
    for group in _CUE_GROUPS:
        prefilter = group.ascii_prefilter if ascii_text else group.prefilter
        whole, opening, praise_window = windows[group.folded and ascii_text]
        if group.praise:
            if not prefilter.search(praise_window):
                continue
            in_opening = in_later = False
        else:
            in_opening = prefilter.search(opening) is not None
            in_later = has_later_part and prefilter.search(whole) is not None
            if not (in_opening or in_later):
                continue
        for original, ascii_pattern, type_index, cue_weight, is_malfunction, label in group.cues:
            pattern = ascii_pattern if ascii_text else original
            if group.praise:
                if not pattern.search(praise_window):
                    continue
                weight = cue_weight
            elif in_opening and pattern.search(opening):
                weight = cue_weight
            elif in_later and pattern.search(whole):
                weight = cue_weight * LATER_CUE_FACTOR
            else:
                continue
            scores[type_index] += weight
            if is_malfunction:
                malfunction += weight
            fired.append(label)
    return CueEvidence(np.minimum(np.array(scores), CUE_CAP), malfunction, fired)


def similarity_scores(embeddings: np.ndarray, prototypes: PrototypeSet) -> np.ndarray:
    """(n, len(TYPES)) mean of the top-k prototype cosines per type."""
    sims = _l2(np.atleast_2d(embeddings).astype(np.float32)) @ prototypes.matrix.T
    out = np.zeros((sims.shape[0], len(TYPES)))
    proto_types = np.asarray(prototypes.types)
    for j, t in enumerate(TYPES):
        cols = sims[:, proto_types == t]
        k = min(PROTOTYPE_TOP_K, cols.shape[1])
        out[:, j] = np.sort(cols, axis=1)[:, -k:].mean(axis=1)
    return out


def decide(evidence: CueEvidence, sim: np.ndarray | None) -> tuple[int, float]:
    """Apply the decision rule to one conversation's cues and similarities: (type index, confidence)."""
    best, confidence = decide_many(
        evidence.scores[None, :], np.array([evidence.malfunction]), None if sim is None else np.asarray(sim)[None, :]
    )
    return int(best[0]), float(confidence[0])


def decide_many(cues: np.ndarray, malfunction: np.ndarray, sims: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The decision rule (steps 3-6) on many conversations at once: (type index, confidence) per row.

    `cues` is (n, len(TYPES)) capped cue points, `malfunction` (n,) malfunction points, `sims`
    (n, len(TYPES)) or None. Row by row the same arithmetic as one conversation at a time, in
    a few array operations instead of a dozen small ones per conversation.
    """
    score = cues.astype(float)  # a copy
    if sims is not None:
        score += EMBEDDING_WEIGHT * sims
    score[:, TYPES.index("other")] += OTHER_PRIOR
    score[malfunction >= MALFUNCTION_MIN, TYPES.index("bug")] += MALFUNCTION_BONUS
    vetoed = cues[:, [TYPES.index(t) for t in sorted(PROBLEM_TYPES)]].max(axis=1) >= PROBLEM_CUE_VETO
    score[vetoed, TYPES.index("praise")] = -np.inf
    score[vetoed, TYPES.index("other")] = -np.inf
    best = np.argmax(score, axis=1)
    rows = np.arange(score.shape[0])
    exp = np.exp((score - score[rows, best][:, None]) / SOFTMAX_TEMPERATURE)
    return best, exp[rows, best] / exp.sum(axis=1)  # each row summed as np.sum sums one row (a test checks)


def classify_conversation_types(
    texts: Sequence[str],
    embeddings: np.ndarray | None = None,
    prototypes: PrototypeSet | None = None,
) -> list[TypeResult]:
    """Classify many conversations; `embeddings` is an (n, 384) L2-normalised matrix or None.

    `texts` is the customer side of each conversation (normalised, customer messages
    joined). Embeddings are compared with `prototypes` (embedded by the same model; see
    `threadline.analysis.prototype_vectors.default_prototypes`).
    """
    sims: np.ndarray | None = None
    if embeddings is not None:
        embeddings = np.atleast_2d(np.asarray(embeddings))
        if embeddings.shape != (len(texts), EMBEDDING_DIM):
            raise ValueError(f"embeddings must be ({len(texts)}, {EMBEDDING_DIM}), got {embeddings.shape}")
        if prototypes is None:
            raise ValueError("embeddings need the prototypes embedded by the same model")
        sims = similarity_scores(embeddings, prototypes)
    evidence = [cue_scores(text) for text in texts]
    if not evidence:
        return []
    best, confidence = decide_many(
        np.stack([e.scores for e in evidence]), np.array([e.malfunction for e in evidence]), sims
    )
    results = []
    for cue, index, sure in zip(evidence, best.tolist(), confidence.tolist(), strict=True):
        chosen = TYPES[index]
        cues = [c for c in cue.fired if c.startswith(chosen + ":")]
        results.append(TypeResult(chosen, round(sure, 4), cues))
    return results


def classify_conversation_type(
    text: str, embedding: np.ndarray | None = None, prototypes: PrototypeSet | None = None
) -> TypeResult:
    """Classify one conversation from its customer-side text and optional (384,) embedding."""
    matrix = None if embedding is None else np.asarray(embedding).reshape(1, -1)
    return classify_conversation_types([text], matrix, prototypes)[0]


def _l2(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine = dot product); zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
