"""The installed product is the product: its wheel holds no test double and imports no dev-only package."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from support import REPO

DEV_ONLY = {"threadline_testing", "pytest", "hypothesis", "openapi_core", "yaml", "schemathesis", "playwright"}
TEST_DOUBLE_WORDS = ("standin", "stand_in", "fake", "mock", "contract")


def _wheel(tmp_path: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("threadline-*.whl")
    return wheel


def test_the_wheel_contains_no_test_double_and_imports_no_dev_package(tmp_path: Path) -> None:
    with zipfile.ZipFile(_wheel(tmp_path)) as wheel:
        names = [n for n in wheel.namelist() if n.startswith("threadline/")]
        assert "threadline/engine/batch.py" in names  # the product is there
        doubles = [n for n in names if any(word in n.lower() for word in TEST_DOUBLE_WORDS)]
        assert doubles == []
        imported: set[str] = set()
        for name in names:
            if name.endswith(".py"):
                for node in ast.walk(ast.parse(wheel.read(name))):
                    if isinstance(node, ast.Import):
                        imported.update(alias.name.split(".")[0] for alias in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                        imported.add(node.module.split(".")[0])
        assert imported & DEV_ONLY == set()
