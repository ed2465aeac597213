"""Create or check a user's home directory before the lab starts.

This runs as root in the ``nublado-std-inithome`` init container, with only the
home volume mounted. It never recurses: it creates one directory level, and it
only takes over a wrongly owned home when that home is empty, so that a
misconfigured UID can never hand one user's files to another.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, NubladoError

__all__ = [
    "MAX_ID",
    "InvalidHomeError",
    "InvalidIdError",
    "Provisioner",
]

MAX_ID = 2**32 - 2
"""Largest usable UID or GID (2**32 - 1 is the kernel's "no id" value)."""

_logger = logging.getLogger(__name__)


class InvalidIdError(InputError):
    """A UID or GID is negative or outside the range the kernel accepts."""

    def __init__(self, value: int) -> None:
        if value < 0:
            super().__init__(f"UID or GID must be nonnegative, not {value}")
        else:
            super().__init__(f"UID or GID out of range ({value} > {MAX_ID})")


class InvalidHomeError(NubladoError):
    """The home path exists but cannot safely be used as this user's home."""


def _check_id(value: int) -> int:
    if value < 0 or value > MAX_ID:
        raise InvalidIdError(value)
    return value


@dataclass(frozen=True)
class Provisioner:
    """Make sure ``home`` exists, is a directory and belongs to ``uid:gid``."""

    home: Path
    uid: int
    gid: int

    def __post_init__(self) -> None:
        if not self.home.is_absolute():
            # Path("") is Path("."): never provision (chown) the working directory.
            raise InvalidHomeError(f"home must be an absolute path, not {str(self.home)!r}")
        _check_id(self.uid)
        _check_id(self.gid)

    def provision(self) -> None:
        """Create the home if missing, otherwise check it and fix what is safe to fix."""
        try:
            info = self.home.lstat()
        except FileNotFoundError:
            self._create()
            return
        if stat.S_ISLNK(info.st_mode):
            # Refused, not followed: as root, a link could hand any directory to the user.
            raise InvalidHomeError(f"{self.home} is a symlink")
        if not stat.S_ISDIR(info.st_mode):
            raise InvalidHomeError(f"{self.home} exists but is not a directory")
        if (info.st_uid, info.st_gid) != (self.uid, self.gid):
            self._fix_owner(info.st_uid, info.st_gid)
        # Only the permission bits: setgid (a 2700 home, as some sites' homes inherit
        # from their parent) or the sticky bit changes nothing about who can read it.
        mode = info.st_mode & 0o777
        if mode != 0o700:
            _logger.warning(f"{self.home} has unexpected permissions: {mode:04o} != 0700")

    def _create(self) -> None:
        """Create exactly one level, mode 0700, then give it to the user."""
        old_umask = os.umask(0o077)
        try:
            # Not recursive on purpose: a missing parent means a wrong mount or
            # prefix, which must fail rather than invent a directory tree.
            self.home.mkdir(mode=0o700)
        finally:
            os.umask(old_umask)
        os.chown(self.home, self.uid, self.gid)

    def _fix_owner(self, uid: int, gid: int) -> None:
        """Take over a wrongly owned home only if it holds nothing."""
        owner = f"{uid}:{gid}, not {self.uid}:{self.gid}"
        with os.scandir(self.home) as entries:
            empty = next(entries, None) is None
        if not empty:
            raise InvalidHomeError(f"{self.home} is owned by {owner} and is not empty")
        _logger.warning(f"{self.home} is owned by {owner} but is empty, resetting ownership")
        os.chown(self.home, self.uid, self.gid)
