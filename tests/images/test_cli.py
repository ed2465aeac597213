"""``nublado images parse`` prints upstream's fixture form and refuses non-tags in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nublado.cli import main

EXPECTED = Path(__file__).resolve().parents[1] / "data" / "reference" / "expected" / "rspimagetag"
FIXTURES = sorted(EXPECTED.glob("*.json"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["images", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_all_six_reference_tags_are_present() -> None:
    assert len(FIXTURES) == 6


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_single_tag_prints_the_reference_object(
    capsys: pytest.CaptureFixture[str], path: Path
) -> None:
    code, out, err = run(capsys, "parse", path.stem)

    assert (code, err) == (0, "")
    assert json.loads(out) == json.loads(path.read_text())
    assert out == path.read_text()  # same key order and indentation as the fixtures


def test_several_tags_print_a_list_in_argument_order(capsys: pytest.CaptureFixture[str]) -> None:
    tags = [p.stem for p in reversed(FIXTURES)]
    code, out, _ = run(capsys, "parse", *tags)

    assert code == 0
    assert json.loads(out) == [json.loads((EXPECTED / f"{tag}.json").read_text()) for tag in tags]


def test_alias_flag_parses_declared_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "parse", "--alias", "latest_c0046-arm64")

    parsed = json.loads(out)
    assert code == 0
    assert parsed["image_type"] == "Alias"
    assert parsed["display_name"] == "Latest (SAL Cycle 0046) [arm64]"
    assert (parsed["base"], parsed["cycle"], parsed["architecture"]) == ("latest", 46, "arm64")


def test_empty_tag_parses_as_latest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "parse", "")

    assert code == 0
    assert json.loads(out)["tag"] == "latest"


@pytest.mark.parametrize(
    ("tag", "shown"),
    [
        ("a b", "'a b'"),
        ("caf\u00e9", "'caf\\\\xe9'"),
        (".hidden", "'.hidden'"),
        ("line\nbreak", "'line\\\\nbreak'"),
        ("x" * 129, "'" + "x" * 129 + "'"),
        ("tag:1", "'tag:1'"),
    ],
)
def test_bad_tag_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tag: str, shown: str
) -> None:
    code, out, err = run(capsys, "parse", "w_2021_22", tag)

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"nublado: error: not a Docker tag: {shown}")


def test_no_tag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "parse")

    assert code == 2
    assert out == ""
    assert "Missing argument" in err


def test_longest_docker_tag_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "parse", "x" * 128)

    assert code == 0
    assert json.loads(out)["image_type"] == "Unknown"


def test_images_command_imports_neither_kubernetes_nor_web_stack() -> None:
    code = (
        "import sys; from nublado.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = ('kubernetes', 'starlette', 'fastapi', 'httpx', 'aiohttp', 'uvicorn',"
        " 'pydantic')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "print('IMPORTED', bad, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "images", "parse", "w_2021_22"],
        capture_output=True,
        text=True,
        check=True,
    )

    assert "IMPORTED []" in result.stderr
    assert json.loads(result.stdout)["display_name"] == "Weekly 2021_22"


@pytest.mark.parametrize(
    "command",
    [[], ["images"], ["images", "parse"], ["images", "list"], ["images", "prune"]],
    ids=["nublado", "images", "parse", "list", "prune"],
)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_options_on_the_images_commands(
    capsys: pytest.CaptureFixture[str], command: list[str], flag: str
) -> None:
    try:
        code = main([*command, flag])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()

    assert (code, err) == (0, "")
    assert out.startswith(f"Usage: nublado {' '.join(command)}".rstrip() + " ")
    assert "  -h, --help " in out


def test_every_subcommand_takes_dash_h() -> None:
    """In a fresh process: click caches a command's help option once it is built."""
    code = (
        "import sys\n"
        "from nublado.cli import _COMMANDS, main\n"
        "for name in sorted(_COMMANDS):\n"
        "    try:\n"
        "        code = main([name, '-h'])\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code\n"
        "    print(name, code, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stderr == "".join(
        f"{name} 0\n"
        for name in (
            "daemon",
            "diff",
            "images",
            "inithome",
            "landingpage",
            "purger",
            "render",
            "sandbox",
            "schema",
            "serve",
            "startup",
        )
    )
    assert result.stdout.count("  -h, --help ") == 11
