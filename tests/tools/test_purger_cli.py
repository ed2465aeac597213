"""``nublado purger`` end to end: exit codes, output, environment, Slack alerts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from nublado.cli import main
from nublado.purger.config import PurgerConfig

HOUR = 3600
HOOK = "https://hooks.slack.example.com/services/T0/B0/xyz"


def opened_path(target: Any, dir_fd: int | None) -> str:
    """The full path an ``os.open`` call names (the purger opens relative to ``dir_fd``)."""
    if dir_fd is None:
        return str(target)
    return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), str(target))


def run(*args: str) -> int:
    """Run ``nublado`` in-process; return its exit status."""
    try:
        result = main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return int(result or 0)


@pytest.fixture
def config_file(tree: Path, write_policy: Callable[..., PurgerConfig]) -> Path:
    write_policy(logProfile="development")
    return tree / "config.yaml"


def test_report(config_file: Path, tree: Path, age, capsys) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)

    assert run("purger", "report", "-c", str(config_file), "--workers", "1") == 0

    out = capsys.readouterr().out
    assert f"  -> {tree}/scratch/large\n" in out
    assert (tree / "scratch" / "large").exists()


def test_execute(config_file: Path, tree: Path, age) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)

    assert run("purger", "execute", "-c", str(config_file)) == 0

    assert not (tree / "scratch" / "large").exists()
    assert (tree / "scratch" / "small").exists()


def test_execute_dry_run_says_so(config_file: Path, tree: Path, age, capsys) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)

    assert run("purger", "execute", "-c", str(config_file), "--dry-run") == 0
    assert "Cannot purge because dry_run enabled" in capsys.readouterr().err
    assert (tree / "scratch" / "large").exists()

    assert run("purger", "execute", "-c", str(config_file)) == 0
    assert "Cannot purge because dry_run enabled" not in capsys.readouterr().err


def test_group_options_apply_to_the_subcommand(config_file: Path, tree: Path, age) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)

    assert run("purger", "-x", "-c", str(config_file), "execute") == 0

    assert (tree / "scratch" / "large").exists()


def test_missing_config_exits_2(tmp_path: Path, capsys) -> None:
    assert run("purger", "report", "-c", str(tmp_path / "does-not-exist.yaml")) == 2
    assert "not found" in capsys.readouterr().err


def test_execute_without_any_config_fails(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    # /etc/purger/config.yaml is the default; it does not exist on a test machine.
    if Path("/etc/purger/config.yaml").exists():
        pytest.skip("this machine has a real /etc/purger/config.yaml")
    assert run("purger", "execute") == 2


def test_config_file_from_environment_wins(config_file: Path, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RSP_SCRATCHPURGER_CONFIG_FILE", str(config_file))

    assert run("purger", "report", "-c", str(tmp_path / "ignored.yaml")) == 0


def test_missing_policy_file_exits_2(config_file: Path, tmp_path: Path) -> None:
    assert run("purger", "report", "-c", str(config_file), "-p", str(tmp_path / "no.yaml")) == 2


def test_warn_plans_ahead_without_deleting(config_file: Path, tree: Path, capsys) -> None:
    assert run("purger", "warn", "-c", str(config_file), "-t", "3650d") == 0

    captured = capsys.readouterr()
    assert captured.out.count("  -> ") == 4
    assert "Planning for time 3650d from now." in captured.err
    assert (tree / "scratch" / "large").exists()


def test_warn_rejects_bare_numbers(config_file: Path, capsys) -> None:
    assert run("purger", "warn", "-c", str(config_file), "-t", "5") == 2
    assert "not a duration" in capsys.readouterr().err


def test_environment_debug_turns_on_debug_logging(
    config_file: Path, tree, age, monkeypatch, capsys
) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)
    monkeypatch.setenv("NUBLADO_LOG_LEVEL", "warning")
    monkeypatch.setenv("DEBUG", "true")

    assert run("purger", "execute", "-c", str(config_file), "-x") == 0

    assert "DEBUG [rsp_scratchpurger]" in capsys.readouterr().err


def test_production_logs_are_json_lines(tree: Path, write_policy, capsys) -> None:
    write_policy(logProfile="production", logLevel="info", dryRun=True)

    assert run("purger", "execute", "-c", str(tree / "config.yaml")) == 0

    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    assert {
        "event": "Cannot purge because dry_run enabled; reporting instead",
        "severity": "warning",
        "logger": "rsp_scratchpurger",
    } in events


def _unreadable(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Opening ``path`` fails as if it had mode 000 (root ignores real modes)."""
    real = os.open

    def open_(target: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if opened_path(target, kwargs.get("dir_fd")) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(target, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)


def test_failures_are_listed_and_exit_1(
    config_file: Path, tree: Path, age, monkeypatch, capsys
) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)
    _unreadable(monkeypatch, tree / "scratch" / "foo")

    assert run("purger", "execute", "-c", str(config_file), "--workers", "1") == 1

    err = capsys.readouterr().err
    assert f"failed: {tree}/scratch/foo: Permission denied" in err
    assert not (tree / "scratch" / "large").exists()  # the run went on


@respx.mock
def test_failure_posts_slack_alert(config_file: Path, tree: Path, monkeypatch) -> None:
    route = respx.post(HOOK).mock(return_value=httpx.Response(200))
    monkeypatch.setenv("NUBLADO_ALERT_HOOK", HOOK)
    _unreadable(monkeypatch, tree / "scratch" / "foo")

    assert run("purger", "report", "-c", str(config_file), "--workers", "1") == 1

    assert route.call_count == 1
    body = json.loads(route.calls[0].request.content)
    assert "Nublado File Purger" in body["text"]
    texts = [block.get("text", {}).get("text", "") for block in body["blocks"]]
    assert any(
        t.startswith("*Failed Files*") and "scratch/foo: Permission denied" in t for t in texts
    )


@respx.mock
def test_bad_config_posts_alert_and_slack_outage_does_not_hide_it(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    route = respx.post(HOOK).mock(return_value=httpx.Response(500))
    monkeypatch.setenv("NUBLADO_ALERT_HOOK", HOOK)

    assert run("purger", "report", "-c", str(tmp_path / "missing.yaml")) == 2

    assert route.call_count == 1
    assert "not found" in capsys.readouterr().err


@respx.mock
def test_success_posts_nothing(config_file: Path, monkeypatch) -> None:
    route = respx.post(HOOK).mock(return_value=httpx.Response(200))
    monkeypatch.setenv("NUBLADO_ALERT_HOOK", HOOK)

    assert run("purger", "report", "-c", str(config_file)) == 0
    assert route.call_count == 0


def test_cli_import_stays_light() -> None:
    code = (
        "import sys, nublado.cli, nublado.purger.cli;"
        "heavy = {'kubernetes', 'starlette', 'httpx', 'pydantic', 'structlog'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@respx.mock
def test_alert_hook_from_configuration(tree: Path, write_policy, monkeypatch) -> None:
    route = respx.post(HOOK).mock(return_value=httpx.Response(200))
    write_policy(alertHook=HOOK)
    _unreadable(monkeypatch, tree / "scratch" / "foo")

    assert run("purger", "report", "-c", str(tree / "config.yaml"), "--workers", "1") == 1
    assert route.call_count == 1


@pytest.mark.parametrize("hook", ["http://[::1", "not a url", "ftp://example.invalid/x"])
@pytest.mark.parametrize(("config_name", "expected"), [("missing.yaml", 2), (None, 1)])
def test_malformed_alert_hook_never_hides_the_failure(
    config_file: Path,
    tree: Path,
    monkeypatch,
    capsys,
    caplog,
    hook: str,
    config_name: str | None,
    expected: int,
) -> None:
    monkeypatch.setenv("NUBLADO_ALERT_HOOK", hook)
    config = str(tree / config_name) if config_name else str(config_file)
    if config_name is None:
        _unreadable(monkeypatch, tree / "scratch" / "foo")

    assert run("purger", "report", "-c", config, "--workers", "1") == expected

    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert ("not found" if config_name else "Permission denied") in captured.err
    # Once logging is configured it writes to stdout; before that, caplog sees it.
    logged = captured.out + captured.err + "".join(caplog.messages)
    assert "Could not post alert to Slack" in logged


@pytest.mark.parametrize("name", ["DEBUG", "NUBLADO_DEBUG", "NUBLADO_DRY_RUN", "DRYRUN"])
def test_empty_environment_value_is_unset(
    config_file: Path, tree: Path, age, monkeypatch, capsys, name: str
) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)
    monkeypatch.setenv(name, "")

    assert run("purger", "execute", "-c", str(config_file), "--workers", "1") == 0

    captured = capsys.readouterr()
    assert "not a boolean" not in captured.err
    assert not (tree / "scratch" / "large").exists()  # dry run stays off


def test_nul_in_policy_file_is_a_configuration_error(tree: Path, capsys) -> None:
    config = tree / "nul.yaml"
    config.write_text('policyFile: "/tmp/a\\0b"\n')

    assert run("purger", "report", "-c", str(config)) == 2

    err = capsys.readouterr().err
    assert "must not contain a NUL character" in err
    assert "Traceback" not in err


def test_a_misspelt_policy_key_is_warned_once_with_a_suggestion(
    tree: Path, write_policy, policy, age, capsys, monkeypatch
) -> None:
    monkeypatch.setattr("nublado.purger.config._warned", set())
    policy["directories"][0]["intervals"]["small"] = {"acces_interval": "1s"}
    write_policy(policy, logProfile="development")
    age(tree / "scratch" / "small", atime=8 * HOUR)
    config = str(tree / "config.yaml")

    assert run("purger", "report", "-c", config, "--workers", "1") == 0
    assert run("purger", "report", "-c", config, "--workers", "1") == 0

    out, err = capsys.readouterr()
    warning = (
        f"nublado: warning: {tree}/policy.yaml: directories[0].intervals.small.acces_interval:"
        " unknown policy key, ignored (did you mean access_interval?)\n"
    )
    assert err.count(warning) == 1
    assert f"{tree}/scratch/small" not in out  # the misspelt rule does nothing
