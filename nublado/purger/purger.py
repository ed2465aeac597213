"""Plan, report and purge: the purger's decisions over the walk in ``walk``.

A run never stops at the first bad file. Files that vanish or cannot be read
while planning, and files or directories that cannot be removed, are collected
and the run goes on; the caller gets them all at the end (`PurgeFailedError`)
and exits non-zero.

The purger runs as root over trees their users control. A policy root that is
a symlink is refused, and every unlink or rmdir is done relative to a
descriptor reached from the policy root one component at a time with
O_NOFOLLOW, so a directory swapped for a symlink at any moment (before the
walk, during it, or between planning and purging) makes that one removal fail
rather than act outside the root.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from ..errors import NubladoError
from .config import (
    ROOT_LOGGER,
    DirectoryPolicy,
    FileClass,
    Policy,
    PurgerConfig,
    SizeClassIntervals,
    load_policy,
)
from .walk import (
    NEVER,
    REASONS,
    Cutoffs,
    Match,
    ScanBatch,
    ScanRoot,
    describe_error,
    open_root,
    scan,
    walk_directories,
)

__all__ = [
    "FileReason",
    "FileRecord",
    "Plan",
    "PlanNotReadyError",
    "PurgeFailedError",
    "Purger",
]

FileReason = str
"""``ATIME``, ``CTIME`` or ``MTIME``: which criterion selected a file."""


class PlanNotReadyError(NubladoError):
    """report() or purge() was called before plan()."""


class PurgeFailedError(NubladoError):
    """Some files or directories could not be checked or removed; the rest were."""

    def __init__(self, failed_files: dict[str, str]) -> None:
        super().__init__("Purge encountered Errors")
        self.failed_files = failed_files

    def details(self) -> str:
        """The failures as ``path: error`` pairs, the Slack "Failed Files" text."""
        return ", ".join(f"{path}: {error}" for path, error in self.failed_files.items())


@dataclass(frozen=True)
class FileRecord:
    """A file chosen for purging, and why."""

    path: Path
    file_class: FileClass
    file_reason: FileReason
    file_interval: timedelta
    criterion_interval: timedelta

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.file_reason} {int(self.file_interval.total_seconds())}s"
            f" >= {int(self.criterion_interval.total_seconds())}s"
        )

    def to_dict(self) -> dict[str, object]:
        """Upstream's camelCase form, intervals in seconds."""
        return {
            "path": str(self.path),
            "fileClass": self.file_class.value,
            "fileReason": self.file_reason,
            "fileInterval": self.file_interval.total_seconds(),
            "criterionInterval": self.criterion_interval.total_seconds(),
        }


@dataclass
class Plan:
    """Directories considered (shortest first), files to purge, and walk failures."""

    directories: list[Path]
    files: list[FileRecord] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    roots: list[ScanRoot] = field(default_factory=list, repr=False)
    """The roots actually walked (refused ones left out): purging never leaves these."""

    def to_dict(self) -> dict[str, object]:
        """Upstream's camelCase form."""
        return {
            "directories": [str(d) for d in self.directories],
            "files": [f.to_dict() for f in self.files],
        }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _ns(interval: timedelta) -> int:
    """Whole nanoseconds in ``interval`` (exact: timedelta counts microseconds)."""
    return interval // _MICROSECOND * 1000


def _cutoffs(intervals: SizeClassIntervals, when_ns: int) -> Cutoffs:
    def cut(interval: timedelta | None) -> int:
        return when_ns - _ns(interval) if interval else NEVER

    return Cutoffs(
        atime=cut(intervals.access_interval),
        ctime=cut(intervals.creation_interval),
        mtime=cut(intervals.modification_interval),
    )


def _record(rules: DirectoryPolicy, match: Match, when_ns: int) -> FileRecord:
    """The full record of one match (built only when someone needs it)."""
    path, large, reason, stamp = match
    file_class = FileClass.LARGE if large else FileClass.SMALL
    intervals = rules.intervals.for_class(file_class)
    criterion = (
        intervals.access_interval,
        intervals.creation_interval,
        intervals.modification_interval,
    )[reason]
    return FileRecord(
        path=Path(path),
        file_class=file_class,
        file_reason=REASONS[reason],
        file_interval=timedelta(microseconds=(when_ns - stamp) // 1000),
        criterion_interval=criterion or timedelta(0),
    )


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _below(path: str, root: ScanRoot) -> tuple[tuple[str, ...], str]:
    """The components from ``root`` to ``path``'s parent, and ``path``'s name."""
    prefix = root.path.rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        raise OSError(errno.EXDEV, f"not below its policy root {root.path}")
    *parents, name = path[len(prefix) :].split(os.sep)
    if not name or "" in parents or "." in parents or ".." in parents or name in {".", ".."}:
        raise OSError(errno.EINVAL, "not a plain path below its policy root")
    return tuple(parents), name


def _owner(path: str, roots: Sequence[ScanRoot]) -> ScanRoot:
    """The most specific walked root containing ``path``."""
    candidates = [r for r in roots if _inside(path, r.path) and path != r.path]
    if not candidates:
        raise OSError(errno.EXDEV, "not below any walked policy root")
    return max(candidates, key=lambda r: len(r.path))


class _Remover:
    """Unlink or rmdir names relative to directories opened safely from a root.

    The last parent directory's descriptor is kept, so a directory full of
    matches is descended into once, not once per file.
    """

    def __init__(self) -> None:
        self._key: tuple[str, tuple[str, ...]] | None = None
        self._fd = -1

    def _parent(self, root: ScanRoot, parents: tuple[str, ...]) -> int:
        key = (root.path, parents)
        if key != self._key:
            self.close()
            self._fd = open_root(root, parents)
            self._key = key
        return self._fd

    def unlink(self, path: str, root: ScanRoot) -> None:
        """Unlink the file ``path`` (never a directory) found below ``root``."""
        parents, name = _below(path, root)
        fd = self._parent(root, parents)
        try:
            os.unlink(name, dir_fd=fd)  # unlink never removes a directory (EISDIR)
        except IsADirectoryError:
            raise IsADirectoryError(errno.EISDIR, "became a directory after planning") from None

    def rmdir(self, path: str, root: ScanRoot) -> None:
        """Remove the directory ``path`` below ``root`` if it is empty."""
        parents, name = _below(path, root)
        os.rmdir(name, dir_fd=self._parent(root, parents))

    def close(self) -> None:
        """Close the kept descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._key = -1, None


class Purger:
    """One purger run over the policy named by the configuration."""

    def __init__(
        self,
        config: PurgerConfig,
        *,
        workers: int = 1,
        progress: bool = False,
        now: datetime | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._config = config
        self._workers = workers
        self._progress = progress
        self._now = now
        self._logger = logger or logging.getLogger(ROOT_LOGGER)
        self._policy: Policy | None = None
        self._plan: Plan | None = None

    # -- planning --------------------------------------------------------------

    def _prepare(self) -> tuple[Policy, list[ScanRoot], int, dict[str, str]]:
        """Read the policy and turn it into walk roots, longest path first.

        Returns the roots to walk and the refused ones with the reason: a root
        that is a symlink (or reached through one) is never walked or purged.
        """
        policy = load_policy(self._config.policy_file)
        self._policy = policy
        now = self._now or datetime.now(tz=UTC)
        when_ns = _ns(now.astimezone(UTC) - _EPOCH)  # a naive time is local, as timestamp() has it
        future = self._config.future_duration
        if future is not None:
            when_ns += _ns(future)
        self._logger.info(
            f"Planning for time {(future or timedelta(0)).total_seconds()}s from now."
        )
        paths = [str(d) for d in dict.fromkeys(policy.get_directories())]
        roots: list[ScanRoot] = []
        refused: dict[str, str] = {}
        visited: list[str] = []
        # A path listed twice is walked once, with its first rules (as for_path finds).
        for path in reversed(paths):
            rules = policy.for_path(Path(path))
            outer = [p for p in paths if p != path and _inside(path, p)]
            anchor = min(outer, key=len) if outer else ""
            root = ScanRoot(
                path=path,
                threshold=rules.threshold,
                large=_cutoffs(rules.intervals.large, when_ns),
                small=_cutoffs(rules.intervals.small, when_ns),
                excluded=frozenset(v for v in visited if _inside(v, path) and v != path),
                anchor=anchor,
                anchor_parts=tuple(path[len(anchor) :].strip(os.sep).split(os.sep))
                if anchor
                else (),
            )
            visited.append(path)
            problem = self._check_root(root)
            if problem:
                refused[path] = problem
                self._logger.error(f"Refusing policy root {path}: {problem}")
            else:
                roots.append(root)
        return policy, roots, when_ns, refused

    @staticmethod
    def _check_root(root: ScanRoot) -> str | None:
        """Why ``root`` must not be walked, or None if it is a real directory."""
        try:
            info = os.lstat(root.path)
        except OSError as exc:
            return describe_error(exc)
        if stat.S_ISLNK(info.st_mode):
            return "is a symlink; refused"
        if not stat.S_ISDIR(info.st_mode):
            return "is not a directory; refused"
        try:
            os.close(open_root(root))
        except OSError as exc:
            # Reached through a symlink below an outer root, or swapped just now.
            return describe_error(exc)
        return None

    def _batches(self, roots: list[ScanRoot]) -> Iterator[ScanBatch]:
        return scan(roots, workers=self._workers, progress=self._progress)

    def _log_mounts(self, batch: ScanBatch) -> None:
        for path in batch.mounts:
            self._logger.debug(f"Not entering {path}: another file system")

    def plan(self) -> Plan:
        """Walk the policy roots and keep every file to purge."""
        self._plan = None
        policy, roots, when_ns, refused = self._prepare()
        plan = Plan(directories=policy.get_directories(), errors=dict(refused), roots=roots)

        def keep(batch: ScanBatch) -> None:
            rules = policy.for_path(Path(roots[batch.root].path))
            plan.files.extend(_record(rules, match, when_ns) for match in batch.matches)

        # The same walk as the streamed commands, keeping the records instead of printing.
        plan.errors.update(self._stream(None, policy, roots, when_ns, keep))
        self._plan = plan
        return plan

    # -- reporting -------------------------------------------------------------

    def report(self) -> str:
        """The plan as upstream's report text (also logged at INFO)."""
        if self._plan is None:
            raise PlanNotReadyError("Cannot report: plan not ready")
        text = format_report(self._plan.directories, (str(f.path) for f in self._plan.files))
        self._logger.info(text)
        return text

    def stream_report(self, out: TextIO) -> dict[str, str]:
        """Plan and write the report as the walk goes, keeping no file list.

        This is what ``report`` and ``warn`` run: memory stays flat however many
        files match. Returns the failures met while walking.
        """
        policy, roots, when_ns, refused = self._prepare()
        return refused | self._stream(out, policy, roots, when_ns, None)

    def _stream(
        self,
        out: TextIO | None,
        policy: Policy,
        roots: list[ScanRoot],
        when_ns: int,
        on_batch: Callable[[ScanBatch], None] | None,
    ) -> dict[str, str]:
        """The one walk every command runs: report lines to ``out``, batches to ``on_batch``.

        Returns the failures met while walking. ``out`` None writes no report.
        """
        if out is not None:
            out.write(_report_header(policy.get_directories()))
        debug = self._logger.isEnabledFor(logging.DEBUG)
        errors: dict[str, str] = {}
        matched = 0
        for batch in self._batches(roots):
            if debug:  # per-file records only when someone will read them
                rules = policy.for_path(Path(roots[batch.root].path))
                for match in batch.matches:
                    self._logger.debug(str(_record(rules, match, when_ns)))
            if batch.matches:
                matched += len(batch.matches)
                if out is not None:
                    out.write("".join(f"  -> {m[0]}\n" for m in batch.matches))
                if on_batch is not None:
                    on_batch(batch)
            errors.update(batch.errors)
            self._log_mounts(batch)
        if out is not None:
            if policy.directories and not matched:
                out.write("No matching files found.\n")
            out.flush()
        return errors

    def stream_execute(self, out: TextIO) -> None:
        """Report and purge as the walk goes, then tidy; what ``execute`` runs.

        Each batch of matches is written to ``out`` and then removed, so no
        list of files is ever held: memory stays flat on any tree. Dry-run and
        warning mode only report. Raises `PurgeFailedError` listing every
        failure once everything else is done.
        """
        policy, roots, when_ns, refused = self._prepare()
        if self._config.dry_run or self._config.future_duration is not None:
            errors = self._stream(out, policy, roots, when_ns, None)
            self._warn_not_purging()
            self._raise_for(refused | errors)
            return
        failed: dict[str, str] = {}

        def purge_batch(batch: ScanBatch) -> None:
            self._unlink_all((m[0] for m in batch.matches), [roots[batch.root]], failed)

        errors = self._stream(out, policy, roots, when_ns, purge_batch)
        failed = refused | errors | failed
        self._tidy(roots, [str(d) for d in policy.get_directories()], failed)
        self._raise_for(failed)
        self._logger.debug("Purge complete")

    def _warn_not_purging(self) -> None:
        if self._config.dry_run:
            self._logger.warning("Cannot purge because dry_run enabled; reporting instead")
        else:
            self._logger.warning("Cannot purge because future_duration is set; reporting instead")

    # -- purging ---------------------------------------------------------------

    def execute(self) -> None:
        """Plan, report, then purge (unless dry-run or warning mode)."""
        self.plan()
        self.report()
        self.purge()

    def purge(self) -> None:
        """Remove the planned files, then tidy empty directories under the roots."""
        plan = self._plan
        if plan is None:
            raise PlanNotReadyError("Cannot purge: plan not ready")
        if self._config.dry_run or self._config.future_duration is not None:
            self._warn_not_purging()
            self._raise_for(dict(plan.errors))
            return
        failed = dict(plan.errors)
        self._unlink_all((str(r.path) for r in plan.files), plan.roots, failed)
        self._tidy(plan.roots, [str(d) for d in plan.directories], failed)
        self._raise_for(failed)
        self._logger.debug("Purge complete")
        self._plan = None

    def _raise_for(self, failed: dict[str, str]) -> None:
        if failed:
            self._logger.error(
                "Purge encountered errors",
                extra={"failed_files": failed},
            )
            raise PurgeFailedError(failed)

    @staticmethod
    def _unlink_all(
        paths: Iterator[str], roots: Sequence[ScanRoot], failed: dict[str, str]
    ) -> None:
        """Unlink each file, descending from its root; collect what fails."""
        remover = _Remover()
        try:
            for path in paths:
                try:
                    remover.unlink(path, _owner(path, roots))
                except OSError as exc:
                    failed[path] = str(exc)
        finally:
            remover.close()

    def _tidy(self, roots: list[ScanRoot], directories: list[str], failed: dict[str, str]) -> None:
        """Remove empty sub-directories, deepest first, in a stable order.

        Policy roots and their ancestors are never removed. Every empty
        directory under a walked root goes, not only those this run emptied.
        Each rmdir is relative to a descriptor reached from the root without
        following links, and rmdir itself only removes an empty directory.
        """
        protected = set(directories)
        for directory in directories:
            path, parent = directory, os.path.dirname(directory)
            while parent != path:
                protected.add(parent)
                path, parent = parent, os.path.dirname(parent)
        owners: dict[str, ScanRoot] = {}
        for root in roots:
            found, errors = walk_directories(root)
            for path in found:
                owners.setdefault(path, root)
            for path, error in errors:
                failed.setdefault(path, error)
        ordered = sorted(set(owners) - protected, key=lambda p: (-p.count(os.sep), p))
        remover = _Remover()
        try:
            for directory in ordered:
                try:
                    remover.rmdir(directory, owners[directory])
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        continue  # not empty: nothing to tidy
                    # Vanished, refused, or swapped since the walk: report, go on.
                    failed[directory] = str(exc)
        finally:
            remover.close()


def _report_header(directories: list[Path]) -> str:
    if not directories:
        return "No directories considered."
    return "Directories considered:\n" + "".join(f"  {d}\n" for d in directories)


def format_report(directories: list[Path], files: Iterator[str] | list[str]) -> str:
    """Upstream's plan text: the directories, then one ``->`` line per file."""
    header = _report_header(directories)
    if not directories:
        return header
    lines = "".join(f"  -> {f}\n" for f in files)
    return header + (lines or "No matching files found.\n")
