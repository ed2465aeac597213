"""``nublado inithome``: provision the user's home from the pod environment."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from ..errors import InputError
from .provisioner import InvalidHomeError, Provisioner

__all__ = ["inithome"]

_MISSING = "Environment variables 'NUBLADO_HOME', 'NUBLADO_UID', and 'NUBLADO_GID' must all be set."
_NOT_ABSOLUTE = "Environment variable 'NUBLADO_HOME' must be set to an absolute path, not {home!r}."
_NOT_INT = "Environment variables 'NUBLADO_UID' and 'NUBLADO_GID' must each be set to an integer."


@click.command()
def inithome() -> None:
    """Create the home directory named by NUBLADO_HOME for NUBLADO_UID:NUBLADO_GID."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logger = logging.getLogger("nublado.inithome")
    try:
        home = os.environ["NUBLADO_HOME"]
        uid_text = os.environ["NUBLADO_UID"]
        gid_text = os.environ["NUBLADO_GID"]
    except KeyError as exc:
        logger.critical(_MISSING)
        raise InputError(_MISSING) from exc
    if not home or not os.path.isabs(home):
        # Path("") is Path("."): running as root, that would chown the working directory.
        message = _NOT_ABSOLUTE.format(home=home)
        logger.critical(message)
        raise InputError(message)
    try:
        uid, gid = int(uid_text), int(gid_text)
    except ValueError as exc:
        logger.critical(_NOT_INT)
        raise InputError(_NOT_INT) from exc
    try:
        Provisioner(home=Path(home), uid=uid, gid=gid).provision()
    except (OSError, InvalidHomeError) as exc:
        # A missing parent, a refused chown or an unsafe home: one line, no traceback.
        logger.critical(f"Cannot provision {home}: {exc}")
        raise SystemExit(1) from exc
