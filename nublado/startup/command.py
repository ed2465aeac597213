"""Run an external command for the preparer (``git lfs install``), bounded in time."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from ..errors import NubladoError

__all__ = ["Command", "CommandFailedError", "CommandTimedOutError"]

_logger = logging.getLogger(__name__)


class CommandFailedError(NubladoError):
    """A command exited non-zero and its caller did not expect that."""

    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"{shlex.join(args)!r} failed with status {result.returncode}")
        self.returncode = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr


class CommandTimedOutError(NubladoError):
    """A command ran past its time limit and was killed."""

    def __init__(self, args: list[str], exc: subprocess.TimeoutExpired) -> None:
        super().__init__(f"{shlex.join(args)!r} timed out after {exc.timeout:g}s")
        self.stdout = exc.stdout
        self.stderr = exc.stderr


class Command:
    """Runs commands with captured text output; optionally tolerates failure."""

    def __init__(self, *, ignore_fail: bool = False) -> None:
        self._ignore_fail = ignore_fail

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: timedelta | float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args``; OSError if it cannot be started at all."""
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        argv = list(args)
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                check=False,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                timeout=seconds,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandTimedOutError(argv, exc) from exc
        if result.returncode != 0:
            _logger.error(
                f"{shlex.join(argv)!r} failed with status {result.returncode}: "
                f"{result.stderr.strip()}"
            )
            if not self._ignore_fail:
                raise CommandFailedError(argv, result)
        else:
            _logger.debug(f"{shlex.join(argv)!r} succeeded")
        return result
