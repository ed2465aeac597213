"""Exceptions shared by every layer.

Every failure caused by what a person gave us (a configuration file, a command
line value, a request) derives from `InputError`: the CLI prints its message on
one line and exits with status 2, never a traceback.
"""

from __future__ import annotations

__all__ = ["InputError", "NubladoError"]


class NubladoError(Exception):
    """Base class of all errors raised on purpose by this package."""


class InputError(NubladoError):
    """Bad input from a person: the message says what and where, on one line per problem."""
