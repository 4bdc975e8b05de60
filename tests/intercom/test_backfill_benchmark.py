"""The Intercom backfill benchmark reports the client's own CPU time per request (issue 17, item 4).

Runs the real benchmark script on a tiny workspace against the stand-in on loopback; checks the
figure is there, plausible, and that `--profile` writes a cProfile of the client thread.
"""

from __future__ import annotations

import importlib.util
import json
import pstats
from pathlib import Path
from types import ModuleType

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "intercom_backfill.py"
TINY_WORKSPACE = 60  # conversations (10 of them deleted): enough for search, detail, contact and deleted routes
GENEROUS_PER_MINUTE = 60_000  # requests/minute: the stand-in's limit never slows this test


def _load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("intercom_backfill_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_reports_client_cpu_per_request_and_profile(tmp_path: Path) -> None:
    output = tmp_path / "result.json"
    profile = tmp_path / "client.prof"
    benchmark = _load_benchmark()
    code = benchmark.main(
        [
            "--conversations",
            str(TINY_WORKSPACE),
            "--per-minute",
            str(GENEROUS_PER_MINUTE),
            "--error-500",
            "0",
            "--error-429",
            "0",
            "--output",
            str(output),
            "--profile",
            str(profile),
        ]
    )
    assert code == 0
    result = json.loads(output.read_text())
    cpu = result["client_cpu"]
    requests = result["rate"]["requests"]
    assert requests > result["correctness"]["conversations_in_workspace"]  # one detail request each, at least
    assert cpu["requests_sent"] == requests
    assert cpu["seconds"] > 0
    assert abs(cpu["client_cpu_ms_per_request"] - 1000 * cpu["seconds"] / requests) < 0.1  # seconds are rounded
    assert cpu["profiled"] is True
    # The profile covers the client's thread: the sync's own code appears, the stand-in's does not.
    functions = {f"{path}:{name}" for path, _line, name in pstats.Stats(str(profile)).stats}
    assert any("connectors/intercom/sync.py" in f for f in functions)
    assert not any("threadline_testing/intercom/app.py" in f for f in functions)
