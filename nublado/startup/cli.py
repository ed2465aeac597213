"""``nublado startup``: prepare the lab; the lab starts even if this partly fails."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from ..errors import InputError
from .preparer import Preparer, StartupPaths

__all__ = ["LAB_VARIABLES", "NotInLabError", "startup"]

_DEFAULTS = StartupPaths()

LAB_VARIABLES = ("JUPYTERHUB_SERVICE_PREFIX", "JUPYTER_IMAGE_SPEC")
"""Variables every lab container has and a workstation does not.

Both come from the lab's ``<user>-nb-env`` ConfigMap, which the controller
gives every init container: the spawner must send ``JUPYTERHUB_SERVICE_PREFIX``
and the controller always sets ``JUPYTER_IMAGE_SPEC`` (a reserved name that
no configuration can remove). ``NUBLADO_HOME`` is not among them: a lab
without it still starts, abnormally, so that the user is told why.
"""


class NotInLabError(InputError):
    """``nublado startup`` was run outside a lab, where it would write into /etc."""

    def __init__(self, missing: list[str]) -> None:
        names = " and ".join(f"'{name}'" for name in missing)
        what = f"variables {names} are" if len(missing) > 1 else f"variable {names} is"
        super().__init__(
            f"not in a lab: environment {what} not set (nublado startup prepares a lab"
            " container and runs only as a lab's init container)."
        )
        self.missing = missing


def _check_in_lab() -> None:
    """Refuse before writing anything unless the lab's environment is there."""
    missing = [name for name in LAB_VARIABLES if not os.environ.get(name)]
    if missing:
        raise NotInLabError(missing)


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
    _check_in_lab()
    level = logging.DEBUG if os.environ.get("DEBUG") else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    paths = StartupPaths(startup=startup_path, etc=etc_path, tmp=tmp_path)
    Preparer(paths=paths).prepare()
