"""``nublado purger``: report on, warn about, or purge old files in scratch space.

Exit status: 0 when everything went as planned; 1 when some files or
directories could not be checked or removed (all are listed on stderr, and the
rest of the run still happened); 2 for a bad or missing configuration or policy.
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
from .config import CONFIG_FILE, CONFIG_FILE_ENV_VAR, ROOT_LOGGER, PurgerConfig
from .log import configure_logging
from .purger import PurgeFailedError, Purger

__all__ = ["purger"]

F = TypeVar("F", bound=Callable[..., Any])


def _common_options(function: F) -> F:
    """The options upstream accepts on the group and on every subcommand."""
    decorators = [
        click.option("-x", "--dry-run", is_flag=True, default=False, help="Report, do not delete."),
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
    path = Path(
        os.environ.get(CONFIG_FILE_ENV_VAR) or options.get("config_file") or str(CONFIG_FILE)
    )
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
    options: dict[str, Any], action: Callable[[Purger], None], future: timedelta | None = None
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
        action(Purger(config, workers=workers, progress=True, logger=logger))
    except PurgeFailedError as exc:
        for path, error in sorted(exc.failed_files.items()):
            click.echo(f"nublado purger: failed: {path}: {error}", err=True)
        click.echo(f"nublado purger: {len(exc.failed_files)} failures", err=True)
        if hook:
            post_alert(hook, exc, logger=logger)
        raise SystemExit(1) from exc
    except Exception as exc:
        if hook:
            post_alert(hook, exc, logger=logger)
        raise


def _report(purger: Purger) -> None:
    errors = purger.stream_report(sys.stdout)
    if errors:
        raise PurgeFailedError(errors)


def _execute(purger: Purger) -> None:
    purger.stream_execute(sys.stdout)


@click.group()
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
