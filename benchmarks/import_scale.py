"""Import at a million: throughput and peak RSS of the real `threadline import` CLI at 100k and 1M.

For each size and format a file of small conversations is generated (one customer message
each; the texts are real customer texts from BANKING77 and star-support, so their lengths
are realistic) and imported with `threadline import FILE --json` into a fresh embedded
database (``THREADLINE_HOME`` in a temporary directory). The server is started and migrated
by a `threadline status` first, so the timed import measures importing. The import process's
RSS is sampled every ``RSS_SAMPLE_S`` (psutil) and its peak read from ``wait4``'s rusage,
so the curve shows whether memory grows with the file; the embedded PostgreSQL's processes
are sampled too (their memory is the server's, not the importer's).

    .venv/bin/python benchmarks/import_scale.py                          # jsonl and csv, 100k and 1M
    .venv/bin/python benchmarks/import_scale.py --sizes 100000 --formats jsonl

Writes benchmarks/results/import_scale.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "import_scale.json"
THREADLINE = ROOT / ".venv" / "bin" / "threadline"
RSS_SAMPLE_S = 1.0  # seconds between RSS samples of the importer and the server
CURVE_POINTS = 10  # RSS reported at each tenth of the import's duration
IMPORT_TIMEOUT_S = 4 * 3600  # 1M on 2 shared cores takes many minutes; four hours means something is wrong
START = datetime(2024, 1, 1, tzinfo=UTC)  # conversation times spread over a year from here


def real_texts() -> list[str]:
    """Single customer messages from BANKING77 (both splits) and star-support (first customer message)."""
    texts: list[str] = []
    for split in ("train", "test"):
        with (DATA / "banking77" / f"{split}.csv").open(newline="") as fh:
            texts.extend(row["text"] for row in csv.DictReader(fh))
    with (DATA / "star-support" / "conversations.jsonl").open() as fh:
        for line in fh:
            conv = json.loads(line)
            texts.extend(m["text"] for m in conv["messages"][:3] if m["author"] == "customer" and m["text"].strip())
    return texts


def write_file(path: Path, n: int, fmt: str, texts: list[str], seed: int = 0) -> dict[str, Any]:
    """``n`` one-message conversations (ids c-0..c-n-1) in ``fmt``; returns size facts."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(texts), size=n)
    seconds = rng.integers(0, 365 * 86400, size=n)
    chars = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh) if fmt == "csv" else None
        if writer:
            writer.writerow(["conversation_id", "message_id", "author", "created_at", "text"])
        for i in range(n):
            text = texts[pick[i]]
            chars += len(text)
            when = (START + timedelta(seconds=int(seconds[i]))).isoformat()
            if writer:
                writer.writerow([f"c-{i}", f"m-{i}", "customer", when, text])
            else:
                record = {
                    "id": f"c-{i}",
                    "created_at": when,
                    "messages": [{"id": f"m-{i}", "author": "customer", "text": text, "created_at": when}],
                }
                fh.write(json.dumps(record) + "\n")
    return {"bytes": path.stat().st_size, "mean_text_chars": round(chars / n, 1)}


def _server_rss(home: Path) -> int:
    """Summed RSS of the embedded PostgreSQL processes whose data lives under ``home``."""
    total = 0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] and "postgres" in proc.info["name"] and str(home) in " ".join(proc.cmdline()):
                total += proc.memory_info().rss
                total += sum(c.memory_info().rss for c in proc.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def run_import(path: Path, fmt: str, n: int) -> dict[str, Any]:
    """Import ``path`` into a fresh home with the CLI; return throughput and RSS figures."""
    home = Path(tempfile.mkdtemp(prefix="threadline-import-scale-"))
    env = {**os.environ, "THREADLINE_HOME": str(home)}
    env.pop("THREADLINE_DATABASE_URL", None)
    try:
        t0 = time.perf_counter()
        subprocess.run([str(THREADLINE), "status"], env=env, check=True, capture_output=True, timeout=600)
        start_s = time.perf_counter() - t0
        loads = [os.getloadavg()[0]]
        samples: list[tuple[float, int, int]] = []  # (seconds, importer RSS, server RSS)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(THREADLINE), "import", str(path), "--source", "bench", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        watched = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            server_every = 0
            server = 0
            while not done.wait(RSS_SAMPLE_S):
                try:
                    rss = watched.memory_info().rss
                except psutil.NoSuchProcess:
                    return
                if server_every % 10 == 0:  # the process scan costs CPU: every tenth sample
                    server = _server_rss(home)
                    loads.append(os.getloadavg()[0])
                server_every += 1
                samples.append((time.perf_counter() - t0, rss, server))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out_chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
        reader.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        reader.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr = proc.stderr.read().decode(errors="replace")
        report = json.loads(b"".join(out_chunks) or b"{}")
        if proc.returncode not in (0,):
            sys.stderr.write(stderr[-2000:])
            raise SystemExit(f"import of {path} exited {proc.returncode}")
        curve = []
        for i in range(1, CURVE_POINTS + 1):
            cut = wall * i / CURVE_POINTS
            before = [s for s in samples if s[0] <= cut]
            if before:
                curve.append(round(before[-1][1] / 2**20, 1))
        half = [s[1] for s in samples if s[0] >= wall / 2]
        first_half = [s[1] for s in samples if s[0] < wall / 2]
        return {
            "n": n,
            "format": fmt,
            "imported": {key: report.get(key) for key in ("valid_records", "inserted", "rejected", "duplicates")},
            "server_start_and_migrate_s": round(start_s, 1),
            "import_seconds": round(wall, 1),
            "conversations_per_s": round(n / wall, 1),
            "importer_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "importer_peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # wait4: this process's own peak
            "importer_rss_mib_at_each_tenth": curve,
            "importer_max_rss_mib_first_half": round(max(first_half) / 2**20, 1) if first_half else None,
            "importer_max_rss_mib_second_half": round(max(half) / 2**20, 1) if half else None,
            "server_max_rss_mib": round(max((s[2] for s in samples), default=0) / 2**20, 1),
            "load_average_1min": {
                "min": round(min(loads), 2),
                "mean": round(sum(loads) / len(loads), 2),
                "max": round(max(loads), 2),
            },
            "report": report,
        }
    finally:  # the embedded server stops with the last CLI process that holds it
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--formats", nargs="+", default=["jsonl", "csv"], choices=["jsonl", "csv"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    texts = real_texts()
    runs = []
    work = Path(tempfile.mkdtemp(prefix="threadline-import-files-"))
    try:
        for fmt in args.formats:
            for n in args.sizes:
                path = work / f"conversations-{n}.{fmt}"
                facts = write_file(path, n, fmt, texts)
                run = {**run_import(path, fmt, n), "file": facts}
                path.unlink()
                runs.append(run)
                brief = {k: v for k, v in run.items() if k != "report"}
                sys.stderr.write(json.dumps(brief) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out: dict[str, Any] = {
        "benchmark": "import_scale",
        "machine": {
            "python": platform.python_version(),
            "cpus": len(os.sched_getaffinity(0)),
            "shared": "2 cores shared with other engineers' builds and tests (and with the embedded PostgreSQL "
            "server): wall times inflate with the load average recorded per run; compare ratios measured in "
            "this same run",
        },
        "runs": runs,
        "growth": {},
    }
    for fmt in args.formats:
        mine = [r for r in runs if r["format"] == fmt]
        if len(mine) >= 2:
            a, b = mine[0], mine[-1]
            out["growth"][fmt] = {
                "size": round(b["n"] / a["n"], 2),
                "import_time": round(b["import_seconds"] / a["import_seconds"], 2),
                "throughput": round(b["conversations_per_s"] / a["conversations_per_s"], 2),
                "importer_peak_rss": round(b["importer_peak_rss_mib"] / a["importer_peak_rss_mib"], 3),
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    sys.stderr.write(f"wrote {args.out}\n")


if __name__ == "__main__":
    main()
