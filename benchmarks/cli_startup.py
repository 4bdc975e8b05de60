"""Benchmark: how fast the CLI's read commands answer, one after another (issue 17, item 3).

On a fresh THREADLINE_HOME under /tmp (its own embedded PostgreSQL), imports the sample and runs
the pipeline on it once, then times `threadline --help`, `status`, `themes`, `stories` and
`runs list`: each command 1 + N times in a row (default N = 10); the first call of each series
is reported apart and excluded from the median. Two passes: first with the warm process off
(THREADLINE_CLI_WARM_IDLE_S=0, every command imports its libraries), then as shipped, where read
commands after the first are answered by the warm process (`threadline.cli.launch`). Then, from
no warm process, the five commands one after the other for 1 + N rounds (`sequence`). Also reports what `import threadline.cli.main`
costs: its wall time (median of a few fresh interpreters) and the modules with the largest
cumulative import time from `python -X importtime`. Writes benchmarks/results/cli_startup.json.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 10] [--top 25]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "cli_startup.json"
SAMPLE = ROOT / "examples" / "conversations.jsonl"
TARGET_S = 0.5  # issue 17: each read command answers within 0.5 s (median of 10 after the first)
COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "status": ["status"],
    "themes": ["themes"],
    "stories": ["stories"],
    "runs list": ["runs", "list"],
}
SETUP_TIMEOUT_S = 900  # importing and running the 220-conversation sample, model load included
COMMAND_TIMEOUT_S = 120  # one read command; far above any sane answer, so a hang fails loudly
IMPORT_SAMPLES = 5  # fresh interpreters timing `import threadline.cli.main`
WARM_VARIABLE = "THREADLINE_CLI_WARM_IDLE_S"  # 0: every command imports its libraries in its own process


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10, help="timed calls per command after the first")
    p.add_argument("--top", type=int, default=25, help="modules listed by cumulative import time")
    p.add_argument("--output", type=Path, default=RESULTS)
    return p.parse_args(argv)


def threadline_command() -> list[str]:
    """The installed console script next to this interpreter (what a person types)."""
    script = Path(sys.executable).parent / "threadline"
    return [str(script)] if script.exists() else [sys.executable, "-m", "threadline.cli.main"]


def timed(command: list[str], env: dict[str, str], timeout: float) -> float:
    """Wall seconds of one command; raises with its stderr's tail when it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


def series_per_command(cli: list[str], env: dict[str, str], repeats: int) -> dict[str, dict]:
    """Each command 1 + `repeats` times in a row: the first call apart, the median of the rest."""
    commands = {}
    for label, argv_tail in COMMANDS.items():
        first = timed([*cli, *argv_tail], env, COMMAND_TIMEOUT_S)
        series = [timed([*cli, *argv_tail], env, COMMAND_TIMEOUT_S) for _ in range(repeats)]
        median = statistics.median(series)
        commands[label] = {
            "first_s": round(first, 3),
            "median_s": round(median, 3),
            "min_s": round(min(series), 3),
            "max_s": round(max(series), 3),
            "within_target": median <= TARGET_S,
        }
        warm = "without warm process" if env.get(WARM_VARIABLE) == "0" else "default"
        print(f"{label:10} {warm:21} first {first:.3f} s, median {median:.3f} s", file=sys.stderr)
    return commands


def stop_warm_processes(home: Path) -> None:
    """SIGTERM to the home's warm processes, and wait until they are gone."""
    for pid_file in (home / "cli").glob("warm-*.pid"):
        try:
            pid = int(pid_file.read_text(encoding="ascii"))
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            continue
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def sequence(cli: list[str], env: dict[str, str], repeats: int) -> dict:
    """The five commands one after the other, 1 + `repeats` rounds, starting without a warm process.

    The first round is what a person typing them after a pause sees (its first command pays the imports);
    the median of the other rounds is the steady state.
    """
    rounds = [{label: timed([*cli, *tail], env, COMMAND_TIMEOUT_S) for label, tail in COMMANDS.items()}]
    rounds += [
        {label: timed([*cli, *tail], env, COMMAND_TIMEOUT_S) for label, tail in COMMANDS.items()}
        for _ in range(repeats)
    ]
    first, rest = rounds[0], rounds[1:]
    after_first = list(COMMANDS)[1:]
    medians = {label: round(statistics.median(r[label] for r in rest), 3) for label in COMMANDS}
    print(f"sequence   first round {', '.join(f'{k} {v:.3f}' for k, v in first.items())}", file=sys.stderr)
    return {
        "first_round_s": {label: round(value, 3) for label, value in first.items()},
        "first_round_within_target_after_the_first": all(first[label] <= TARGET_S for label in after_first),
        "median_of_other_rounds_s": medians,
        "within_target": all(value <= TARGET_S for value in medians.values()),
    }


def import_wall_s(env: dict[str, str]) -> list[float]:
    """Seconds `import threadline.cli.main` takes in fresh interpreters (measured inside the process)."""
    code = "import time; t = time.perf_counter(); import threadline.cli.main; print(time.perf_counter() - t)"
    out = []
    for _ in range(IMPORT_SAMPLES):
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        out.append(round(float(done.stdout.strip()), 4))
    return out


def top_imports(env: dict[str, str], top: int) -> tuple[list[dict], list[str]]:
    """The modules with the largest cumulative import time, and the heavy libraries that were imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import threadline.cli.main"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|", 2)
        rows.append(
            {"module": name.strip(), "self_ms": int(self_us) / 1000, "cumulative_ms": int(cumulative_us) / 1000}
        )
    rows.sort(key=lambda row: -row["cumulative_ms"])
    heavy = ("torch", "sentence_transformers", "sklearn", "fastapi", "procrastinate", "numpy", "scipy", "transformers")
    loaded = sorted({row["module"] for row in rows if row["module"] in heavy})
    return rows[:top], loaded


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    home = Path(tempfile.mkdtemp(prefix="threadline-cli-startup-"))
    # Without THREADLINE_DATABASE_URL: the embedded server. Without PYTHONDONTWRITEBYTECODE: commands run from
    # compiled bytecode, as an installed package does (pip compiles it); with it, every call recompiles the
    # sources of an editable install (~30-40 ms per command), which no user pays.
    env = {k: v for k, v in os.environ.items() if k not in ("THREADLINE_DATABASE_URL", "PYTHONDONTWRITEBYTECODE")}
    env["THREADLINE_HOME"] = str(home)
    cli = threadline_command()
    figures: dict = {
        "benchmark": "cli_startup",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "target_s": TARGET_S,
        "repeats": args.repeats,
        # 1, 5 and 15 minute load averages: the machine is shared, and every figure below scales with it
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "bytecode_cached": True,  # PYTHONDONTWRITEBYTECODE is dropped for the commands (see above)
    }
    try:
        figures["setup_s"] = {
            "import": round(timed([*cli, "import", str(SAMPLE), "--source", "demo"], env, SETUP_TIMEOUT_S), 2),
            "run": round(timed([*cli, "run", "--source", "demo"], env, SETUP_TIMEOUT_S), 2),
        }
        figures["import_threadline_cli_main_s"] = import_wall_s(env)
        figures["top_imports_by_cumulative_ms"], figures["heavy_libraries_imported"] = top_imports(env, args.top)
        # Each command in its own process, as without the warm process (THREADLINE_CLI_WARM_IDLE_S=0): the
        # baseline, and what the first read command after an idle period costs.
        figures["commands_without_warm_process"] = series_per_command(cli, {**env, WARM_VARIABLE: "0"}, args.repeats)
        commands = figures["commands"] = series_per_command(cli, env, args.repeats)
        stop_warm_processes(home)
        figures["sequence"] = sequence(cli, env, args.repeats)
        figures["all_within_target"] = all(c["within_target"] for c in commands.values()) and (
            figures["sequence"]["within_target"] and figures["sequence"]["first_round_within_target_after_the_first"]
        )
        figures["worst_median_over_target_s"] = round(max(c["median_s"] for c in commands.values()) - TARGET_S, 3)
        figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        # `db stop` exists once the server outlives commands; older builds stop it with the last command.
        subprocess.run([*cli, "db", "stop"], env=env, capture_output=True, timeout=COMMAND_TIMEOUT_S)
        shutil.rmtree(home, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in figures.items() if k != "top_imports_by_cumulative_ms"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
