"""Prepare the lab container's environment and home before JupyterLab starts.

``nublado startup`` runs as the user, last among the lab's init containers. It
writes two files the in-lab launcher reads: ``env.json`` (variables to add to
the lab's environment) and ``args.json`` (the JupyterLab command line). It also
tidies and seeds the home directory.

Any failure marks the startup *abnormal* instead of stopping the lab: the files
are still written, the lab starts in scratch space (or the temporary directory)
and shows a page explaining the error (see `abnormal`). Whatever goes wrong, the
startup files are always written.
"""

from __future__ import annotations

import configparser
import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import shutil
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .abnormal import (
    ABNORMAL_KEYS,
    abnormal_environment,
    missing_environment_error,
    portable_error,
    welcome_text,
)
from .command import Command

__all__ = [
    "CPU_VARIABLES",
    "LAB_STATIC_CMD_ARGS",
    "MAX_NUMBER_OUTPUTS",
    "PREVIOUS_LOGGING_CHECKSUMS",
    "Preparer",
    "StartupPaths",
]

LAB_STATIC_CMD_ARGS = (
    "jupyterhub-singleuser",
    "--ip=0.0.0.0",
    "--port=8888",
    "--no-browser",
    "--ContentsManager.allow_hidden=True",
    "--FileContentsManager.hide_globs=[]",
    "--KernelSpecManager.ensure_native_kernel=False",
    "--QtExporter.enabled=False",
    "--PDFExporter.enabled=False",
    "--WebPDFExporter.enabled=False",
    "--MappingKernelManager.default_kernel_name=lsst",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
)
"""The start of the lab's command line, before the per-lab flags."""

_CULL_FLAGS = (
    ("NO_ACTIVITY_TIMEOUT", "--ServerApp.shutdown_no_activity_timeout"),
    ("CULL_KERNEL_IDLE_TIMEOUT", "--MappingKernelManager.cull_idle_timeout"),
    ("CULL_KERNEL_CONNECTED", "--MappingKernelManager.cull_connected"),
    ("CULL_KERNEL_INTERVAL", "--MappingKernelManager.cull_interval"),
    ("CULL_TERMINAL_INACTIVE_TIMEOUT", "--TerminalManager.cull_inactive_timeout"),
    ("CULL_TERMINAL_INTERVAL", "--TerminalManager.cull_interval"),
)

CPU_VARIABLES = (
    "CPU_LIMIT",
    "CPU_COUNT",
    "GOTO_NUM_THREADS",
    "MKL_DOMAIN_NUM_THREADS",
    "MPI_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "RAYON_NUM_THREADS",
)
"""Thread-count variables set to the CPU limit so libraries do not oversubscribe."""

MAX_NUMBER_OUTPUTS = 10000
"""Notebook outputs kept per cell; lower user settings are raised to this."""

PREVIOUS_LOGGING_CHECKSUMS = frozenset(
    {"2997fe99eb12846a1b724f0b82b9e5e6acbd1d4c29ceb9c9ae8f1ef5503892ec"}
)
"""sha256 of IPython logging profiles we shipped before; those are replaced."""

_DOCMANAGER = Path(
    ".jupyter/lab/user-settings/@jupyterlab/docmanager-extension/plugin.jupyterlab-settings"
)
_TRACKER = Path(
    ".jupyter/lab/user-settings/@jupyterlab/notebook-extension/tracker.jupyterlab.settings"
)
_LOGGING_PROFILE = Path(".ipython/profile_default/startup/20-logging.py")
_DASK_LINK = "{JUPYTERHUB_PUBLIC_URL}proxy/{port}/status"
_OLD_DASK_LINK = "{EXTERNAL_INSTANCE_URL}{JUPYTERHUB_SERVICE_PREFIX}"
_RELOCATED = (".cache", ".conda", ".config", ".eups", ".local", ".jupyter")

_logger = logging.getLogger(__name__)


def _find_portal(discovery: object) -> str | None:
    """The portal URL in a discovery document, or None; any other shape is skipped.

    The document comes from another service, so every level is checked to be
    a mapping before it is looked into.
    """
    if not isinstance(discovery, dict):
        return None
    for section in ("services", "urls"):
        services = discovery.get(section)
        ui = services.get("ui") if isinstance(services, dict) else None
        portal = ui.get("portal") if isinstance(ui, dict) else None
        if isinstance(portal, dict) and isinstance(portal.get("url"), str):
            return str(portal["url"])
        if isinstance(portal, str):
            return portal
    return None


@dataclass(frozen=True)
class StartupPaths:
    """Fixed locations, overridable so tests never touch the real ones."""

    startup: Path = Path("/etc/nublado/startup")
    """Where ``env.json`` and ``args.json`` are written (an emptyDir in the pod)."""

    etc: Path = Path("/etc")
    """Holds ``skel/`` and ``dircolors.ansi-universal``."""

    tmp: Path = Path("/tmp")
    """Home of last resort, and the fallback butler cache parent."""


def _flense(value: Any) -> Any:
    """Drop null values and the mappings left empty, recursively."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            cleaned = _flense(item)
            if cleaned is None or (isinstance(cleaned, dict) and not cleaned):
                continue
            result[key] = cleaned
        return result
    return value


class Preparer:
    """One preparation of one lab: build the environment, tidy home, write files."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        paths: StartupPaths | None = None,
        command: Command | None = None,
        now: datetime | None = None,
    ) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._paths = paths or StartupPaths()
        self._command = command or Command(ignore_fail=True)
        self._now = now or datetime.now(tz=UTC)
        self.env: dict[str, str] = {}
        self.abnormal_error: BaseException | None = None
        self.debug = bool(self._environ.get("DEBUG"))
        home = self._environ.get("NUBLADO_HOME")
        self._has_home = bool(home)
        if home:
            self.home = Path(home)
        else:
            self.home = self._paths.tmp
            self.set_abnormal(missing_environment_error("NUBLADO_HOME"))
        self.env["HOME"] = str(self.home)

    # -- abnormal state ----------------------------------------------------------

    @property
    def abnormal(self) -> bool:
        """Whether some step failed."""
        return self.abnormal_error is not None

    def set_abnormal(self, exc: BaseException) -> None:
        """Record a failure; the lab will start in safe mode and explain it."""
        _logger.error(f"Abnormal startup: {exc}")
        self.abnormal_error = exc
        self.env.update(abnormal_environment(exc))

    def clear_abnormal(self) -> None:
        """Forget a recorded failure and its ``ABNORMAL_STARTUP*`` variables."""
        self.abnormal_error = None
        for key in ABNORMAL_KEYS:
            self.env.pop(key, None)

    # -- the whole flow ----------------------------------------------------------

    def prepare(self) -> None:
        """Run every step; failures mark the startup abnormal; always write the files."""
        if self._has_home:
            self._step(self._configure)
            self._step(self._tidy_home)
            if not self.abnormal:
                self._step(self._seed_home)
        self.write_startup_files()

    def _step(self, step: Any) -> None:
        try:
            step()
        except Exception as exc:
            # Not only OSError: a bad user file must not stop the lab from starting.
            if not isinstance(exc, OSError):
                _logger.exception("Unexpected error while preparing the lab")
            self.set_abnormal(exc)

    def _configure(self) -> None:
        if self._environ.get("RESET_USER_ENV"):
            self.relocate_user_environment()
        self.configure_environment()

    def _tidy_home(self) -> None:
        self.expire_astropy_cache()
        self.test_for_space()

    def _seed_home(self) -> None:
        self.merge_credentials()
        self.fix_dask_dashboard()
        self.install_git_lfs()
        self.copy_logging_profile()
        self.copy_dircolors()
        self.copy_skel()
        self.raise_output_limit()

    # -- step 1: environment -------------------------------------------------

    def relocate_user_environment(self) -> None:
        """Move the user's tool state aside (on request) so the lab starts clean."""
        stamp = self._now.strftime("%Y%m%d%H%M%S")
        target = self.home / f".user_env.{stamp}"
        for name in _RELOCATED:
            source = self.home / name
            if source.is_dir() and not source.is_symlink():
                target.mkdir(exist_ok=True)
                source.rename(target / name.removeprefix("."))
        setups = self.home / "notebooks" / ".user_setups"
        if setups.is_file():
            (target / "notebooks").mkdir(parents=True, exist_ok=True)
            setups.rename(target / "notebooks" / "user_setups")

    def configure_environment(self) -> None:
        """Compute every variable the lab needs beyond what the pod already has."""
        user = self.home.name
        self.env["USER"] = user
        if "TMPDIR" not in self._environ:
            tmp = self._scratch_subdirectory(user, "tmp")
            if tmp is not None:
                self.env["TMPDIR"] = str(tmp)
        if "DAF_BUTLER_CACHE_DIRECTORY" not in self._environ:
            cache = self._scratch_subdirectory(user, "butler_cache")
            fallback = self._paths.tmp / "butler_cache"
            self.env["DAF_BUTLER_CACHE_DIRECTORY"] = str(cache or fallback)
        cpus = str(self._cpu_count())
        self.env.update(dict.fromkeys(CPU_VARIABLES, cpus))
        spec = self._environ.get("JUPYTER_IMAGE_SPEC", "")
        if "@sha256:" in spec:
            self.env["IMAGE_DIGEST"] = spec.split("@sha256:", 1)[1]
        self._expand_panda_config_root(user)
        firefly = self._portal_url()
        if firefly:
            self.env["FIREFLY_URL"] = firefly
        self.env["JUPYTER_PREFER_ENV_PATH"] = "no"
        for variable in ("AWS_SHARED_CREDENTIALS_FILE", "PGPASSFILE"):
            original = self._environ.get(variable)
            if original:
                self.env[f"ORIG_{variable}"] = original
                self.env[variable] = str(self.home / ".lsst" / Path(original).name)

    def _scratch_subdirectory(self, user: str, name: str) -> Path | None:
        """``<scratch>/<user>/<name>``, created private, or None if unusable."""
        scratch = Path(self._environ.get("SCRATCH_PATH", "/scratch"))
        if not scratch.is_dir():
            _logger.debug(f"Scratch path {scratch} is not a directory")
            return None
        if self._environ.get("HOMEDIR_SCHEMA") == "initialThenUsername":
            user_dir = scratch / user[0] / user
        else:
            user_dir = scratch / user
        path = user_dir / name
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            _logger.warning(f"Cannot create {path}: {exc}")
            return None
        if not os.access(path, os.W_OK):
            _logger.warning(f"{path} is not writable")
            return None
        self.env["SCRATCH_DIR"] = str(user_dir)
        return path

    def _cpu_count(self) -> int:
        try:
            limit = float(self._environ.get("CPU_LIMIT", "1"))
        except ValueError:
            return 1
        if not math.isfinite(limit):
            return 1
        return max(1, int(limit))

    def _expand_panda_config_root(self, user: str) -> None:
        value = self._environ.get("PANDA_CONFIG_ROOT")
        if not value or not value.startswith("~"):
            return
        first, _, rest = value.partition("/")
        if first not in ("~", f"~{user}"):
            _logger.warning(f"Cannot expand PANDA_CONFIG_ROOT {value}: not this user's home")
            return
        self.env["PANDA_CONFIG_ROOT"] = str(self.home / rest) if rest else str(self.home)

    def _portal_url(self) -> str | None:
        """The Portal's URL from service discovery (Repertoire), if it has one."""
        external = self._environ.get("EXTERNAL_INSTANCE_URL", "https://localhost:8888")
        base = self._environ.get("REPERTOIRE_BASE_URL") or f"{external}/repertoire"
        url = base.rstrip("/") + "/discovery"
        import httpx  # only the startup command needs an HTTP client

        try:
            response = httpx.get(url, timeout=10.0)
            response.raise_for_status()
            discovery = response.json()
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # InvalidURL (a malformed REPERTOIRE_BASE_URL) is not an HTTPError.
            _logger.error(f"Service discovery at {url} failed: {type(exc).__name__}: {exc}")
            return None
        portal = _find_portal(discovery)
        if portal is None:
            _logger.warning("Service discovery knows no portal; FIREFLY_URL not set")
        return portal

    # -- step 2: home tidy -----------------------------------------------------

    def expire_astropy_cache(self) -> None:
        """Remove downloads whose URL says they have expired."""
        cache = self.home / ".astropy" / "cache" / "download" / "url"
        if not cache.is_dir():
            return
        now = self._now.timestamp()
        for entry in cache.iterdir():
            url_file = entry / "url"
            try:
                if entry.is_symlink() or not url_file.is_file():
                    continue
                query = urllib.parse.parse_qs(urllib.parse.urlparse(url_file.read_text()).query)
                expires = [v for k, vs in query.items() if k.lower() == "expires" for v in vs]
                if not expires:
                    continue
                try:
                    when = int(expires[0])
                except ValueError:
                    continue
                if when < now:
                    for name in ("url", "contents"):
                        with contextlib.suppress(FileNotFoundError):
                            (entry / name).unlink()
                    entry.rmdir()
            except OSError as exc:
                _logger.warning(f"Could not expire astropy cache entry {entry}: {exc}")

    def test_for_space(self) -> None:
        """Write 1 MiB to home; on failure clear caches and try once more.

        A missing home is a failure of its own: the cleanup must never create
        it (that would hide the problem and start the lab on an empty home).
        """
        if not self.home.is_dir():
            code = errno.ENOTDIR if self.home.exists() else errno.ENOENT
            raise OSError(code, os.strerror(code), str(self.home))
        try:
            self._write_test_file()
        except OSError as first:
            _logger.warning(f"Home is out of space, clearing caches: {first}")
            for cache in (self.home / ".cache", self.home / ".astropy" / "cache"):
                shutil.rmtree(cache, ignore_errors=True)
                with contextlib.suppress(OSError):
                    cache.mkdir(parents=False, exist_ok=True)
            try:
                self._write_test_file()
            except OSError:
                raise first from None

    def _write_test_file(self) -> None:
        cache = self.home / ".cache"
        cache.mkdir(exist_ok=True)
        test_file = cache / "1mb.txt"
        try:
            with test_file.open("w") as handle:
                handle.write("x" * 1024 * 1024)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            with contextlib.suppress(FileNotFoundError):
                test_file.unlink()

    # -- step 3: seed home ------------------------------------------------------

    def merge_credentials(self) -> None:
        """Merge the pod's AWS and Postgres credentials into the user's copies."""
        if "AWS_SHARED_CREDENTIALS_FILE" in self.env:
            self._merge_aws()
        if "PGPASSFILE" in self.env:
            self._merge_pgpass()

    def _credential_files(self, variable: str) -> tuple[Path, Path]:
        original = self.env.get(f"ORIG_{variable}")
        if not original:
            raise missing_environment_error(f"ORIG_{variable}")
        target = Path(self.env[variable])
        if not target.parent.exists():
            target.parent.mkdir(mode=0o700, parents=True)
        if not target.exists():
            target.touch(mode=0o600)
        return Path(original), target

    def _merge_aws(self) -> None:
        original, target = self._credential_files("AWS_SHARED_CREDENTIALS_FILE")
        merged = configparser.ConfigParser(interpolation=None)
        merged.read(target)
        source = configparser.ConfigParser(interpolation=None)
        source.read(original)  # a missing file reads as empty
        for section in source.sections():
            if merged.has_section(section):
                merged.remove_section(section)
            merged.add_section(section)
            for key, value in source.items(section, raw=True):
                merged.set(section, key, value)
        with target.open("w") as handle:
            merged.write(handle)

    def _merge_pgpass(self) -> None:
        original, target = self._credential_files("PGPASSFILE")
        entries: dict[str, str] = {}
        for path in (target, original):  # the pod's entries win
            for line in path.read_text().splitlines():
                if ":" in line:
                    connection, password = line.rsplit(":", 1)
                    entries[connection] = password.rstrip()
        target.write_text("".join(f"{c}:{p}\n" for c, p in entries.items()))

    def fix_dask_dashboard(self) -> None:
        """Point Dask's dashboard link at the lab's public URL."""
        dask = self.home / ".config" / "dask"
        good = False
        if dask.is_dir():
            for path in sorted(dask.glob("*.yaml")) + sorted(dask.glob("*.yml")):
                result = self._check_dask_file(path)
                if result is not None:
                    good = result
        if not good:
            self._write_dask_dashboard(dask / "dashboard.yaml")

    def _check_dask_file(self, path: Path) -> bool | None:
        """True if the file has a good link, False if not, None if it was set aside."""
        stamp = self._now.strftime("%Y-%m-%d")
        try:
            data = _flense(yaml.safe_load(path.read_text()))
        except (OSError, yaml.YAMLError):
            data = None
        if not data:
            path.rename(path.with_name(f"{path.name}.{stamp}"))
            return None
        link = data.get("distributed", {}) if isinstance(data, dict) else None
        link = link.get("dashboard", {}) if isinstance(link, dict) else None
        link = link.get("link") if isinstance(link, dict) else None
        if not isinstance(link, str):
            if not isinstance(data, dict):
                _logger.warning(f"{path} is not a mapping; leaving it alone")
            return False
        if "{JUPYTERHUB_PUBLIC_URL}" in link:
            return True
        if _OLD_DASK_LINK in link:
            shutil.copy2(path, path.with_name(f"{path.name}.{stamp}"))
            data["distributed"]["dashboard"]["link"] = link.replace(
                _OLD_DASK_LINK, "{JUPYTERHUB_PUBLIC_URL}"
            )
            path.write_text(yaml.safe_dump(data, default_flow_style=False))
            return True
        return False

    def _write_dask_dashboard(self, path: Path) -> None:
        wanted = {"distributed": {"dashboard": {"link": _DASK_LINK}}}
        try:
            current: Any = None
            if path.exists():
                current = _flense(yaml.safe_load(path.read_text()))
                if current == wanted:
                    return
            if isinstance(current, dict) and current:
                _logger.warning(f"Replacing distributed settings in {path}")
                current.update(wanted)
                wanted = current
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(wanted, default_flow_style=False))
        except (OSError, yaml.YAMLError) as exc:
            _logger.error(f"Could not write {path}: {exc}")

    def install_git_lfs(self) -> None:
        """Run ``git lfs install`` once per home (when .gitconfig lacks the filter)."""
        gitconfig = self.home / ".gitconfig"
        if gitconfig.is_file():
            lines = gitconfig.read_text(errors="replace").splitlines()
            if any(line.strip() == '[filter "lfs"]' for line in lines):
                return
        env = dict(self._environ)
        env["HOME"] = str(self.home)  # git-lfs writes to $HOME/.gitconfig
        self._command.run("git", "lfs", "install", cwd=self.home, env=env, timeout=60.0)

    def copy_logging_profile(self) -> None:
        """Install the IPython logging profile, replacing only copies we shipped."""
        target = self.home / _LOGGING_PROFILE
        if target.exists():
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            if digest not in PREVIOUS_LOGGING_CHECKSUMS:
                return
        config_dir = Path(
            self._environ.get("JUPYTERLAB_CONFIG_DIR", "/opt/lsst/software/jupyterlab")
        )
        for source in (config_dir / "etc" / "20-logging.py", config_dir / "20-logging.py"):
            if source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
                return
        _logger.warning(f"No 20-logging.py under {config_dir}; IPython logging not installed")

    def copy_dircolors(self) -> None:
        """Give the user our ``ls`` colours unless they have their own."""
        target = self.home / ".dir_colors"
        # A dangling symlink does not "exist", and copying would write through it.
        if not target.exists() and not target.is_symlink():
            shutil.copy2(self._paths.etc / "dircolors.ansi-universal", target)

    def copy_skel(self) -> None:
        """Copy what is missing from the skeleton home; never overwrite."""
        skel = self._paths.etc / "skel"
        if not skel.is_dir():
            return
        for directory, subdirectories, files in os.walk(skel):
            relative = Path(directory).relative_to(skel)
            for name in subdirectories:
                target = self.home / relative / name
                if not target.exists() and not target.is_symlink():
                    target.mkdir()
            for name in files:
                target = self.home / relative / name
                if not target.exists() and not target.is_symlink():
                    shutil.copy2(Path(directory) / name, target, follow_symlinks=False)

    def raise_output_limit(self) -> None:
        """Keep at least MAX_NUMBER_OUTPUTS outputs per notebook cell."""
        path = self.home / _TRACKER
        settings: dict[str, Any] = {}
        if path.exists():
            try:
                loaded = json.loads(path.read_text())
            except ValueError:
                # JupyterLab settings may be JSON5 (comments); leave them to the user.
                _logger.warning(f"{path} is not plain JSON; leaving it alone")
                return
            if not isinstance(loaded, dict):
                _logger.warning(f"{path} is not a JSON object; leaving it alone")
                return
            settings = loaded
        current = settings.get("maxNumberOutputs", 0)
        if isinstance(current, int | float) and current >= MAX_NUMBER_OUTPUTS:
            return
        settings["maxNumberOutputs"] = MAX_NUMBER_OUTPUTS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, sort_keys=True, indent=4))

    # -- step 4: output ---------------------------------------------------------

    def lab_arguments(self, notebook_dir: str) -> list[str]:
        """The JupyterLab command line."""
        args = [*LAB_STATIC_CMD_ARGS, f"--notebook-dir={notebook_dir}"]
        args.append(f"--log-level={'DEBUG' if self.debug else 'INFO'}")
        for variable, flag in _CULL_FLAGS:
            value = self._environ.get(variable)
            if value:
                args.append(f"{flag}={value}")
        return args

    def write_startup_files(self) -> None:
        """Write env.json and args.json; on an abnormal start, also the explanation."""
        notebook_dir = str(self.home)
        if self.abnormal_error is not None:
            # One source for the safe directory, used for both the page and HOME.
            safe = Path(
                self.env.get("SCRATCH_DIR")
                or self._environ.get("SCRATCH_DIR")
                or str(self._paths.tmp)
            )
            self._write_abnormal_page(safe, self.abnormal_error)
            self.env["HOME"] = str(safe)
            notebook_dir = str(safe)
        self.env["RUNNING_INSIDE_JUPYTERLAB"] = "TRUE"
        try:
            self._paths.startup.mkdir(parents=True, exist_ok=True)
            (self._paths.startup / "env.json").write_text(
                json.dumps(self.env, sort_keys=True, indent=2)
            )
            (self._paths.startup / "args.json").write_text(
                json.dumps(self.lab_arguments(notebook_dir), indent=2)
            )
        except OSError as exc:
            _logger.error(f"Could not write the startup files in {self._paths.startup}: {exc}")

    def _write_abnormal_page(self, safe: Path, exc: BaseException) -> None:
        error, code = portable_error(exc)
        try:
            page = safe / "notebooks" / "tutorials" / "welcome.md"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(welcome_text(code, str(error), str(self.home)))
            settings = safe / _DOCMANAGER
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps({"defaultViewers": {"markdown": "Markdown Preview"}}))
        except OSError as write_error:
            _logger.error(f"Could not write the abnormal startup page in {safe}: {write_error}")
