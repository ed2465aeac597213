"""Copy the landing page into the user's home and make Markdown open rendered.

Runs as the user in the ``nublado-std-landingpage`` init container of
science-platform labs. The files are refreshed on every start, so a user who
edits the welcome page gets the current one back; only a directory or a
special file in the way stops the copy, since replacing those could lose data.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import NubladoError

__all__ = [
    "DOCMANAGER_SETTINGS",
    "DestinationError",
    "DestinationIsDirectoryError",
    "LandingPageProvisioner",
    "PrecheckError",
    "SettingsError",
]

DOCMANAGER_SETTINGS = Path(
    ".jupyter/lab/user-settings/@jupyterlab/docmanager-extension/plugin.jupyterlab-settings"
)
"""JupyterLab settings file, relative to home, that holds the default viewers."""


_logger = logging.getLogger(__name__)


class PrecheckError(NubladoError):
    """A source file or the home directory is not what the copy needs."""


class DestinationError(NubladoError):
    """Something that is neither a file, a symlink nor a directory is in the way."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"Destination {path} exists and is not a file or symlink")
        self.path = path


class DestinationIsDirectoryError(DestinationError):
    """A directory is in the way of a landing-page file; it is never removed."""

    def __init__(self, path: Path) -> None:
        NubladoError.__init__(self, f"Destination {path} is a directory")
        self.path = path


class SettingsError(NubladoError):
    """The user's docmanager settings file cannot be read as JSON; it is left alone."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} is not valid JSON: {reason}")
        self.path = path


@dataclass(frozen=True)
class LandingPageProvisioner:
    """Copy ``files`` from ``source_dir`` into ``destination_dir`` under ``home``."""

    source_dir: Path
    destination_dir: Path
    files: tuple[str, ...]
    home: Path

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> LandingPageProvisioner:
        """Build from the container environment, with the upstream defaults."""
        env = dict(os.environ) if env is None else env
        home = Path(env.get("NUBLADO_HOME", "/nonexistent"))
        source = Path(
            env.get("CST_LANDING_PAGE_SRC_DIR", "/rubin/cst_repos/tutorial-notebooks-data/welcome")
        )
        # An absolute target replaces home, as Path joining does.
        target = home / env.get("CST_LANDING_PAGE_TGT_DIR", "notebooks/tutorials")
        files = env.get("CST_LANDING_PAGE_FILES", "welcome.md,logo_for_header.png").split(",")
        return cls(source_dir=source, destination_dir=target, files=tuple(files), home=home)

    def go(self) -> None:
        """Check, copy every file, then make sure Markdown opens as a preview."""
        self.precheck()
        self.destination_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        for name in self.files:
            self._copy(self.source_dir / name)
        self.update_settings()

    def precheck(self) -> None:
        """Fail before touching anything if a source file or the home is missing."""
        for name in self.files:
            source = self.source_dir / name
            if not source.is_file():
                raise PrecheckError(f"Source file {source} is not a file")
        if not self.home.is_dir():
            raise PrecheckError(f"Home directory {self.home} is not a directory")

    def _copy(self, source: Path) -> None:
        destination = self.destination_dir / source.name
        try:
            info = destination.lstat()
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISDIR(info.st_mode):
                raise DestinationIsDirectoryError(destination)
            if not (stat.S_ISLNK(info.st_mode) or stat.S_ISREG(info.st_mode)):
                raise DestinationError(destination)
            # Unlink first so a symlink is replaced, never written through.
            destination.unlink()
        # Data plus mode (spec 6.2): copy, not copy2, so the file looks freshly delivered.
        shutil.copy(source, destination, follow_symlinks=True)

    def update_settings(self) -> None:
        """Default Markdown to the preview viewer unless the user chose otherwise."""
        path = self.home / DOCMANAGER_SETTINGS
        settings: dict[str, object] = {}
        if path.exists():
            try:
                loaded = json.loads(path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SettingsError(path, str(exc)) from exc
            if not isinstance(loaded, dict):
                _logger.warning(f"{path} is not a JSON object; leaving it alone")
                return
            settings = loaded
        viewers = settings.get("defaultViewers", {})
        if not isinstance(viewers, dict):
            # The user's value, even a strange one, is theirs: never replace it.
            _logger.warning(f"{path}: defaultViewers is not an object; leaving it alone")
            return
        if "markdown" in viewers:
            return
        viewers["markdown"] = "Markdown Preview"
        settings["defaultViewers"] = viewers
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, sort_keys=True, indent=2))
