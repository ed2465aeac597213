"""Plan, report and purge: the purger's decisions over the walk in ``walk``.

A run never stops at the first bad file. Files that vanish or cannot be read
while planning, and files or directories that cannot be removed, are collected
and the run goes on; the caller gets them all at the end (`PurgeFailedError`)
and exits non-zero. Before any unlink or rmdir the target's parent is resolved
and checked to lie inside its policy root, so a directory swapped for a symlink
between planning and purging cannot send a delete elsewhere.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterator
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
from .walk import NEVER, REASONS, Cutoffs, Match, ScanBatch, ScanRoot, scan, walk_directories

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
    resolved_roots: dict[str, str] = field(default_factory=dict)
    """Each root's real path when it was walked: purging never leaves these."""

    def to_dict(self) -> dict[str, object]:
        """Upstream's camelCase form."""
        return {
            "directories": [str(d) for d in self.directories],
            "files": [f.to_dict() for f in self.files],
        }


def _ns(interval: timedelta) -> int:
    return (interval.days * 86_400 + interval.seconds) * 1_000_000_000 + (
        interval.microseconds * 1000
    )


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

    def _prepare(self) -> tuple[Policy, list[ScanRoot], int]:
        """Read the policy and turn it into walk roots, longest path first."""
        policy = load_policy(self._config.policy_file)
        self._policy = policy
        now = self._now or datetime.now(tz=UTC)
        when_ns = int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000
        future = self._config.future_duration
        if future is not None:
            when_ns += _ns(future)
        self._logger.info(
            f"Planning for time {(future or timedelta(0)).total_seconds()}s from now."
        )
        roots: list[ScanRoot] = []
        visited: list[str] = []
        # A path listed twice is walked once, with its first rules (as for_path finds).
        for directory in reversed(list(dict.fromkeys(policy.get_directories()))):
            rules = policy.for_path(directory)
            path = str(directory)
            roots.append(
                ScanRoot(
                    path=path,
                    threshold=rules.threshold,
                    large=_cutoffs(rules.intervals.large, when_ns),
                    small=_cutoffs(rules.intervals.small, when_ns),
                    excluded=frozenset(v for v in visited if _inside(v, path) and v != path),
                )
            )
            visited.append(path)
        return policy, roots, when_ns

    def _batches(self, roots: list[ScanRoot]) -> Iterator[ScanBatch]:
        return scan(roots, workers=self._workers, progress=self._progress)

    def plan(self) -> Plan:
        """Walk the policy roots and keep every file to purge."""
        self._plan = None
        policy, roots, when_ns = self._prepare()
        plan = Plan(
            directories=policy.get_directories(),
            resolved_roots={root.path: os.path.realpath(root.path) for root in roots},
        )
        for batch in self._batches(roots):
            rules = policy.for_path(Path(roots[batch.root].path))
            plan.files.extend(_record(rules, match, when_ns) for match in batch.matches)
            plan.errors.update(batch.errors)
        if self._logger.isEnabledFor(logging.DEBUG):
            for record in plan.files:
                self._logger.debug(str(record))
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
        policy, roots, when_ns = self._prepare()
        return self._stream(out, policy, roots, when_ns, None)

    def _stream(
        self,
        out: TextIO,
        policy: Policy,
        roots: list[ScanRoot],
        when_ns: int,
        on_batch: Callable[[ScanBatch], None] | None,
    ) -> dict[str, str]:
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
                out.write("".join(f"  -> {m[0]}\n" for m in batch.matches))
                if on_batch is not None:
                    on_batch(batch)
            errors.update(batch.errors)
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
        policy, roots, when_ns = self._prepare()
        if self._config.dry_run or self._config.future_duration is not None:
            errors = self._stream(out, policy, roots, when_ns, None)
            self._warn_not_purging()
            self._raise_for(errors)
            return
        resolved = {root.path: os.path.realpath(root.path) for root in roots}
        failed: dict[str, str] = {}

        def purge_batch(batch: ScanBatch) -> None:
            real_root = resolved[roots[batch.root].path]
            for match in batch.matches:
                try:
                    self._unlink(match[0], real_root)
                except OSError as exc:
                    failed[match[0]] = str(exc)

        errors = self._stream(out, policy, roots, when_ns, purge_batch)
        failed = errors | failed
        self._tidy([str(d) for d in policy.get_directories()], resolved, failed)
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
        roots = sorted((str(d) for d in plan.directories), key=len, reverse=True)
        real_roots = plan.resolved_roots
        for record in plan.files:
            path = str(record.path)
            root = next(r for r in roots if _inside(path, r))
            try:
                self._unlink(path, real_roots[root])
            except OSError as exc:
                failed[path] = str(exc)
        self._tidy([str(d) for d in plan.directories], real_roots, failed)
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
    def _unlink(path: str, real_root: str) -> None:
        """Unlink ``path`` only if its freshly resolved parent is inside ``real_root``."""
        parent, name = os.path.split(path)
        real_parent = os.path.realpath(parent)
        if not _inside(real_parent, real_root):
            raise OSError(errno.EXDEV, f"resolves outside its policy root {real_root}")
        target = os.path.join(real_parent, name)
        if stat.S_ISDIR(os.lstat(target).st_mode):
            raise IsADirectoryError(errno.EISDIR, "became a directory after planning", target)
        os.unlink(target)

    def _tidy(self, roots: list[str], real_roots: dict[str, str], failed: dict[str, str]) -> None:
        """Remove empty sub-directories, deepest first, in a stable order.

        Policy roots and their ancestors are never removed. Every empty
        directory under a root goes, not only those this run emptied.
        """
        protected = set(roots)
        for root in roots:
            path, parent = root, os.path.dirname(root)
            while parent != path:
                protected.add(parent)
                path, parent = parent, os.path.dirname(parent)
        candidates: set[str] = set()
        for root in roots:
            candidates.update(walk_directories(root))
        ordered = sorted(candidates - protected, key=lambda p: (-p.count(os.sep), p))
        for directory in ordered:
            root = max((r for r in roots if _inside(directory, r)), key=len)
            real = os.path.realpath(directory)
            if not _inside(real, real_roots[root]) or real == real_roots[root]:
                failed[directory] = "resolves outside its policy root"
                continue
            try:
                with os.scandir(real) as entries:
                    if next(entries, None) is not None:
                        continue
                os.rmdir(real)
            except OSError as exc:
                # Vanished, refused, or refilled since the check: report, go on.
                failed[directory] = str(exc)


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
