"""``nublado purger``: report on, warn about, or purge old files in scratch space.

The report goes to stdout and nothing else does: logs, failures and the
progress line go to stderr, so the report can be piped. Exit status: 0 when
everything went as planned; 1 when some files or directories could not be
checked or removed (all are listed on stderr, and the rest of the run still
happened) or the report could not be written in full (stdout closed: the purge
still completes); 2 for a bad or missing configuration or policy.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from ..units import parse_cli_duration
from .alert import ALERT_HOOK_ENV_VAR, post_alert
from .config import (
    CONFIG_FILE,
    CONFIG_FILE_ENV_VAR,
    ROOT_LOGGER,
    PurgerConfig,
    load_policy,
    new_warnings,
)
from .log import configure_logging
from .purger import PurgeFailedError, Purger, PurgeSummary, display_path

__all__ = ["purger"]

F = TypeVar("F", bound=Callable[..., Any])


_DRY_RUN = click.option(
    "-x", "--dry-run", is_flag=True, default=False, help="Report, do not delete."
)
"""Only where something is deleted: the group (as upstream) and ``execute``."""


def _common_options(function: F) -> F:
    """The options the group and every subcommand accept (``--dry-run`` aside)."""
    decorators = [
        click.option(
            "-p", "--policy-file", type=click.Path(path_type=Path), help="Policy file to use."
        ),
        click.option(
            "-c",
            "--config-file",
            type=click.Path(path_type=Path),
            help=f"Configuration file [default: {CONFIG_FILE}; ${CONFIG_FILE_ENV_VAR} wins].",
        ),
        click.option(
            "-d", "--debug", is_flag=True, default=False, envvar="DEBUG", help="Log at debug level."
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            help="Processes walking the tree [default: the CPUs this process may use].",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _default_workers() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _merged(ctx: click.Context, options: dict[str, Any]) -> dict[str, Any]:
    """Subcommand options, falling back to the same options given to the group."""
    group: dict[str, Any] = ctx.obj or {}
    return {key: value or group.get(key) for key, value in options.items()}


def _load_config(options: dict[str, Any], future: timedelta | None) -> PurgerConfig:
    named = os.environ.get(CONFIG_FILE_ENV_VAR) or options.get("config_file")
    path = Path(named or str(CONFIG_FILE))
    if not named and options.get("policy_file") and not path.exists():
        # -p POLICY is enough on its own: the defaults and the environment decide the rest.
        config = PurgerConfig.from_values({}, os.environ, source="environment")
    else:
        config = PurgerConfig.load(path)
    # Flags only switch things on; when absent the configuration decides.
    changes: dict[str, Any] = {}
    if options.get("dry_run"):
        changes["dry_run"] = True
    if options.get("debug"):
        changes["debug"] = True
    if options.get("policy_file"):
        changes["policy_file"] = options["policy_file"]
    if future is not None:
        changes["future_duration"] = future
    return dataclasses.replace(config, **changes)


def _run(
    options: dict[str, Any],
    action: Callable[[Purger], PurgeSummary],
    future: timedelta | None = None,
) -> None:
    """Load, run ``action``, and turn failures into an exit status and an alert."""
    logger = logging.getLogger(ROOT_LOGGER)
    # The variable is read directly so that even a bad configuration is alerted on.
    hook = os.environ.get(ALERT_HOOK_ENV_VAR)
    try:
        config = _load_config(options, future)
        hook = hook or config.alert_hook
        logger = configure_logging(config)
        workers = options.get("workers") or _default_workers()
        policy = load_policy(config.policy_file)
        for message in new_warnings(policy.ignored):
            click.echo(f"nublado: warning: {message}", err=True)
        purger = Purger(config, workers=workers, progress=True, logger=logger, policy=policy)
        summary = action(purger)
    except Exception as exc:
        if hook:
            post_alert(hook, exc, logger=logger)
        raise
    status = 0
    if summary.output_error is not None:
        # The reader went away (``| head``): the purge itself went on to the end.
        _silence_stdout()
        click.echo(
            f"nublado purger: report not written in full: standard output closed"
            f" ({summary.output_error}); the run itself completed",
            err=True,
        )
        status = 1
    if summary.failures:
        for path, error in sorted(summary.failures.items()):
            click.echo(f"nublado purger: failed: {display_path(path)}: {error}", err=True)
        count = len(summary.failures)
        click.echo(f"nublado purger: {count} failure{'s' if count != 1 else ''}", err=True)
        if hook:
            post_alert(hook, PurgeFailedError(summary.failures), logger=logger)
        status = 1
    if status:
        raise SystemExit(status)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _report(purger: Purger) -> PurgeSummary:
    return purger.run_report(sys.stdout)


def _execute(purger: Purger) -> PurgeSummary:
    return purger.run(sys.stdout)


@click.group()
@_DRY_RUN
@_common_options
@click.pass_context
def purger(ctx: click.Context, /, **options: Any) -> None:
    """Report on, warn about, or purge files by age and size under policy roots.

    Exits 1 when some files or directories could not be checked or removed (all
    are listed on stderr; the rest of the run still happens), 2 on a bad or
    missing configuration or policy.
    """
    ctx.obj = options


@purger.command()
@_common_options
@click.pass_context
def report(ctx: click.Context, /, **options: Any) -> None:
    """List the files the policy would purge now."""
    _run(_merged(ctx, options), _report)


@purger.command()
@_DRY_RUN
@_common_options
@click.pass_context
def execute(ctx: click.Context, /, **options: Any) -> None:
    """Purge the files the policy selects, then remove empty directories."""
    _run(_merged(ctx, options), _execute)


def _parse_future(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_cli_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@purger.command()
@_common_options
@click.option(
    "-t",
    "--future-duration",
    callback=_parse_future,
    help="Plan as if this much time had passed (e.g. 7d, 1w 2d).",
)
@click.pass_context
def warn(ctx: click.Context, /, future_duration: timedelta | None, **options: Any) -> None:
    """List the files the policy would purge after --future-duration (nothing is deleted)."""
    _run(_merged(ctx, options), _report, future=future_duration)
