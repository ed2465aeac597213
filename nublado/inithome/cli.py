"""``nublado inithome``: provision the user's home from the pod environment."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from ..errors import InputError
from .provisioner import InvalidHomeError, Provisioner

__all__ = ["inithome"]

_VARIABLES = ("NUBLADO_HOME", "NUBLADO_UID", "NUBLADO_GID")
_MISSING = "Environment variables 'NUBLADO_HOME', 'NUBLADO_UID', and 'NUBLADO_GID' must all be set"
_NOT_ABSOLUTE = "Environment variable 'NUBLADO_HOME' must be set to an absolute path, not {home!r}."
_NOT_INT = "Environment variables 'NUBLADO_UID' and 'NUBLADO_GID' must each be set to an integer"


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _read_environment() -> tuple[str, int, int]:
    """The home, UID and GID, or an InputError naming each variable at fault.

    The error is raised, not logged: the ``nublado`` command prints it once,
    as one line, and exits 2.
    """
    missing = [name for name in _VARIABLES if name not in os.environ]
    if missing:
        raise InputError(f"{_MISSING}; not set: {_quoted(missing)}.")
    home = os.environ["NUBLADO_HOME"]
    if not home or not os.path.isabs(home):
        # Path("") is Path("."): running as root, that would chown the working directory.
        raise InputError(_NOT_ABSOLUTE.format(home=home))
    values: dict[str, int] = {}
    wrong: list[str] = []
    for name in ("NUBLADO_UID", "NUBLADO_GID"):
        try:
            values[name] = int(os.environ[name])
        except ValueError:
            wrong.append(f"'{name}' is {os.environ[name]!r}")
    if wrong:
        raise InputError(f"{_NOT_INT}; {' and '.join(wrong)}.")
    return home, values["NUBLADO_UID"], values["NUBLADO_GID"]


@click.command()
def inithome() -> None:
    """Create the home directory named by NUBLADO_HOME for NUBLADO_UID:NUBLADO_GID."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    home, uid, gid = _read_environment()
    try:
        Provisioner(home=Path(home), uid=uid, gid=gid).provision()
    except (OSError, InvalidHomeError) as exc:
        # A missing parent, a refused chown or an unsafe home: one line, no traceback.
        logging.getLogger("nublado.inithome").critical(f"Cannot provision {home}: {exc}")
        raise SystemExit(1) from exc
