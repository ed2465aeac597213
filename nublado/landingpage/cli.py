"""``nublado landingpage``: install the landing page; never blocks a lab start."""

from __future__ import annotations

import logging
import os

import click

from ..errors import InputError, NubladoError
from .provisioner import LandingPageProvisioner

__all__ = ["landingpage"]

_NO_HOME = (
    "Environment variable 'NUBLADO_HOME' must be set to the user's home directory"
    " (a lab's init containers get it from the controller)."
)
_NOT_ABSOLUTE = "Environment variable 'NUBLADO_HOME' must be set to an absolute path, not {home!r}."


def _check_home() -> None:
    """Refuse to run without a home: that is a misuse, not a lab to keep starting.

    The controller always sets ``NUBLADO_HOME`` in this init container, so its
    absence means the command was run by hand outside a lab; an empty or
    relative value would copy into the working directory.
    """
    home = os.environ.get("NUBLADO_HOME")
    if home is None:
        raise InputError(_NO_HOME)
    if not os.path.isabs(home):
        raise InputError(_NOT_ABSOLUTE.format(home=home))


@click.command()
def landingpage() -> None:
    """Copy the landing page files into the user's home (see CST_LANDING_PAGE_*)."""
    level = logging.DEBUG if os.environ.get("DEBUG") else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _check_home()
    logger = logging.getLogger("nublado.landingpage")
    try:
        LandingPageProvisioner.from_environment().go()
    except (NubladoError, OSError) as exc:
        # A missing landing page (or a user's unreadable settings file) must not stop
        # the user's lab: log one line and succeed.
        logger.error(f"Provisioner failed: {exc}")
    except Exception:
        # Not a failure we foresaw: keep the traceback for whoever reads the pod's log.
        logger.exception("Provisioner failed")
