"""Measure personal-data masking: recall per kind on the planted corpora, false masks on BANKING77.

Usage (from the repository root)::

    .venv/bin/python benchmarks/pii_quality.py                  # writes benchmarks/results/pii_quality.json
    .venv/bin/python benchmarks/pii_quality.py --show-altered   # also prints every altered BANKING77 sentence

Systems compared:

* ``threadline``       - :mod:`threadline.text.pii` (this benchmark's subject).
* ``phonenumbers_us``  - libphonenumber's matcher alone, region US, leniency VALID (what a
  plain phonenumbers integration does; scrubadub's phone detector is the same for en_US).
* ``phonenumbers_4``   - the same over US, GB, DE and FR.
* ``scrubadub``        - scrubadub 2.x default detectors plus its (en_GB) postcode detector, when
  installed (it is not a dependency; ``pip install scrubadub==2.0.1`` to compare).

A planted item counts as found ("recall") when one detected span of the right kind covers all
of it; "covered" relaxes the kind (any marker hides it). Kinds ``iban`` and ``account`` are
scored separately. BANKING77 has no planted items: every altered sentence is listed so that a
person can judge it; the judgments live in :data:`BANKING77_TRUE_POSITIVES`.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("eval_pii")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "text" / "data" / "pii_corpus.jsonl"
HOLDOUT = ROOT / "tests" / "text" / "data" / "pii_holdout.jsonl"
DATA = ROOT.parent / "shared" / "data"
BANKING77 = DATA / "banking77" / "test.csv"
STAR = DATA / "star-support" / "conversations.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "pii_quality.json"

# BANKING77 sentences judged (by reading them) to contain real personal data, with the reason.
# Every other altered sentence counts as a false positive. None of the 3,080 test sentences
# holds a PIN, number or address: the ones about PINs and passcodes never state them.
BANKING77_TRUE_POSITIVES: dict[str, str] = {}

KINDS = ("email", "phone", "card", "iban", "account", "pin", "code", "password", "api_key", "address")

Span = tuple[int, int, str]
Detector = Callable[[str], Sequence[Span]]


def load_corpus(path: Path) -> list[dict[str, Any]]:
    """Planted corpus records: text plus items with kind, value, start, end (checked here)."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for item in record["items"]:
            assert record["text"][item["start"] : item["end"]] == item["value"], item
        records.append(record)
    return records


def load_banking77() -> list[str]:
    if not BANKING77.exists():
        raise SystemExit(f"shared data not found: {BANKING77} (see ../shared/data/README.md)")
    with BANKING77.open(encoding="utf-8", newline="") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


def load_star_customer_messages() -> list[str]:
    texts = []
    for line in STAR.read_text(encoding="utf-8").splitlines():
        for message in json.loads(line)["messages"]:
            if message["author"] == "customer":
                texts.append(message["text"])
    return texts


def score_corpus(detect: Detector, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall per kind (right kind, full cover), cover per kind (any kind), and false spans."""
    found: Counter[str] = Counter()
    covered: Counter[str] = Counter()
    total: Counter[str] = Counter()
    misses: list[dict[str, str]] = []
    false_spans: list[dict[str, str]] = []
    for record in records:
        text = record["text"]
        spans = list(detect(text))
        for item in record["items"]:
            kind = item["kind"]
            total[kind] += 1
            right = any(s <= item["start"] and e >= item["end"] and k == kind for s, e, k in spans)
            # "covered": every character of the value lies inside some span (spans may be split)
            inside = all(any(s <= i < e for s, e, _ in spans) for i in range(item["start"], item["end"]))
            found[kind] += right
            covered[kind] += inside
            if not right:
                misses.append({"kind": kind, "value": item["value"], "covered": str(inside)})
        for s, e, k in spans:
            if not any(s < item["end"] and e > item["start"] for item in record["items"]):
                false_spans.append({"kind": k, "text": text[s:e], "in": text})
    per_kind = {
        kind: {
            "planted": total[kind],
            "recall": round(found[kind] / total[kind], 4),
            "covered": round(covered[kind] / total[kind], 4),
        }
        for kind in KINDS
        if total[kind]
    }
    non_address = [k for k in total if k != "address"]
    n = sum(total[k] for k in non_address)
    return {
        "per_kind": per_kind,
        "recall_excluding_address": round(sum(found[k] for k in non_address) / n, 4),
        "covered_excluding_address": round(sum(covered[k] for k in non_address) / n, 4),
        "planted_excluding_address": n,
        "misses": misses,
        "false_spans": false_spans,
    }


def apply_spans(text: str, spans: Sequence[Span]) -> str:
    out, cursor = [], 0
    for s, e, k in sorted(spans):
        if s < cursor:
            s = cursor
        if e <= s:
            continue
        out.append(text[cursor:s])
        out.append(f"[{k}]")
        cursor = e
    out.append(text[cursor:])
    return "".join(out)


def score_banking77(detect: Detector, sentences: list[str]) -> dict[str, Any]:
    altered = []
    for text in sentences:
        spans = list(detect(text))
        if spans:
            altered.append({"text": text, "masked": apply_spans(text, spans)})
    true_pos = [a for a in altered if a["text"] in BANKING77_TRUE_POSITIVES]
    false_pos = [a for a in altered if a["text"] not in BANKING77_TRUE_POSITIVES]
    return {
        "sentences": len(sentences),
        "altered": len(altered),
        "altered_share": round(len(altered) / len(sentences), 5),
        "true_positive_sentences": len(true_pos),
        "false_positive_sentences": len(false_pos),
        "false_positive_share": round(len(false_pos) / len(sentences), 5),
        "true_positives": true_pos,
        "false_positives": false_pos,
    }


def timed(detect: Detector, texts: list[str]) -> dict[str, float]:
    chars = sum(len(t) for t in texts)
    start = time.perf_counter()
    for text in texts:
        detect(text)
    seconds = time.perf_counter() - start
    return {
        "texts": len(texts),
        "chars": chars,
        "seconds": round(seconds, 3),
        "chars_per_second": round(chars / seconds),
    }


# --- systems ------------------------------------------------------------------------------


def threadline_detector() -> Detector:
    from threadline.text import pii

    def detect(text: str) -> list[Span]:
        pii.clear_detection_cache()  # time the work, not the cache
        return [(s.start, s.end, s.kind.value) for s in pii.detect_pii(text)]

    return detect


def phonenumbers_detector(regions: Sequence[str]) -> Detector:
    import phonenumbers

    def detect(text: str) -> list[Span]:
        spans: list[Span] = []
        for region in regions:
            for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
                spans.append((m.start, m.end, "phone"))
        return spans

    return detect


def scrubadub_detector() -> Detector | None:
    try:
        import scrubadub  # type: ignore[import-untyped]
        import scrubadub.detectors  # type: ignore[import-untyped]
    except ImportError:
        logger.warning("scrubadub is not installed; skipped")
        return None
    scrubber = scrubadub.Scrubber()
    scrubber.add_detector(scrubadub.detectors.PostalCodeDetector(locale="en_GB"))
    kinds = {
        "email": "email",
        "phone": "phone",
        "credit_card": "card",
        "credential": "password",
        "postalcode": "address",
        "url": "url",
        "twitter": "twitter",
        "social_security_number": "ssn",
    }

    def detect(text: str) -> list[Span]:
        return [(f.beg, f.end, kinds.get(f.type, f.type)) for f in scrubber.iter_filth(text)]

    return detect


def evaluate(
    name: str, detect: Detector, corpora: dict[str, list[dict[str, Any]]], sentences: list[str], star: list[str]
) -> dict[str, Any]:
    result: dict[str, Any] = {name_: score_corpus(detect, records) for name_, records in corpora.items()}
    result["banking77"] = score_banking77(detect, sentences)
    star_altered = sum(1 for t in star if detect(t))
    result["star_customer_messages"] = {"messages": len(star), "altered": star_altered}
    result["speed_banking77"] = timed(detect, sentences)
    return result


def summary_line(name: str, result: dict[str, Any]) -> str:
    parts = [f"{name:16}"]
    for corpus in ("corpus", "holdout"):
        if corpus in result:
            parts.append(f"{corpus} recall {result[corpus]['recall_excluding_address']:.3f}")
    b = result["banking77"]
    parts.append(
        f"B77 altered {b['altered']}/{b['sentences']} ({b['altered_share']:.2%}, FP {b['false_positive_sentences']})"
    )
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show-altered", action="store_true", help="print every altered BANKING77 sentence")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    corpora = {"corpus": load_corpus(CORPUS)}
    if HOLDOUT.exists():
        corpora["holdout"] = load_corpus(HOLDOUT)
    sentences = load_banking77()
    star = load_star_customer_messages()

    systems: dict[str, Detector] = {
        "threadline": threadline_detector(),
        "phonenumbers_us": phonenumbers_detector(("US",)),
        "phonenumbers_4": phonenumbers_detector(("US", "GB", "DE", "FR")),
    }
    scrub = scrubadub_detector()
    if scrub is not None:
        systems["scrubadub"] = scrub

    results: dict[str, Any] = {"systems": {}}
    for name, detect in systems.items():
        results["systems"][name] = evaluate(name, detect, corpora, sentences, star)
        logger.info(summary_line(name, results["systems"][name]))

    ours = results["systems"]["threadline"]
    # worst-case throughput: digit-dense text (every group a phone/card candidate) vs prose
    dense = "1234 5678 " * 2000
    prose = " ".join(load_banking77()[:400])
    results["speed_worst_case"] = {
        "digit_dense_20k": timed(systems["threadline"], [dense]),
        "prose_20k": timed(systems["threadline"], [prose[:20_000]]),
    }
    by_kind: dict[str, dict[str, Any]] = defaultdict(dict)
    for corpus in corpora:
        for kind, row in ours[corpus]["per_kind"].items():
            by_kind[kind][corpus] = row
    logger.info("\nthreadline recall per kind (recall = right kind, full cover):")
    for kind in KINDS:
        row = by_kind.get(kind, {})
        cells = [f"{c}: {r['recall']:.3f} of {r['planted']}" for c, r in row.items()]
        logger.info(f"  {kind:9} " + " | ".join(cells))
    for corpus in corpora:
        for miss in ours[corpus]["misses"]:
            logger.info(
                f"  miss [{corpus}] {miss['kind']}: {miss['value']!r} (covered by another kind: {miss['covered']})"
            )
        for fs in ours[corpus]["false_spans"]:
            logger.info(f"  false span [{corpus}] {fs['kind']}: {fs['text']!r}")
    b = ours["banking77"]
    logger.info(
        f"\nBANKING77: {b['altered']} of {b['sentences']} altered ({b['altered_share']:.2%}); "
        f"true positives {b['true_positive_sentences']}, false positives {b['false_positive_sentences']}"
    )
    if args.show_altered or b["altered"]:
        for label in ("false_positives", "true_positives"):
            logger.info(f"  {label}:")
            for row in b[label]:
                logger.info(f"    {row['text']!r} -> {row['masked']!r}")
    if args.show_altered:
        for name, res in results["systems"].items():
            if name == "threadline":
                continue
            logger.info(f"\n{name} altered BANKING77 sentences:")
            for row in res["banking77"]["false_positives"] + res["banking77"]["true_positives"]:
                logger.info(f"    {row['text']!r} -> {row['masked']!r}")
    RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
