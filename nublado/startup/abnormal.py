"""Abnormal startup: what the lab is told when preparing it failed.

A lab whose preparation failed (a full disk, a quota, a missing variable)
still starts, but in a safe place and with a page explaining why, so the user
sees the problem instead of a lab that silently misbehaves. The error travels
to JupyterLab as ``ABNORMAL_STARTUP*`` variables with a portable symbolic code.
"""

from __future__ import annotations

import errno
from enum import IntEnum

__all__ = [
    "ABNORMAL_KEYS",
    "PortableErrno",
    "abnormal_environment",
    "missing_environment_error",
    "portable_error",
    "welcome_text",
]

ABNORMAL_KEYS = (
    "ABNORMAL_STARTUP",
    "ABNORMAL_STARTUP_ERRNO",
    "ABNORMAL_STARTUP_STRERROR",
    "ABNORMAL_STARTUP_ERRORCODE",
    "ABNORMAL_STARTUP_MESSAGE",
)
"""Variables set for an abnormal startup (and removed when it is cleared)."""


class PortableErrno(IntEnum):
    """Error codes of our own, beyond the system's errno values."""

    EBADENV = 200
    EUNKNOWN = 201


_PORTABLE_VALUES = frozenset(int(code) for code in PortableErrno)

_STRERROR = {
    PortableErrno.EBADENV: "Missing environment variable",
    PortableErrno.EUNKNOWN: "Unknown error 201",
}


def missing_environment_error(name: str) -> OSError:
    """The error for a required variable that is not set (code EBADENV)."""
    code = PortableErrno.EBADENV
    return OSError(int(code), _STRERROR[code], name)


def portable_error(exc: BaseException) -> tuple[OSError, str]:
    """Normalise any failure to an OSError with a known code, and that code's name.

    System errnos keep their names; our own codes keep theirs; anything else
    (no errno, or one the system does not know) becomes EUNKNOWN, keeping the
    original description when there is one.
    """
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in errno.errorcode:
            return exc, errno.errorcode[exc.errno]
        if exc.errno in _PORTABLE_VALUES:
            return exc, PortableErrno(exc.errno).name
    unknown = PortableErrno.EUNKNOWN
    if isinstance(exc, OSError):
        strerror = exc.strerror or _STRERROR[unknown]
        filename = exc.filename
    else:
        strerror = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        filename = None
    if filename is None:
        return OSError(int(unknown), strerror), unknown.name
    return OSError(int(unknown), strerror, filename), unknown.name


def abnormal_environment(exc: BaseException) -> dict[str, str]:
    """The ``ABNORMAL_STARTUP*`` variables describing ``exc``."""
    error, code = portable_error(exc)
    return {
        "ABNORMAL_STARTUP": "TRUE",
        "ABNORMAL_STARTUP_ERRNO": str(error.errno),
        "ABNORMAL_STARTUP_STRERROR": error.strerror or "",
        "ABNORMAL_STARTUP_ERRORCODE": code,
        "ABNORMAL_STARTUP_MESSAGE": str(error),
    }


def _advice(code: str, home: str) -> str:
    if code == "EDQUOT":
        return (
            "You have exceeded your storage quota. Open a terminal and remove files you no"
            f" longer need from `{home}`; the `quota` command shows how much you use. Then shut"
            " down and restart your lab."
        )
    if code == "ENOSPC":
        return (
            f"The file system holding `{home}` is full, which you may not be able to fix"
            " yourself. Remove what you can from it in a terminal, then shut down and restart"
            " your lab."
        )
    if code in ("EROFS", "EACCES"):
        return (
            f"Your lab does not have permission to write to `{home}`. Ask your RSP site"
            " administrator to check the ownership and permissions of your home directory."
        )
    if code == "EBADENV":
        return (
            "Your lab is missing environment variables it needs to start. This is a problem"
            " with the lab configuration, not with your files."
        )
    return ""


def welcome_text(code: str, message: str, home: str) -> str:
    """The Markdown page shown in place of the usual landing page."""
    return (
        "\n# Abnormal startup\n\n"
        "Your Lab container did not start normally.\n\n"
        "Do not trust this lab for work you want to keep.\n\n"
        f"{_advice(code, home)}\n\n"
        "Please open an issue with your RSP site administrator with the\n"
        f"following information: `{message}`\n"
    )
