"""The embedding backends: ONNX int8 vs torch fp32, their cache keys, the check and fallback,
one build under concurrent first use, and runs pinned to a backend that only able workers serve.

The ONNX model is built once per test session into a shared temporary cache (a build costs
~15-25 s here); the concurrency test builds once more into its own empty cache, on purpose.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from safetensors.numpy import save as save_safetensors
from sqlalchemy import func, select, text
from support import EXAMPLES

from threadline.ai import embeddings as emb
from threadline.ai import onnx_embeddings as ob
from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Embedding, Run, RunItem
from threadline.engine.defer import QUEUE
from threadline.engine.errors import PermanentError
from threadline.engine.lifecycle import BATCH_TASK, WHOLE_TASK
from threadline.engine.runs import create_run, member_ids
from threadline.engine.status import RunStatus
from threadline.engine.worker import run_worker_async
from threadline.stages.embed import (
    BACKEND_PARAM,
    MODEL_PARAM,
    QUEUE_PREFIX,
    embed_conversations,
    run_embedder,
    worker_queues,
)
from threadline.stages.themes import discover_themes

#: Processes racing for the first build in the concurrency test.
RACERS = 3
#: Seconds a racer may take (a build under heavy load on 2 shared cores).
RACE_TIMEOUT_S = 900
#: Seconds a worker is given to (not) pick up a run's embed batches.
IDLE_WORKER_S = 6.0


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the built, checked default ONNX artifact (built once per session)."""
    cache = tmp_path_factory.mktemp("onnx-models")
    ob.build_model(None, cache)
    return cache


@pytest.fixture(scope="session")
def onnx_embedder(onnx_cache: Path, embedder) -> ob.OnnxEmbedder:
    chosen = ob.load_best_embedder(onnx_cache, prefer="onnx-int8", torch_factory=lambda _d: embedder)
    assert isinstance(chosen, ob.OnnxEmbedder)
    return chosen


@pytest.fixture()
def process_embedder_restored():
    """Tests that set this process's embedder put the previous one back."""
    previous = emb._process_embedder
    yield
    emb.set_process_embedder(previous)


def test_backends_have_their_own_model_names_rows_and_themes(db_engine, onnx_embedder, embedder):
    """Two backends -> two model names -> two embedding rows per conversation; discovery reads one model's only."""
    assert (
        onnx_embedder.model_name
        == "sentence-transformers/all-MiniLM-L6-v2+onnx-int8-matmul-perchannel-fp32last-plainln-gelu"
    )
    assert onnx_embedder.model_name != embedder.model_name == emb.MODEL_NAME
    assert emb.BACKEND_MODELS == {"onnx-int8": onnx_embedder.model_name, "torch": embedder.model_name}
    assert import_file(db_engine, EXAMPLES, source_name="demo").ok
    with session_scope(db_engine) as session:
        run = create_run(session, phases=["embed", "themes"])
        run_id = run.id
        ids = member_ids(session, run_id)
        torch_result = embed_conversations(session, ids, embedder)
        onnx_result = embed_conversations(session, ids, onnx_embedder)
        assert torch_result.computed == onnx_result.computed > 0  # the torch rows were not reused for ONNX
        counts = dict(session.execute(select(Embedding.model, func.count()).group_by(Embedding.model)).all())
        assert counts == {embedder.model_name: torch_result.computed, onnx_embedder.model_name: onnx_result.computed}
        torch_themes, _ = discover_themes(session, run_id, model=embedder.model_name)
        onnx_themes, _ = discover_themes(session, run_id, model=onnx_embedder.model_name)
        # each clustering saw one vector per conversation: its own backend's, never both
        assert torch_themes.conversations == onnx_themes.conversations == torch_result.computed


def test_a_failed_check_falls_back_to_torch_with_a_warning(onnx_cache, embedder, caplog):
    caplog.set_level(logging.WARNING)
    chosen = ob.load_best_embedder(onnx_cache, prefer="auto", min_cosine=1.01, torch_factory=lambda _d: embedder)
    assert chosen is embedder
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("falling back to torch" in m and "< required 1.01" in m for m in warnings), warnings
    with pytest.raises(ob.OnnxBackendError):  # asked for ONNX explicitly: no silent fallback
        ob.load_best_embedder(onnx_cache, prefer="onnx-int8", min_cosine=1.01, torch_factory=lambda _d: embedder)


def test_the_settings_choose_the_backend_and_a_failed_check_plans_torch(
    onnx_cache, onnx_embedder, tmp_path, monkeypatch, embedder, caplog
):
    """An explicit setting wins; `auto` plans ONNX unless the stored check is below `min_cosine`."""
    (tmp_path / "models").symlink_to(onnx_cache)  # the session's built and checked artifact
    monkeypatch.setenv("THREADLINE_HOME", str(tmp_path))
    for setting, planned in (("torch", "torch"), ("onnx-int8", "onnx-int8"), ("auto", "onnx-int8")):
        monkeypatch.setenv("THREADLINE_EMBEDDING_BACKEND", setting)
        emb.get_settings.cache_clear()
        assert emb.planned_backend() == planned
    monkeypatch.setenv("THREADLINE_EMBEDDING_MIN_COSINE", "1.01")  # the stored check is below it
    emb.get_settings.cache_clear()
    assert emb.planned_backend() == "torch"
    caplog.set_level(logging.WARNING)
    assert emb.select_embedder() is embedder  # `auto` falls back to the shared torch embedder
    assert any("falling back to torch" in r.getMessage() for r in caplog.records)


def test_without_onnxruntime_the_product_plans_and_embeds_with_torch(monkeypatch, caplog, process_embedder_restored):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    monkeypatch.setenv("THREADLINE_EMBEDDING_BACKEND", "auto")
    emb.get_settings.cache_clear()
    emb.set_process_embedder(None)
    assert emb.planned_backend() == "torch"
    caplog.set_level(logging.WARNING)
    assert worker_queues() == [f"{QUEUE_PREFIX}torch"]
    assert any("onnxruntime is not installed" in r.getMessage() for r in caplog.records)


def _varied_texts(count: int) -> list[str]:
    """Texts of 1 to ~60 words, so sorted batches pad to different widths."""
    words = "my card payment was declined twice while the app kept showing an error code".split()
    return [" ".join(words[j % len(words)] for j in range(1 + (i * 7) % 60)) + f" #{i}" for i in range(count)]


#: Seconds a session waits for the others at the start of a call before the test gives up.
SESSION_MEET_TIMEOUT_S = 60


def test_sessions_side_by_side_give_the_vectors_of_one_session(onnx_embedder):
    """Batches dealt to three single-threaded sessions, all running at once, come back as one 2-thread session's."""
    texts = _varied_texts(150)
    model_path = onnx_embedder.model_path
    with (
        ob.OnnxEmbedder(model_path, layout=(2,), batch_size=16) as one,
        ob.OnnxEmbedder(model_path, layout=(1, 1, 1), batch_size=16) as three,
    ):
        meet = threading.Barrier(3, timeout=SESSION_MEET_TIMEOUT_S)
        ran_on: set[str] = set()
        run_batch = three._run_batch

        def spy(session, token_ids):
            name = threading.current_thread().name
            if name not in ran_on:
                ran_on.add(name)
                meet.wait()  # each session's first batch waits until all three are running one
            return run_batch(session, token_ids)

        three._run_batch = spy  # type: ignore[method-assign]
        expected = one.embed(texts)
        assert np.array_equal(three.embed(texts), expected)
        assert len(ran_on) == 3, ran_on

        ran_on.clear()
        meet = threading.Barrier(1)
        assert np.array_equal(three.embed(texts[:5]), one.embed(texts[:5]))
        assert len(ran_on) == 1 and next(iter(ran_on)).startswith("threadline-onnx_"), ran_on  # the model thread
        assert three.embed([]).shape == (0, ob.DIMENSIONS)


def test_a_call_runs_its_longest_batches_first(onnx_embedder):
    """Sessions take the widest batches first, so they end together on narrow ones; the batches stay the same."""
    texts = _varied_texts(60)
    with ob.OnnxEmbedder(onnx_embedder.model_path, layout=(1,), batch_size=8) as embedder:
        widths: list[int] = []
        run_batch = embedder._run_batch

        def spy(session, token_ids):
            widths.append(max(len(ids) for ids in token_ids))
            return run_batch(session, token_ids)

        embedder._run_batch = spy  # type: ignore[method-assign]
        vectors = embedder.embed(texts)
        assert len(widths) == 8 and widths == sorted(widths, reverse=True) and widths[0] > widths[-1], widths
        # The batches are still cut from the shortest text up (the last holds the 4 longest), so
        # each batch's vectors are those of its texts embedded on their own.
        lengths = [len(e.ids) for e in embedder._tokenizer.encode_batch(texts)]
        order = np.argsort(lengths, kind="stable")
        for rows in (order[:8], order[56:]):
            assert np.array_equal(vectors[rows], embedder.embed([texts[i] for i in rows]))


def test_a_failing_session_fails_the_call_after_every_session_stopped(onnx_embedder):
    """A helper session's error is raised, the others stop taking batches, and none runs on after the call."""
    with ob.OnnxEmbedder(onnx_embedder.model_path, layout=(1, 1, 1), batch_size=8) as embedder:
        failing, slow = embedder._sessions[1], embedder._sessions[2]
        run_batch = embedder._run_batch
        started: list[bool] = []  # one entry per batch begun: whether a session had failed by then
        finished: list[int] = []  # one entry per batch a session got through
        failed, slow_began = threading.Event(), threading.Event()

        def spy(session, token_ids):
            started.append(failed.is_set())
            if session is failing:
                slow_began.wait(timeout=SESSION_MEET_TIMEOUT_S)
                failed.set()
                raise RuntimeError("session failed")
            if session is slow:
                slow_began.set()
                time.sleep(0.5)  # still busy when the other helper fails
            vectors = run_batch(session, token_ids)
            finished.append(len(token_ids))
            return vectors

        embedder._run_batch = spy  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="session failed"):
            embedder.embed(_varied_texts(120))  # 15 batches
        begun, done = len(started), len(finished)
        time.sleep(1.0)
        assert (len(started), len(finished)) == (begun, done), "a session ran on after the call had failed"
        assert sum(started) <= 2, started  # after the failure: at most the batch each other session had taken
        embedder._run_batch = run_batch  # type: ignore[method-assign]
        assert np.isclose(np.linalg.norm(embedder.embed(_varied_texts(64)), axis=1), 1.0).all()  # usable after


def test_a_run_planned_for_another_recipe_is_not_served_with_this_one(embedder, process_embedder_restored):
    """A run keeps the vectors it was planned with: after an upgrade changed the recipe, its batches fail clearly."""
    emb.set_process_embedder(embedder)
    assert run_embedder({BACKEND_PARAM: "torch", MODEL_PARAM: embedder.model_name}).model_name == embedder.model_name
    older_onnx = "sentence-transformers/all-MiniLM-L6-v2+onnx-int8-matmul-perchannel-fp32last"
    with pytest.raises(PermanentError, match=f"planned for {re.escape(older_onnx)} vectors.*start a new run"):
        run_embedder({BACKEND_PARAM: "torch", MODEL_PARAM: older_onnx})
    assert run_embedder({}) is embedder  # runs from before backends were planned: the process's embedder


def _optimized_op_counts(model_path: Path, fuse_skip_layer_norm: bool, out: Path) -> dict[str, int]:
    """Node counts of the graph an embedder's session runs, as onnxruntime saves it after optimizing."""
    import onnxruntime as ort

    options = ob._session_options(1, allow_spinning=False)
    options.optimized_model_filepath = str(out)
    ort.InferenceSession(
        str(model_path),
        sess_options=options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=ob.disabled_optimizers(fuse_skip_layer_norm),
    )
    return Counter(node.op_type for node in onnx.load(str(out)).graph.node)


def test_the_default_sessions_keep_residual_add_and_layer_norm_apart(onnx_embedder, tmp_path):
    """Sessions of the default artifact run no SkipLayerNormalization (slow on CPU); fused recipes' sessions do."""
    assert onnx_embedder.fuse_skip_layer_norm is False
    model_path = onnx_embedder.model_path
    plain = _optimized_op_counts(model_path, False, tmp_path / "plain.onnx")
    fused = _optimized_op_counts(model_path, True, tmp_path / "fused.onnx")
    assert plain.get("SkipLayerNormalization", 0) == 0
    built = Counter(node.op_type for node in onnx.load(str(model_path)).graph.node)
    assert built["Gelu"] == 6 and built["Erf"] == 0  # one Gelu node per layer, written into the artifact
    assert plain["LayerNormalization"] == fused.get("LayerNormalization", 0) + fused["SkipLayerNormalization"]
    assert fused["SkipLayerNormalization"] >= 12  # two residual LayerNorms in each of the 6 layers

    # The artifact's manifest says how its vectors were made; one from before the setting existed ran fused.
    fused_settings = dataclasses.replace(ob.DEFAULT_SETTINGS, fuse_skip_layer_norm=True)
    for name, settings, expected in (
        ("fused", fused_settings.as_dict(), True),
        ("older", {k: v for k, v in fused_settings.as_dict().items() if k != "fuse_skip_layer_norm"}, True),
        ("default", ob.DEFAULT_SETTINGS.as_dict(), False),
    ):
        artifact = tmp_path / name
        artifact.mkdir()
        (artifact / ob.MODEL_FILE).symlink_to(model_path)
        (artifact / ob.MANIFEST_FILE).write_text(json.dumps({"model_name": name, "settings": settings}))
        with ob.OnnxEmbedder(artifact / ob.MODEL_FILE, layout=(1,)) as embedder:
            assert embedder.fuse_skip_layer_norm is expected, name
    # Fused sessions make other vectors: they carry another name, and have their own artifact.
    assert fused_settings.model_name() != ob.DEFAULT_SETTINGS.model_name()
    assert "-plainln" in ob.DEFAULT_SETTINGS.model_name() and "-plainln" not in fused_settings.model_name()
    versions = {"onnxruntime": "x"}
    assert ob.cache_key("0" * 64, fused_settings, versions) != ob.cache_key("0" * 64, ob.DEFAULT_SETTINGS, versions)


@pytest.mark.parametrize(
    ("cores", "sessions", "threads", "layout"),
    [
        (2, 0, 0, (1, 1)),  # this machine: one single-threaded session per core
        (1, 0, 0, (1,)),
        (4, 0, 0, (1, 1, 1, 1)),
        (6, 0, 0, (2, 2, 1, 1)),  # at most MAX_SESSIONS sessions, every core dealt out
        (16, 0, 0, (4, 4, 4, 4)),
        (2, 1, 0, (2,)),  # one session: it gets every core
        (2, 3, 0, (1, 1, 1)),  # more sessions than cores: one thread each
        (8, 0, 1, (1,)),  # threads alone: one session of that many threads
        (2, 3, 2, (2, 2, 2)),  # both given: as given
    ],
)
def test_session_layout_deals_out_the_cores(cores, sessions, threads, layout):
    assert ob.session_layout(cores, sessions, threads) == layout


def test_the_settings_choose_sessions_and_threads(onnx_cache, tmp_path, monkeypatch):
    (tmp_path / "models").symlink_to(onnx_cache)
    monkeypatch.setenv("THREADLINE_HOME", str(tmp_path))
    monkeypatch.setenv("THREADLINE_EMBEDDING_SESSIONS", "3")
    monkeypatch.setenv("THREADLINE_EMBEDDING_INTRA_OP_THREADS", "2")
    emb.get_settings.cache_clear()
    chosen = emb.select_embedder("onnx-int8")
    assert isinstance(chosen, ob.OnnxEmbedder)
    with chosen:
        assert [s.get_session_options().intra_op_num_threads for s in chosen._sessions] == [2, 2, 2]
    monkeypatch.delenv("THREADLINE_EMBEDDING_SESSIONS")
    monkeypatch.setenv("THREADLINE_EMBEDDING_INTRA_OP_THREADS", "1")  # threads alone: one session
    emb.get_settings.cache_clear()
    with emb.select_embedder("onnx-int8") as chosen:
        assert [s.get_session_options().intra_op_num_threads for s in chosen._sessions] == [1]


_RACER = """
import logging, os, sys, time
from pathlib import Path
from threadline.ai import onnx_embeddings as ob
cache, log_file, go = sys.argv[1:4]
handler = logging.FileHandler(log_file)
handler.setFormatter(logging.Formatter("%(process)d %(levelname)s %(message)s"))
logging.getLogger(ob.__name__).addHandler(handler)
logging.getLogger(ob.__name__).setLevel(logging.INFO)
while not os.path.exists(go):
    time.sleep(0.01)
embedder = ob.load_best_embedder(Path(cache), prefer="onnx-int8")
vector = embedder.embed(["I was charged twice for the same order."])
print(os.getpid(), embedder.model_path, embedder.model_name, vector.tobytes().hex())
"""


def test_concurrent_first_use_builds_the_model_once(tmp_path):
    cache = tmp_path / "cache"  # empty: no racer may find a finished artifact
    go = tmp_path / "go"
    logs = [tmp_path / f"racer-{i}.log" for i in range(RACERS)]
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(cache), str(log), str(go)], stdout=subprocess.PIPE, text=True
        )
        for log in logs
    ]
    time.sleep(1.0)  # let every racer reach its wait
    go.touch()
    outputs = [racer.communicate(timeout=RACE_TIMEOUT_S)[0] for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * RACERS
    lines = [line for log in logs for line in log.read_text().splitlines()]
    builds = [line for line in lines if "building ONNX int8 model" in line]
    checks = [line for line in lines if "against torch" in line]
    assert len(builds) == 1, lines
    assert len(checks) == 1, lines
    outcomes = [out.split() for out in outputs]
    assert len({o[1] for o in outcomes}) == 1 and {o[2] for o in outcomes} == {ob.ONNX_MODEL_NAME}
    assert len({o[3] for o in outcomes}) == 1, "every process computes the same vector from the one artifact"
    model = Path(outcomes[0][1])
    manifest = json.loads((model.parent / ob.MANIFEST_FILE).read_text())
    assert builds[0].split()[0] == str(manifest["built_by_pid"])
    assert [p for p in cache.iterdir() if not p.name.startswith(".")] == [model.parent]
    assert not list(cache.glob(".build-*"))


def _pending_embed_items(engine, run_id: int) -> int:
    with session_scope(engine) as session:
        return session.execute(
            select(func.count()).where(RunItem.run_id == run_id, RunItem.stage == "embed", RunItem.state == "pending")
        ).scalar_one()


def test_an_onnx_run_is_left_to_workers_that_provide_onnx(
    db_engine, cli_env, onnx_embedder, monkeypatch, caplog, process_embedder_restored
):
    assert import_file(db_engine, EXAMPLES, source_name="demo").ok
    monkeypatch.setenv("THREADLINE_EMBEDDING_BACKEND", "onnx-int8")
    emb.get_settings.cache_clear()
    with session_scope(db_engine) as session:
        run = create_run(session, phases=["embed", "themes"])
        run_id, params = run.id, dict(run.params)
    assert params[BACKEND_PARAM] == "onnx-int8" and params[MODEL_PARAM] == onnx_embedder.model_name
    total = _pending_embed_items(db_engine, run_id)
    assert total > 0

    # A worker without ONNX Runtime serves the default queue and torch's embed queue only, and says why.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setenv("THREADLINE_EMBEDDING_BACKEND", "auto")
    emb.get_settings.cache_clear()
    emb.set_process_embedder(None)
    caplog.set_level(logging.INFO)
    deadline = time.monotonic() + IDLE_WORKER_S
    asyncio.run(run_worker_async(db_engine, until=lambda: time.monotonic() > deadline, install_signal_handlers=False))
    assert any("leaves onnx-int8 runs" in r.getMessage() for r in caplog.records)
    assert any(f"{QUEUE}, {QUEUE_PREFIX}torch" in r.getMessage() for r in caplog.records)
    assert _pending_embed_items(db_engine, run_id) == total  # not one batch taken
    with session_scope(db_engine) as session:
        assert not RunStatus(session.get(Run, run_id).status).is_final

    # A worker that provides ONNX takes them and the run succeeds with ONNX vectors.
    monkeypatch.delitem(sys.modules, "onnxruntime")
    emb.set_process_embedder(onnx_embedder)

    def finished() -> bool:
        with session_scope(db_engine) as session:
            return RunStatus(session.get(Run, run_id).status).is_final

    asyncio.run(run_worker_async(db_engine, until=finished, install_signal_handlers=False))
    with session_scope(db_engine) as session:
        assert session.get(Run, run_id).status == "succeeded"
        models = set(session.execute(select(Embedding.model).distinct()).scalars())
    assert models == {onnx_embedder.model_name}
    with session_scope(db_engine) as session:  # themes embeds name candidates: it follows the backend too
        queues = dict(session.execute(text("SELECT task_name, queue_name FROM procrastinate_jobs")).all())
    assert queues[WHOLE_TASK] == queues[BATCH_TASK] == f"{QUEUE_PREFIX}onnx-int8"
    shown = subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", "runs", "show", str(run_id)],
        env={**cli_env, "COLUMNS": "200"},  # one line, however long the model name
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"embedding backend onnx-int8 ({onnx_embedder.model_name})" in shown.stdout, shown.stderr[-2000:]


def _tiny_encoder(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A graph of one MatMul per weight, its constant operand the weight transposed (as the exporter writes it)."""
    nodes, initializers = [], []
    for index, weight in enumerate(weights.values()):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(weight.T), name=f"val_{index}"))
        nodes.append(helper.make_node("MatMul", ["x", f"val_{index}"], [f"y_{index}"], name=f"node_MatMul_{index}"))
    outputs = [helper.make_tensor_value_info(n.output[0], onnx.TensorProto.FLOAT, None) for n in nodes]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    return helper.make_model(helper.make_graph(nodes, "tiny", [x], outputs, initializers))


def _erf_gelu_graph() -> onnx.ModelProto:
    """y = h * (0.5 * (1 + erf(h / sqrt(2)))) with h = x + bias, node for node as the dynamo exporter writes BERT's GELU."""
    constants = [
        numpy_helper.from_array(np.array(value, dtype=np.float32), name=name)
        for name, value in (("sqrt2", 1.4142135381698608), ("one", 1.0), ("half", 0.5))
    ]
    constants.append(numpy_helper.from_array(np.linspace(-1, 1, 8, dtype=np.float32), name="bias"))
    nodes = [
        helper.make_node("Add", ["x", "bias"], ["h"]),  # the intermediate layer's bias, as in the model
        helper.make_node("Div", ["h", "sqrt2"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["shifted"]),
        helper.make_node("Mul", ["half", "shifted"], ["gate"]),
        helper.make_node("Mul", ["h", "gate"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 8])
    graph = helper.make_graph(nodes, "gelu", [x], [y], constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_gelu_fusion_computes_the_same_function_and_refuses_a_graph_without_gelu(tmp_path):
    """Five exporter nodes become one Gelu node with the same outputs; a graph with none to fuse fails its build."""
    import onnxruntime as ort

    model = tmp_path / "gelu.onnx"
    onnx.save(_erf_gelu_graph(), str(model))
    x = np.linspace(-4, 4, 16, dtype=np.float32).reshape(2, 8)
    before = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ob._fuse_gelu(model)
    fused = onnx.load(str(model))
    assert [node.op_type for node in fused.graph.node] == ["Add", "Gelu"]
    after = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(after, before, rtol=0, atol=1e-6)

    plain = tmp_path / "no-gelu.onnx"
    onnx.save(_tiny_encoder({"w": np.eye(4, dtype=np.float32)}), str(plain))
    with pytest.raises(ob.OnnxBackendError, match="GELU fusion"):
        ob._fuse_gelu(plain)
    unfused = dataclasses.replace(ob.DEFAULT_SETTINGS, fuse_gelu=False)
    assert ob.DEFAULT_SETTINGS.model_name() == unfused.model_name() + "-gelu"  # other vectors, another name


def test_fp32_weight_patterns_pick_matmuls_by_their_weight_not_their_name():
    """Nodes are found by the parameter their operand holds; a pattern matching nothing is an error."""
    rng = np.random.default_rng(0)
    weights = {
        "encoder.layer.0.attention.output.dense.weight": rng.standard_normal((4, 4)).astype(np.float32),
        "encoder.layer.0.output.dense.weight": rng.standard_normal((4, 4)).astype(np.float32),
        "encoder.layer.5.output.dense.weight": rng.standard_normal((4, 4)).astype(np.float32),
    }
    model = _tiny_encoder(weights)
    blob = save_safetensors(weights)
    assert ob.fp32_nodes(model, blob, ["encoder.layer.?.output.dense.weight"]) == ["node_MatMul_1", "node_MatMul_2"]
    assert ob.fp32_nodes(model, blob, ["encoder.layer.5.*", "encoder.layer.0.attention.*"]) == [
        "node_MatMul_2",
        "node_MatMul_0",
    ]
    with pytest.raises(ob.OnnxBackendError, match="matches no MatMul weight"):
        ob.fp32_nodes(model, blob, ["encoder.layer.9.*"])


def test_fp32_weights_name_their_vectors_and_key_their_artifact():
    """A recipe keeping weights in fp32 has its own model name and cache key; it cannot go unnamed."""
    kept = ob.ExportSettings(fp32_weights=("encoder.layer.5.*",), fp32_label="fp32last")
    assert kept.model_name() != ob.ExportSettings().model_name()
    assert kept.model_name().endswith("-fp32last-plainln-gelu")
    versions = {"onnxruntime": "x"}
    assert ob.cache_key("0" * 64, kept, versions) != ob.cache_key("0" * 64, ob.ExportSettings(), versions)
    with pytest.raises(ValueError, match="fp32_label"):
        ob.ExportSettings(fp32_weights=("encoder.layer.5.*",)).model_name()
