"""Embedding backends on BANKING77 test, in one process: ONNX Runtime int8 (the default) vs torch fp32.

Both backends are the product's own (`threadline.ai.torch_embeddings.LocalEmbedder` and
`threadline.ai.onnx_embeddings.OnnxEmbedder`, built into a fresh cache unless `--cache-dir`),
with the product's batching (64 texts per model call, sorted by length) and threads (torch: one
per core; ONNX: the default session layout, one single-threaded session per core on 2 cores).
Measured in the same run so both see the same machine state:
- the ONNX build (export + quantization) and the pre-use check, apart from embedding times;
- the default ONNX model also on one session of every core's thread (the layout before
  sessions ran side by side), timed in the same rounds: the layout's speed-up, and whether
  both layouts give identical vectors (`session_layout`);
- embedding wall time of the whole set, warm-up excluded, repeated and interleaved
  (torch, onnx, torch, onnx, ...) so background load hits both alike; median and best;
- per-text cosine between the backends' vectors (mean, min, low quantiles);
- `threadline eval`-style scores (NMI, ARI against the 77 intents, unassigned items as
  singletons) of the product's discovery (`threadline.themes.clustering.cluster_vectors`,
  not k-means) on each backend's vectors, for seeds 0, 1, 2: mean and spread (max - min);
- over 12 seeds (`discovery_stability`): how many seeds settle on each number of themes,
  NMI/ARI mean and SD, and on how many of the 220 3-seed subsets the issue's four discovery
  criteria hold, since a 3-seed mean would move by ~0.02 NMI if one seed landed on the other
  side of discovery's resolution choice (BANKING77 test: ~55 or ~72 themes, for every backend).
- per-text cosine on held-out texts the recipes were not chosen on (BANKING77 train, the
  customer side of each star-support conversation), for the default and every variant.
The load average at start and end is recorded: on a shared machine, the ratio is what counts.

With `--variants`, other int8 recipes (`VARIANTS`: 7-bit weights, chosen MatMuls kept in fp32)
are built too and timed in the same interleaved rounds; each gets its speed-up, its cosines and,
when its minimum cosine passes, its discovery scores, and the fastest recipe meeting both the
speed-up and the minimum-cosine targets is named (`variants.best`).

    .venv/bin/python benchmarks/embedding_backends.py [--repeats 3] [--cache-dir DIR] [--variants]

Writes benchmarks/results/embedding_backends.json.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from threadline.ai import onnx_embeddings as ob  # noqa: E402
from threadline.ai.torch_embeddings import LocalEmbedder  # noqa: E402
from threadline.eval.metrics import summary  # noqa: E402
from threadline.themes.clustering import CLUSTERING_VERSION, cluster_vectors  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "banking77" / "test.csv"
HELD_OUT_BANKING = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
HELD_OUT_STAR = ROOT.parent / "shared" / "data" / "star-support" / "conversations.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "embedding_backends.json"
DEFAULT_REPEATS = 3  # timed passes per backend, interleaved; the median is the reported time
#: Timed series of the default ONNX model on one session of all the cores' threads (intra-op
#: threads = cores), to compare with the default layout (`session_layout`) in the same rounds.
ONE_SESSION = "onnx-int8:one-session"
SEEDS = (0, 1, 2)  # discovery seeds per backend: the spread shows how much of a difference is noise
#: More discovery seeds per backend, for how often each settles on each number of themes: on BANKING77
#: test the parsimony rule's choice between ~55 and ~72 themes is close for every backend, so a seed
#: landing on the other side would move a 3-seed mean by ~0.02 NMI.
STABILITY_SEEDS = tuple(range(12))
WARMUP_TEXTS = 256  # texts embedded by each backend before timing (lazy init, allocator arenas)
TARGET_SPEEDUP = 2.2  # issue 17: ONNX int8 at least 2.2x faster than torch fp32
TARGET_MIN_COSINE = 0.98  # issue 17: every text's ONNX vector within this cosine of torch's
TARGET_SCORE_DELTA = 0.01  # issue 17: NMI and ARI within 0.01 of torch's (and within torch's own spread)
_LAYERS = "encoder.layer.?."  # the 6 layers of all-MiniLM-L6-v2 (one digit each)
#: Candidate int8 recipes besides the default (`--variants`): which MatMuls keep fp32 weights, or 7-bit weights.
VARIANTS: dict[str, ob.ExportSettings] = {
    # The default recipe with onnxruntime's SkipLayerNormalization fusion left on: cosines to torch as
    # the default's, other vectors, ~1.18x slower.
    "skip-layer-norm-fused": dataclasses.replace(ob.DEFAULT_SETTINGS, fuse_skip_layer_norm=True),
    # The default recipe with the exporter's five-node GELUs left as they are.
    "unfused-gelu": dataclasses.replace(ob.DEFAULT_SETTINGS, fuse_gelu=False),
    # The default before both: fused SkipLayerNormalization, five-node GELUs (`...-fp32last` vectors).
    "previous-default": dataclasses.replace(ob.DEFAULT_SETTINGS, fuse_skip_layer_norm=True, fuse_gelu=False),
    "reduce-range": ob.ExportSettings(reduce_range=True),
    "fp32-first-last-layer": ob.ExportSettings(
        fp32_weights=("encoder.layer.0.*", "encoder.layer.5.*"), fp32_label="fp32firstlast"
    ),
    "all-layers-int8": ob.ExportSettings(),  # every MatMul int8
    # Every other MatMul int8: faster than the default (3.87x torch against 3.24x) and closer per text on
    # BANKING77 test (min cosine 0.98734), but 0.98007 on held-out BANKING77 train, and discovery on its
    # vectors lands on ~55 themes on 2 of 12 seeds (NMI -0.0065, ARI -0.0167 against torch).
    "fp32-first-ffn-output": ob.ExportSettings(
        fp32_weights=("encoder.layer.0.output.dense.weight",), fp32_label="fp32firstffnout"
    ),
    "fp32-last-ffn": ob.ExportSettings(
        fp32_weights=("encoder.layer.5.intermediate.dense.weight", "encoder.layer.5.output.dense.weight"),
        fp32_label="fp32lastffn",
    ),
    "fp32-last-ffn-output": ob.ExportSettings(
        fp32_weights=("encoder.layer.5.output.dense.weight",), fp32_label="fp32lastffnout"
    ),
    "fp32-attention-output": ob.ExportSettings(
        fp32_weights=(_LAYERS + "attention.output.dense.weight",), fp32_label="fp32attnout"
    ),
    "ffn-only": ob.ExportSettings(fp32_weights=(_LAYERS + "attention.*",), fp32_label="ffnonly"),
    "fp32-ffn-output": ob.ExportSettings(fp32_weights=(_LAYERS + "output.dense.weight",), fp32_label="fp32ffnout"),
}


def _held_out_texts() -> dict[str, list[str]]:
    """Texts no recipe was chosen on: BANKING77 train queries, star-support customer sides."""
    sets: dict[str, list[str]] = {}
    with HELD_OUT_BANKING.open(newline="") as handle:
        sets["banking77_train"] = [row["text"] for row in csv.DictReader(handle)]
    with HELD_OUT_STAR.open(encoding="utf-8") as handle:
        sets["star_support_conversations"] = [
            " ".join(m["text"] for m in json.loads(line)["messages"] if m["author"] == "customer")
            for line in handle
            if line.strip()
        ]
    return sets


def _cosine_summary(cos: np.ndarray) -> dict[str, Any]:
    return {
        "mean": round(float(cos.mean()), 5),
        "min": round(float(cos.min()), 5),
        "p001": round(float(np.quantile(cos, 0.001)), 5),
        "below_0.98": int((cos < TARGET_MIN_COSINE).sum()),
    }


def _load() -> tuple[list[str], list[str]]:
    if not DATA.exists():
        raise SystemExit(f"shared data not found: {DATA}")
    with DATA.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def _discovery_per_seed(matrix: np.ndarray, texts: list[str], labels: list[str]) -> list[dict[str, Any]]:
    """Discovery's scores on ``matrix`` for each of `STABILITY_SEEDS` (which start with `SEEDS`)."""
    per_seed = []
    for seed in STABILITY_SEEDS:
        started = time.perf_counter()
        clustering = cluster_vectors(matrix, texts=texts, random_state=seed)
        scores = summary(labels, clustering.labels)
        per_seed.append(
            {
                "seed": seed,
                "nmi": scores["nmi"],
                "ari": scores["ari"],
                "themes": scores["n_themes"],
                "unassigned_share": scores["unassigned_share"],
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    return per_seed


def _discovery_scores(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's figures: mean and spread (max - min) of NMI and ARI over `SEEDS`."""
    per_seed = [r for r in runs if r["seed"] in SEEDS]
    nmis = [r["nmi"] for r in per_seed]
    aris = [r["ari"] for r in per_seed]
    return {
        "per_seed": per_seed,
        "nmi_mean": round(statistics.fmean(nmis), 4),
        "nmi_spread": round(max(nmis) - min(nmis), 4),
        "ari_mean": round(statistics.fmean(aris), 4),
        "ari_spread": round(max(aris) - min(aris), 4),
    }


def _discovery_criteria_met(runs: list[dict[str, Any]], torch_runs: list[dict[str, Any]]) -> bool:
    """The issue's four discovery criteria on these seeds' runs: NMI and ARI means within 0.01 and within torch's spread."""
    met = True
    for key in ("nmi", "ari"):
        reference = [r[key] for r in torch_runs]
        delta = statistics.fmean(r[key] for r in runs) - statistics.fmean(reference)
        met = met and abs(delta) <= TARGET_SCORE_DELTA and abs(delta) <= max(reference) - min(reference)
    return met


def _three_seed_pass_rate(runs: list[dict[str, Any]], torch_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of the 3-seed subsets of `STABILITY_SEEDS` on which the issue's discovery criteria hold.

    The criteria compare 3-seed means against torch's 3-seed spread; which three seeds are used
    decides the outcome more often than the vectors do when one seed's resolution choice flips.
    """
    subsets = list(itertools.combinations(range(len(runs)), len(SEEDS)))
    met = sum(_discovery_criteria_met([runs[i] for i in s], [torch_runs[i] for i in s]) for s in subsets)
    return {"subsets": len(subsets), "passing": met, "share": round(met / len(subsets), 3)}


def _stability(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Over all `STABILITY_SEEDS`: how many seeds gave each number of themes; NMI/ARI mean and SD."""
    nmis = [r["nmi"] for r in runs]
    aris = [r["ari"] for r in runs]
    themes: dict[str, int] = {}
    for r in sorted(runs, key=lambda r: r["themes"]):
        themes[str(r["themes"])] = themes.get(str(r["themes"]), 0) + 1
    return {
        "seeds": len(runs),
        "seeds_per_theme_count": themes,
        "nmi_mean": round(statistics.fmean(nmis), 4),
        "nmi_sd": round(statistics.stdev(nmis), 4),
        "ari_mean": round(statistics.fmean(aris), 4),
        "ari_sd": round(statistics.stdev(aris), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--cache-dir", type=Path, default=None, help="reuse this model cache (default: fresh)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--variants", action="store_true", help="also build and measure the `VARIANTS` recipes")
    parser.add_argument(
        "--variant",
        action="append",
        choices=sorted(VARIANTS),
        help="only these variants (repeatable; implies --variants)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger(ob.__name__).setLevel(logging.INFO)
    log = logging.getLogger("bench")
    log.setLevel(logging.INFO)

    texts, labels = _load()
    load_start = os.getloadavg()
    fresh = args.cache_dir is None
    cache = Path(tempfile.mkdtemp(prefix="threadline-onnx-bench-")) if fresh else args.cache_dir
    try:
        started = time.perf_counter()
        model_path = ob.build_model(None, cache)
        build_call_s = time.perf_counter() - started
        manifest = json.loads((model_path.parent / ob.MANIFEST_FILE).read_text())
        started = time.perf_counter()
        torch_backend = LocalEmbedder()
        torch_load_s = time.perf_counter() - started
        started = time.perf_counter()
        onnx_backend = ob.load_best_embedder(cache, "onnx-int8", torch_factory=lambda _d: torch_backend)
        onnx_load_and_check_s = time.perf_counter() - started
        assert isinstance(onnx_backend, ob.OnnxEmbedder)
        check = json.loads(sorted(model_path.parent.glob("verification-*.json"))[-1].read_text())

        # The default model on one session of every core's thread: the layout before sessions ran side by side.
        one_session = ob.OnnxEmbedder(model_path, layout=(sum(ob.SESSION_LAYOUT),))
        backends: dict[str, Any] = {
            "torch-fp32": torch_backend,
            "onnx-int8": onnx_backend,
            ONE_SESSION: one_session,
        }
        variant_builds: dict[str, dict[str, Any]] = {}
        chosen = {label: VARIANTS[label] for label in args.variant or VARIANTS}
        args.variants = args.variants or bool(args.variant)
        for label, variant in chosen.items() if args.variants else ():
            started = time.perf_counter()
            path = ob.build_model(None, cache, variant)
            variant_builds[label] = {
                "build_s": round(time.perf_counter() - started, 2),
                "model_name": variant.model_name(),
                "export": variant.as_dict(),
            }
            backends[f"variant:{label}"] = ob.OnnxEmbedder(path)
            log.info("built variant %s in %.1f s", label, variant_builds[label]["build_s"])
        for backend in backends.values():
            backend.embed(texts[:WARMUP_TEXTS])
        times: dict[str, list[float]] = {name: [] for name in backends}
        vectors: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):
            for name, backend in backends.items():
                started = time.perf_counter()
                vectors[name] = backend.embed(texts)
                times[name].append(time.perf_counter() - started)
                log.info("%s: %.2f s (load %.1f)", name, times[name][-1], os.getloadavg()[0])
        cosines = {name: (vectors["torch-fp32"] * matrix).sum(axis=1) for name, matrix in vectors.items()}
        held_out: dict[str, dict[str, Any]] = {}
        for set_name, held_texts in _held_out_texts().items():
            reference = torch_backend.embed(held_texts)
            held_out[set_name] = {
                name: _cosine_summary((reference * backend.embed(held_texts)).sum(axis=1))
                for name, backend in backends.items()
                if name not in ("torch-fp32", ONE_SESSION)
            }
            log.info("held-out %s: %s", set_name, {k: v["min"] for k, v in held_out[set_name].items()})
        cos = cosines["onnx-int8"]
        # Discovery for torch, the default and every variant whose vectors pass the minimum cosine.
        discovery_runs = {
            name: _discovery_per_seed(matrix, texts, labels)
            for name, matrix in vectors.items()
            if name != ONE_SESSION
            and (not name.startswith("variant:") or float(cosines[name].min()) >= TARGET_MIN_COSINE)
        }
        discovery = {name: _discovery_scores(runs) for name, runs in discovery_runs.items()}
        stability = {name: _stability(runs) for name, runs in discovery_runs.items()}
        for name, runs in discovery_runs.items():
            if name != "torch-fp32":
                stability[name]["three_seed_criteria"] = _three_seed_pass_rate(runs, discovery_runs["torch-fp32"])
                for key in ("nmi", "ari"):
                    reference = stability["torch-fp32"][f"{key}_mean"]
                    stability[name][f"{key}_delta_vs_torch"] = round(stability[name][f"{key}_mean"] - reference, 4)
        same_vectors = bool(np.array_equal(vectors[ONE_SESSION], vectors["onnx-int8"]))
    finally:
        if fresh:
            shutil.rmtree(cache, ignore_errors=True)

    median = {name: statistics.median(t) for name, t in times.items()}
    best = {name: min(t) for name, t in times.items()}
    speedup = median["torch-fp32"] / median["onnx-int8"]
    candidates: dict[str, dict[str, Any]] = {}
    for name in ["onnx-int8", *(n for n in backends if n.startswith("variant:"))]:
        label = name.removeprefix("variant:") if name != "onnx-int8" else "default"
        c = cosines[name]
        row: dict[str, Any] = {
            **({"model_name": ob.DEFAULT_SETTINGS.model_name()} if name == "onnx-int8" else variant_builds[label]),
            "time_s": {"runs": [round(x, 2) for x in times[name]], "median": round(median[name], 2)},
            "speedup_median": round(median["torch-fp32"] / median[name], 3),
            "cosine": {
                "mean": round(float(c.mean()), 5),
                "min": round(float(c.min()), 5),
                "below_0.98": int((c < TARGET_MIN_COSINE).sum()),
            },
            "held_out_min_cosine": {set_name: rows[name]["min"] for set_name, rows in held_out.items()},
        }
        if name in discovery:
            row["discovery_delta_vs_torch"] = {
                key: round(discovery[name][f"{key}_mean"] - discovery["torch-fp32"][f"{key}_mean"], 4)
                for key in ("nmi", "ari")
            }
        row["passes"] = row["speedup_median"] >= TARGET_SPEEDUP and row["cosine"]["min"] >= TARGET_MIN_COSINE
        candidates[label] = row
    passing = [label for label, row in candidates.items() if row["passes"]]
    best_variant = max(passing, key=lambda label: candidates[label]["speedup_median"], default=None)
    d_nmi = discovery["onnx-int8"]["nmi_mean"] - discovery["torch-fp32"]["nmi_mean"]
    d_ari = discovery["onnx-int8"]["ari_mean"] - discovery["torch-fp32"]["ari_mean"]
    targets = {
        "speedup_at_least_2.2": speedup >= TARGET_SPEEDUP,
        "min_cosine_at_least_0.98": float(cos.min()) >= TARGET_MIN_COSINE,
        "nmi_within_0.01": abs(d_nmi) <= TARGET_SCORE_DELTA,
        "ari_within_0.01": abs(d_ari) <= TARGET_SCORE_DELTA,
        "nmi_within_torch_spread": abs(d_nmi) <= discovery["torch-fp32"]["nmi_spread"],
        "ari_within_torch_spread": abs(d_ari) <= discovery["torch-fp32"]["ari_spread"],
    }
    result = {
        "data": {"path": "banking77/test.csv", "texts": len(texts), "categories": len(set(labels))},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "onnx_session_layout": list(ob.SESSION_LAYOUT),
            "allow_spinning": ob.ALLOW_SPINNING,
            "batch_size": ob.BATCH_SIZE,
            "repeats": args.repeats,
            "export": ob.DEFAULT_SETTINGS.as_dict(),
            "onnx_model_name": onnx_backend.model_name,
            "torch_model_name": torch_backend.model_name,
            "clustering_version": CLUSTERING_VERSION,
            "seeds": list(SEEDS),
        },
        "versions": ob.library_versions(
            ("torch", "transformers", "sentence-transformers", "tokenizers", "onnx", "onnxscript", "onnxruntime")
        ),
        "build": {
            "fresh_cache": fresh,
            "build_model_call_s": round(build_call_s, 2),
            "build_s_from_manifest": manifest.get("build_seconds"),
            "model_file_bytes": manifest.get("model_bytes"),
            "torch_load_s": round(torch_load_s, 2),
            "onnx_load_and_check_s": round(onnx_load_and_check_s, 2),
            "check": {k: check.get(k) for k in ("mean_cosine", "min_cosine", "sentences", "seconds")},
        },
        "time_s": {
            name: {"runs": [round(x, 2) for x in t], "median": round(median[name], 2), "best": round(best[name], 2)}
            for name, t in times.items()
        },
        "speedup_median": round(speedup, 3),
        "speedup_best": round(best["torch-fp32"] / best["onnx-int8"], 3),
        "session_layout": {
            "default": list(ob.SESSION_LAYOUT),
            "one_session": [sum(ob.SESSION_LAYOUT)],
            "default_speedup_vs_one_session_median": round(median[ONE_SESSION] / median["onnx-int8"], 3),
            "identical_vectors": same_vectors,
        },
        "cosine_onnx_vs_torch": _cosine_summary(cos),
        "cosine_onnx_vs_torch_held_out": {set_name: rows["onnx-int8"] for set_name, rows in held_out.items()},
        "discovery": discovery,
        "discovery_delta_onnx_minus_torch": {"nmi": round(d_nmi, 4), "ari": round(d_ari, 4)},
        "targets_met": targets,
        "discovery_stability": stability,
    }
    if args.variants:
        result["variants"] = {"recipes": candidates, "best": best_variant}
        for label, row in candidates.items():
            log.info(
                "%s: %.2fx, cosine mean %.4f min %.4f%s",
                label,
                row["speedup_median"],
                row["cosine"]["mean"],
                row["cosine"]["min"],
                " (passes)" if row["passes"] else "",
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log.info(
        "torch %.2f s, onnx %.2f s (median of %d): %.2fx; cosine mean %.4f min %.4f; NMI %.4f vs %.4f, ARI %.4f vs %.4f",
        median["torch-fp32"],
        median["onnx-int8"],
        args.repeats,
        speedup,
        cos.mean(),
        cos.min(),
        discovery["onnx-int8"]["nmi_mean"],
        discovery["torch-fp32"]["nmi_mean"],
        discovery["onnx-int8"]["ari_mean"],
        discovery["torch-fp32"]["ari_mean"],
    )
    log.info("targets: %s; wrote %s", targets, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
