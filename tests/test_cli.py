"""The `threadline` command as a user runs it: a real process against a real database."""

from __future__ import annotations

import json
import subprocess

from support import EXAMPLES, threadline_command


def threadline(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*threadline_command(), *args], env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"threadline {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def test_import_run_report_on_the_sample(cli_env, tmp_path):
    imported = json.loads(threadline(cli_env, "import", str(EXAMPLES), "--source", "demo", "--json").stdout)
    assert imported["inserted"] >= 150 and imported["rejected"] == 0

    first = json.loads(threadline(cli_env, "run", "--json").stdout)
    assert first["status"] == "succeeded" and first["counters"]["embed"]["computed"] > 0
    second = json.loads(threadline(cli_env, "run", "--json").stdout)
    assert second["counters"]["embed"]["computed"] == 0  # unchanged data: no new embedding

    stories = json.loads(threadline(cli_env, "stories", "--json").stdout)
    assert stories and all(s["evidence"] for s in stories)
    # A story with fewer than three quotes says why (thin or repetitive evidence).
    assert all(len(s["evidence"]) >= 3 or (s.get("priority") or {}).get("evidence_notes") for s in stories)
    themes = json.loads(threadline(cli_env, "themes", "--json").stdout)
    assert sum(len(group["themes"]) for group in themes) >= 8

    report = tmp_path / "report.md"
    threadline(cli_env, "report", "--format", "md", "-o", str(report))
    text = report.read_text()
    assert text.startswith("# Threadline report") and stories[0]["title"] in text
    assert stories[0]["evidence"][0]["quote"].replace("\n", " ") in text
    csv_report = tmp_path / "report.csv"
    threadline(cli_env, "report", "--format", "csv", "-o", str(csv_report))
    assert csv_report.read_text().splitlines()[0].startswith("rank,title")

    status = json.loads(threadline(cli_env, "status", "--json").stdout)
    assert status["sources"][0]["conversations"] == imported["inserted"]
    assert [r["status"] for r in status["runs"]] == ["succeeded", "succeeded"]


def test_import_with_bad_records_exits_nonzero_with_a_summary(cli_env, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"id": "ok", "messages": [{"author": "customer", "text": "fine"}]}\n'
        '{"id": "bad", "messages": [{"author": "customer", "text": "x", "created_at": "noon"}]}\n'
    )
    result = threadline(cli_env, "import", str(path), check=False)
    assert result.returncode == 1
    assert "line 2 (id bad)" in result.stderr and "not an ISO-8601 timestamp" in result.stderr
    assert "1 valid records: 1 new" in " ".join(result.stdout.split())


def test_file_level_error_exits_2_and_says_what(cli_env, tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("this is not json\n")
    result = threadline(cli_env, "import", str(path), check=False)
    assert result.returncode == 2 and "not JSONL" in result.stderr
    status = json.loads(threadline(cli_env, "status", "--json").stdout)
    assert status["sources"] == []
