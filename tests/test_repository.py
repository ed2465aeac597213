"""What the repository itself promises: its license, and what git leaves out."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# The first line of each license's standard text, by SPDX identifier.
LICENSE_TITLES = {"MIT": "MIT License"}

# Files the README's prose tells people to write in their checkout.
WRITTEN = [
    "sandbox.kubeconfig",  # nublado serve --sandbox
    "lab.yaml",  # nublado render ... > lab.yaml
    "images.yaml",  # nublado images -c images.yaml
    "site-templates/lab/pod.yaml",  # templateDirs
    ".dockerconfigjson",  # nublado images -a FILE
    "spawn.prof",  # benchmarks/spawn.py --profile FILE
    "spawn.log",  # a benchmark's output
]


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def _in_git_checkout() -> bool:
    return shutil.which("git") is not None and _git("rev-parse").returncode == 0


needs_git = pytest.mark.skipif(not _in_git_checkout(), reason="needs a git checkout")


def _written_in_code_blocks() -> set[str]:
    """Files the README's commands write or read as the user's own.

    `> FILE`, `--kubeconfig FILE` and `-c FILE`, less placeholders (`CONFIG`),
    paths outside the checkout and the repository's own files (`examples/config.yaml`).
    """
    blocks = re.findall(r"^```(?:sh|bash)?\n(.*?)^```", README, flags=re.M | re.S)
    names: set[str] = set()
    for block in blocks:
        names.update(re.findall(r"(?:^|\s)(?:>|--kubeconfig|-c)\s+([\w./-]+)", block))
    return {
        name
        for name in names
        if not name.isupper()
        and not name.startswith(("/", "~", "$"))
        and not (ROOT / name).exists()
    }


def test_license_file_is_the_one_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (ROOT / "LICENSE").read_text()

    assert text.splitlines()[0] == LICENSE_TITLES[declared]
    assert re.search(r"^Copyright \(c\) \d{4} \S", text, flags=re.M)


@needs_git
@pytest.mark.parametrize("path", sorted(set(WRITTEN) | _written_in_code_blocks()))
def test_files_the_readme_has_people_write_are_ignored(path: str) -> None:
    assert _git("check-ignore", "--quiet", "--no-index", path).returncode == 0


@needs_git
def test_no_tracked_file_is_ignored() -> None:
    ignored = _git("ls-files", "--cached", "--ignored", "--exclude-standard")

    assert (ignored.returncode, ignored.stdout) == (0, "")
