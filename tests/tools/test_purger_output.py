"""What ``nublado purger`` prints: a report people can pipe, errors on one line."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from nublado.cli import main
from nublado.purger.config import PurgerConfig
from nublado.purger.purger import display_path, human_bytes, human_duration

HOUR = 3600
OLD = 1_000_000_000


def run(*args: str) -> int:
    try:
        result = main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return int(result or 0)


@pytest.fixture
def config_file(tree: Path, write_policy: Callable[..., PurgerConfig]) -> Path:
    write_policy(logProfile="development", logLevel="info")
    return tree / "config.yaml"


def old(path: Path, content: bytes = b"x" * 50) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (OLD, OLD))


def test_report_on_stdout_logs_on_stderr(config_file: Path, tree: Path, capsys) -> None:
    old(tree / "scratch" / "large")

    assert run("purger", "report", "-c", str(config_file), "--workers", "1") == 0

    captured = capsys.readouterr()
    assert captured.out == (
        f"Directories considered:\n  {tree}/scratch\n  {tree}/scratch/foo/bar\n"
        f"  -> {tree}/scratch/large\n"
    )
    assert captured.err == "INFO [rsp_scratchpurger] Planning for time 0s from now.\n"


def test_control_characters_in_names_cannot_forge_lines(
    config_file: Path, tree: Path, capsys
) -> None:
    fake = f"x\n  -> {tree}/scratch/small"
    old(tree / "scratch" / fake)
    old(tree / "scratch" / "tab\there\\")
    old(Path(os.fsdecode(bytes(tree / "scratch") + b"/latin\xe9")))

    assert run("purger", "report", "-c", str(config_file), "--workers", "1") == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[3:] == [
        f"  -> {tree}/scratch/latin\\xe9",
        f"  -> {tree}/scratch/tab\\there\\\\",
        f"  -> {tree}/scratch/x\\n  -> {tree}/scratch/small",
    ]


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/s/plain name", "/s/plain name"),
        ("/s/a\nb", "/s/a\\nb"),
        ("/s/a\\nb", "/s/a\\\\nb"),
        ("/s/\x1b[31mred", "/s/\\x1b[31mred"),
        ("/s/\udcff", "/s/\\xff"),
        ("/s/\u2028", "/s/\\u2028"),
        ("/s/été", "/s/été"),
    ],
)
def test_display_path(path: str, shown: str) -> None:
    assert display_path(path) == shown


def test_report_is_sorted_whatever_the_workers(config_file: Path, tree: Path, capsys) -> None:
    names = [f"u{a}/{b}/f{c}" for a in range(4) for b in ("b", "b-c", "b.txt") for c in range(3)]
    names += ["u1/b", "u2-x", "u2.txt/y"]
    names = [n for n in names if not n.startswith("u1/b/")]
    random.Random(4).shuffle(names)
    for name in names:
        old(tree / "scratch" / "zz" / name)
    outputs = []
    for workers in ("1", "3"):
        assert run("purger", "report", "-c", str(config_file), "--workers", workers) == 0
        outputs.append([line for line in capsys.readouterr().out.splitlines() if "->" in line])

    assert outputs[0] == outputs[1]
    assert outputs[0] == sorted(outputs[0])
    assert len(outputs[0]) == len(names)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(days=25), "25d"),
        (timedelta(days=3650), "3650d"),
        (timedelta(days=1, hours=2), "1d 2h"),
        (timedelta(minutes=90), "1h 30m"),
        (timedelta(0), "0s"),
        (timedelta(seconds=1.5), "1.5s"),
    ],
)
def test_durations_print_as_people_write_them(duration: timedelta, text: str) -> None:
    assert human_duration(duration) == text


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1_234_567, "1.2 MB")]
)
def test_human_bytes(size: int, text: str) -> None:
    assert human_bytes(size) == text


def test_execute_ends_with_a_summary(config_file: Path, tree: Path, capsys) -> None:
    old(tree / "scratch" / "large")
    old(tree / "scratch" / "gone" / "deeper" / "old", b"y" * 1500)

    assert run("purger", "execute", "-c", str(config_file), "--workers", "1") == 0

    out = capsys.readouterr().out
    assert out.endswith(
        f"  -> {tree}/scratch/large\n"
        "Summary: 2 files deleted (1.6 kB), 2 directories removed; 0 failures.\n"
    )
    assert not (tree / "scratch" / "gone").exists()


def test_dry_run_summary_deletes_nothing(config_file: Path, tree: Path, capsys) -> None:
    old(tree / "scratch" / "large")

    assert run("purger", "execute", "-x", "-c", str(config_file), "--workers", "1") == 0

    assert capsys.readouterr().out.endswith(
        "Summary: nothing deleted (report only); 1 file would be deleted; 0 failures.\n"
    )
    assert (tree / "scratch" / "large").exists()


@pytest.mark.parametrize("command", [["report"], ["warn", "-t", "1d"]])
def test_dry_run_is_refused_where_nothing_is_deleted(
    config_file: Path, capsys, command: list[str]
) -> None:
    assert run("purger", *command, "--dry-run", "-c", str(config_file)) == 2

    assert "No such option '--dry-run'" in capsys.readouterr().err


def test_failures_name_the_full_path_once(config_file: Path, tree: Path, capsys) -> None:
    (tree / "scratch" / "foo").rename(tree / "scratch" / "foo.real")
    (tree / "scratch" / "foo").symlink_to(tree / "scratch" / "foo.real")

    assert run("purger", "report", "-c", str(config_file), "--workers", "1") == 1

    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == [
        f"nublado purger: failed: {tree}/scratch/foo: is a symlink; not followed",
        "nublado purger: 1 failure",
    ]


def test_closed_stdout_neither_aborts_nor_hides(tree: Path, config_file: Path) -> None:
    for index in range(3000):
        old(tree / "scratch" / "many" / f"{index:05d}-{'long-name-' * 5}", b"x" * 20)

    process = subprocess.Popen(
        [sys.executable, "-m", "nublado", "purger", "execute", "-c", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == "Directories considered:\n"
    process.stdout.close()  # as `| head -1` does
    err = process.stderr.read()
    process.stderr.close()
    status = process.wait(timeout=120)

    assert status == 1
    assert [line for line in err.splitlines() if not line.startswith("INFO")] == [
        "nublado purger: report not written in full: standard output closed (Broken pipe);"
        " the run itself completed"
    ]
    assert not (tree / "scratch" / "many").exists()  # the purge went on to the end


@pytest.mark.parametrize("which", ["config", "policy"])
def test_binary_file_is_one_line_and_exit_2(
    config_file: Path, tree: Path, capsys, which: str
) -> None:
    binary = tree / "binary.yaml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00\x00")
    args = ["-c", str(binary)] if which == "config" else ["-c", str(config_file), "-p", str(binary)]

    assert run("purger", "report", *args) == 2

    err = capsys.readouterr().err
    assert err == f"nublado: error: {binary}: not a text (UTF-8) file: byte 8 is 0xff\n"


def test_policy_without_a_config_file(tree: Path, write_policy, monkeypatch, capsys) -> None:
    if Path("/etc/purger/config.yaml").exists():
        pytest.skip("this machine has a real /etc/purger/config.yaml")
    write_policy()
    old(tree / "scratch" / "large")

    assert run("purger", "report", "-p", str(tree / "policy.yaml"), "--workers", "1") == 0

    assert f"  -> {tree}/scratch/large\n" in capsys.readouterr().out


def test_missing_policy_root_is_a_warning_not_a_failure(
    tree: Path, write_policy, policy, capsys
) -> None:
    policy["directories"][1]["path"] = "{root}/nowhere"
    write_policy(policy, logProfile="development")

    assert run("purger", "execute", "-c", str(tree / "config.yaml"), "--workers", "1") == 0

    err = capsys.readouterr().err
    assert f"WARNING [rsp_scratchpurger] Policy root {tree}/nowhere does not exist; skipped" in err
