"""Shell completion of the ``nublado`` command, as the README tells people to set it up."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nublado.cli import _COMMANDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def shim(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has a ``nublado`` running this checkout, as installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nublado"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m nublado "$@"\n')
    script.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
    }


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("nublado ", sorted(_COMMANDS), id="subcommands"),
        pytest.param("nublado pur", ["purger"], id="prefix"),
        pytest.param("nublado purger ", ["execute", "report", "warn"], id="nested-group"),
        pytest.param("nublado render --met", ["--metadata-dir"], id="subcommand-option"),
        pytest.param("nublado render co", ["controller"], id="render-set"),
    ],
)
def test_bash_completion_from_the_documented_setup(
    shim: dict[str, str], line: str, expected: list[str]
) -> None:
    # The README's setup line, then one press of Tab at the end of `line`.
    words = line.split(" ")
    script = "\n".join(
        [
            'eval "$(_NUBLADO_COMPLETE=bash_source nublado)"',
            f"COMP_WORDS=({' '.join(shlex.quote(word) for word in words)})",
            f"COMP_CWORD={len(words) - 1}",
            "_nublado_completion nublado",
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )

    result = subprocess.run(
        ["bash", "-c", script], env=shim, capture_output=True, text=True, timeout=60
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == expected


def test_completing_subcommands_imports_none_of_them(shim: dict[str, str]) -> None:
    modules = sorted(target.split(":")[0] for target, _ in _COMMANDS.values())
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print([m for m in {modules!r} if m in sys.modules],"
        " file=sys.stderr))\n"
        "from nublado.cli import main\n"
        "main()\n"
    )
    environ = {
        **shim,
        "_NUBLADO_COMPLETE": "zsh_complete",
        "COMP_WORDS": "nublado ",
        "COMP_CWORD": "1",
    }

    result = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=60
    )

    assert (result.returncode, result.stderr) == (0, "[]\n")
    # zsh shows each subcommand with the one-line help of `nublado --help`.
    expected = "".join(
        f"plain\n{name}\n{help_}\n" for name, (_, help_) in sorted(_COMMANDS.items())
    )
    assert result.stdout == expected


@pytest.mark.parametrize(
    ("shell", "registration"),
    [
        ("bash", "complete -o nosort -F _nublado_completion nublado"),
        ("zsh", "compdef _nublado_completion nublado"),
        ("fish", 'complete --no-files --command nublado --arguments "(_nublado_completion)"'),
    ],
)
def test_each_documented_shell_gets_its_script(
    shim: dict[str, str], shell: str, registration: str
) -> None:
    # The README's set-up lines, `_NUBLADO_COMPLETE=<shell>_source nublado`.
    result = subprocess.run(
        ["nublado"],
        env={**shim, "_NUBLADO_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert registration in result.stdout
    assert "_NUBLADO_COMPLETE=" in result.stdout
