"""``nublado landingpage``: install the landing page; never blocks a lab start."""

from __future__ import annotations

import logging
import os

import click

from .provisioner import LandingPageProvisioner

__all__ = ["landingpage"]


@click.command()
def landingpage() -> None:
    """Copy the landing page files into the user's home (see CST_LANDING_PAGE_*)."""
    level = logging.DEBUG if os.environ.get("DEBUG") else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        LandingPageProvisioner.from_environment().go()
    except Exception:
        # A missing landing page must not stop the user's lab: log and succeed.
        logging.getLogger("nublado.landingpage").exception("Provisioner failed")
