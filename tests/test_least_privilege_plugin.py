"""The least_privilege plugin says when it did not judge a run of the audited suites."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
NOT_JUDGED = (
    "least-privilege audit not judged (it judges only a whole run of tests/api and tests/daemon): "
)


def _run(tmp_path: Path, suite: str) -> str:
    """Run one passing test under tests/SUITE of ``tmp_path`` with the plugin; its output."""
    folder = tmp_path / "tests" / suite
    folder.mkdir(parents=True)
    (folder / "test_one.py").write_text("def test_one() -> None:\n    assert True\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "least_privilege", "-p", "no:randomly",
         "-p", "no:cacheprovider", f"tests/{suite}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(("suite", "said"), [("api", True), ("daemon", True), ("other", False)])
def test_a_partial_run_of_the_audited_suites_says_the_audit_was_not_judged(
    tmp_path: Path, suite: str, said: bool
) -> None:
    out = _run(tmp_path, suite)

    lines = [line for line in out.splitlines() if line.startswith(NOT_JUDGED)]
    files = sorted(
        str(f.relative_to(TESTS))
        for name in ("api", "daemon")
        for f in (TESTS / name).glob("test_*.py")
    )
    expected = (
        f"{NOT_JUDGED}{len(files)} of {len(files)} test files not collected ({files[0]}, ...)"
    )
    assert lines == ([expected] if said else [])
