"""``nublado startup``: prepare the lab; the lab starts even if this partly fails."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from .preparer import Preparer, StartupPaths

__all__ = ["startup"]

_DEFAULTS = StartupPaths()


@click.command()
@click.option(
    "--startup-path",
    type=click.Path(path_type=Path),
    default=_DEFAULTS.startup,
    envvar="NUBLADO_STARTUP_PATH",
    show_default=True,
    help="Where env.json and args.json are written.",
)
@click.option(
    "--etc-path",
    type=click.Path(path_type=Path),
    default=_DEFAULTS.etc,
    envvar="NUBLADO_ETC_PATH",
    show_default=True,
    help="Directory holding skel/ and dircolors.ansi-universal.",
)
@click.option(
    "--tmp-path",
    type=click.Path(path_type=Path),
    default=_DEFAULTS.tmp,
    envvar="NUBLADO_TMP_PATH",
    show_default=True,
    help="Fallback home and butler cache parent.",
)
def startup(startup_path: Path, etc_path: Path, tmp_path: Path) -> None:
    """Write the lab's env.json and args.json and tidy the home (reads NUBLADO_HOME etc.)."""
    level = logging.DEBUG if os.environ.get("DEBUG") else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    paths = StartupPaths(startup=startup_path, etc=etc_path, tmp=tmp_path)
    Preparer(paths=paths).prepare()
