"""The daemon tests run the controller as its rendered ServiceAccount (`controller_identity`)."""

from __future__ import annotations

from controller_identity import client, controller_token, sandbox

__all__ = ["client", "controller_token", "sandbox"]
