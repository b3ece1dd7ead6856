"""What a test this machine cannot run does (conftest.unavailable): a skip with one closing line
naming it and how to enable it, or, under CI=true, a failure. Run on a throwaway test file in a
separate pytest process, with this suite's conftest as its plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

NEEDS = '''
from conftest import unavailable

def test_needs_a_thing():
    unavailable("no thing here", "apt-get install thing")

def test_runs():
    assert True
'''


def run_pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess:
    (folder / "test_needs.py").write_text(NEEDS)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(TESTS)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "-c", os.devnull, "--rootdir", str(folder), str(folder / "test_needs.py")],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_without_ci_a_missing_tool_is_a_skip_named_in_one_closing_line(tmp_path):
    out = run_pytest(tmp_path, None)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stdout[-2000:]
    assert lines[-1].startswith("1 passed, 1 skipped")
    assert lines[-2] == "skipped 1: 1 x no thing here (to run it: apt-get install thing)"


def test_under_ci_a_missing_tool_fails_the_run(tmp_path):
    out = run_pytest(tmp_path, "true")
    assert out.returncode == 1, out.stdout[-2000:]
    assert "1 failed, 1 passed" in out.stdout.strip().splitlines()[-1]
    assert "CI=true, but no thing here (CI must apt-get install thing)" in out.stdout
    assert "Traceback" not in out.stdout              # one line says why, not a stack


def test_ci_false_is_not_ci(tmp_path):
    assert run_pytest(tmp_path, "false").returncode == 0
