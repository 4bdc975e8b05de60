"""`threadline eval`: scratch isolation and metrics on labelled data."""

from __future__ import annotations

import json
import subprocess

import psycopg
from support import EXAMPLES, threadline_command


def test_eval_scores_the_sample_in_a_scratch_database(cli_env, pg_server, tmp_path):
    result = subprocess.run(
        [*threadline_command(), "eval", str(EXAMPLES), "--label-path", "labels.problem", "--json"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout)
    assert metrics["n_items"] == 220 and metrics["n_labels"] == 13
    for key in ("nmi", "ari", "accuracy", "pairwise_precision", "pairwise_recall", "pairwise_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["nmi"] >= 0.7, metrics  # 12 distinct problems plus noise: grouping must be meaningful
    assert metrics["wall_seconds"] > 0 and metrics["peak_rss_mib"] > 0
    assert metrics["themes"] and all(
        t["name"] and t["size"] >= 1 and t["dominant_label"] and 0 < t["dominant_share"] <= 1 for t in metrics["themes"]
    )
    naming = metrics["naming"]
    assert naming["themes"] == len(metrics["themes"]) and 0 <= naming["chance"] < naming["share"] <= 1
    assert 2 <= naming["name_words"]["min"] <= naming["name_words"]["max"] <= 8
    with psycopg.connect(pg_server) as conn:
        leftovers = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'threadline_eval%'").fetchall()
    assert leftovers == []
    status = json.loads(
        subprocess.run(
            [*threadline_command(), "status", "--json"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    )
    assert status["sources"] == []  # the real database never saw the evaluated file


def test_eval_csv_needs_a_label_column(cli_env, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("text,category\nWhere is my card?,card\n")
    result = subprocess.run(
        [*threadline_command(), "eval", str(path)], env=cli_env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2 and "--label-col" in result.stderr
