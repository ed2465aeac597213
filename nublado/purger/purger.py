"""Plan, report and purge: the purger's decisions over the walk in ``walk``.

A run never stops at the first bad file. Files that vanish or cannot be read
while planning, and files or directories that cannot be removed, are collected
and the run goes on; the caller gets them all at the end (in `PurgeSummary`, or
as `PurgeFailedError`) and the CLI exits non-zero.

The purger runs as root over trees their users control. A policy root that is
a symlink is refused, and every unlink or rmdir is done by the walk relative to
the descriptor of the directory it holds open, itself reached from the policy
root one component at a time with O_NOFOLLOW, so a directory swapped for a
symlink at any moment (before the walk, during it, or between planning and
purging) makes that one directory fail rather than act outside the root.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
from collections.abc import Iterator, Sequence
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
    new_warnings,
)
from .walk import (
    NEVER,
    PURGE,
    PURGE_PLANNED,
    REASONS,
    REPORT,
    Cutoffs,
    Match,
    ScanRoot,
    describe_error,
    failed_component,
    open_root,
    read_mount_points,
    scan,
)

__all__ = [
    "FileReason",
    "FileRecord",
    "Plan",
    "PlanNotReadyError",
    "PurgeFailedError",
    "PurgeSummary",
    "Purger",
    "display_path",
    "format_report",
    "human_bytes",
    "human_duration",
    "purge_policy",
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
    mounts: list[str] = field(default_factory=list)
    """Mount points below the roots, not entered."""

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


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def display_path(path: str) -> str:
    r"""A path as the report prints it: one line, whatever its name holds.

    Control characters are escaped (a name with a newline must not add a line),
    and so is a backslash, so that ``a\nb`` and ``a<newline>b`` stay distinct;
    bytes that are not UTF-8 (held as surrogates) are written ``\xNN``.
    """
    if path.isprintable() and "\\" not in path:
        return path
    out = []
    for char in path:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif 0xDC80 <= ord(char) <= 0xDCFF:
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)


def human_duration(duration: timedelta) -> str:
    """A duration as people write it: ``25d``, ``1d 2h``, ``90m``, ``0s``."""
    total = duration.total_seconds()
    sign = "-" if total < 0 else ""
    seconds = abs(total)
    if seconds != int(seconds):
        return f"{total:g}s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return sign + (" ".join(parts) or "0s")


def human_bytes(size: int) -> str:
    """A byte count as ``135 B``, ``1.2 MB`` (powers of 1000, as ``df -H``)."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.95:
            return f"{value:.1f} {unit}"
    return f"{value:.1f} EB"


@dataclass
class PurgeSummary:
    """What one run did: the figures ``execute`` ends with, and every failure."""

    purged: bool = False
    """False for a report, a warning, or a dry run: nothing was deleted."""
    files_checked: int = 0
    files_matched: int = 0
    files_deleted: int = 0
    bytes_deleted: int = 0
    directories_removed: int = 0
    mount_points: list[str] = field(default_factory=list)
    """Mount points below a root, not entered (also logged as warnings)."""
    missing_roots: list[str] = field(default_factory=list)
    """Policy roots that do not exist (a warning, not a failure)."""
    failures: dict[str, str] = field(default_factory=dict)
    """Full path -> reason, for everything that could not be checked or removed."""
    output_error: str | None = None
    """Why the report could not be written in full (standard output closed), if so."""

    def text(self) -> str:
        """One line for the end of ``execute``'s report."""
        failed = _count(len(self.failures), "failure")
        if not self.purged:
            matched = _count(self.files_matched, "file")
            return f"Summary: nothing deleted (report only); {matched} would be deleted; {failed}."
        deleted = _count(self.files_deleted, "file")
        removed = _count(self.directories_removed, "directory", "directories")
        return (
            f"Summary: {deleted} deleted ({human_bytes(self.bytes_deleted)}), "
            f"{removed} removed; {failed}."
        )


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number:,} {one if number == 1 else many or one + 's'}"


class _Output:
    """The report stream: a closed reader (``| head``) stops the writing, never the purge."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self.error: str | None = None

    def write(self, text: str) -> None:
        if self._stream is None or self.error is not None or not text:
            return
        try:
            self._stream.write(text)
        except OSError as exc:
            self.error = describe_error(exc)

    def flush(self) -> None:
        if self._stream is None or self.error is not None:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            self.error = describe_error(exc)


class Purger:
    """One purger run over the policy named by the configuration (or given directly)."""

    def __init__(
        self,
        config: PurgerConfig,
        *,
        workers: int = 1,
        progress: bool = False,
        now: datetime | None = None,
        logger: logging.Logger | None = None,
        policy: Policy | None = None,
    ) -> None:
        self._config = config
        self._workers = workers
        self._progress = progress
        self._now = now
        self._logger = logger or logging.getLogger(ROOT_LOGGER)
        self._given_policy = policy
        self._policy: Policy | None = None
        self._plan: Plan | None = None
        self._missing: list[str] = []
        self._considered: list[Path] = []
        self._unsafe: dict[str, tuple[str, str]] = {}

    # -- planning --------------------------------------------------------------

    def _prepare(self) -> tuple[Policy, list[ScanRoot], int, dict[str, str]]:
        """Read the policy and turn it into walk roots, in path order.

        Each root is resolved once, here: symlinks above a root are followed
        (``/scratch -> /data/scratch``); the root itself and anything below it
        must not be a link. A root
        nested in another is reached from the outer one component by
        component, so a link between the two refuses it. Returns the roots to
        walk and the refused ones with the reason; a missing root is a warning.
        """
        policy = self._given_policy
        if policy is None:
            policy = load_policy(self._config.policy_file)
            for message in new_warnings(policy.ignored):
                self._logger.warning(message)
        self._policy = policy
        now = self._now or datetime.now(tz=UTC)
        when_ns = _ns(now.astimezone(UTC) - _EPOCH)  # a naive time is local, as timestamp() has it
        future = self._config.future_duration
        if future is not None:
            when_ns += _ns(future)
        self._logger.info(f"Planning for time {human_duration(future or timedelta(0))} from now.")
        paths = [str(d) for d in dict.fromkeys(policy.get_directories())]
        keys = self._resolve(paths)
        protected_all: set[str] = set()
        for key in keys.values():
            path, parent = key, os.path.dirname(key)
            protected_all.add(key)
            while parent != path:
                protected_all.add(parent)
                path, parent = parent, os.path.dirname(parent)
        mount_points = read_mount_points()
        roots: list[ScanRoot] = []
        refused: dict[str, str] = {}
        self._missing = []
        seen: set[str] = set()
        # A path listed twice is walked once, with its first rules (as for_path finds).
        for path in reversed(paths):
            key = keys[path]
            if key in seen:
                continue
            seen.add(key)
            rules = policy.for_path(Path(path))
            outer = [k for k in keys.values() if k != key and _inside(key, k)]
            anchor = min(outer, key=len) if outer else ""
            others = [k for k in keys.values() if k != key and _inside(k, key)]
            root = ScanRoot(
                path=key,
                threshold=rules.threshold,
                large=_cutoffs(rules.intervals.large, when_ns),
                small=_cutoffs(rules.intervals.small, when_ns),
                excluded=frozenset(others),
                protected=frozenset(p for p in protected_all if _inside(p, key) and p != key),
                anchor=anchor,
                anchor_parts=tuple(key[len(anchor) :].strip(os.sep).split(os.sep))
                if anchor
                else (),
                policy_path=path,
                mount_points=frozenset(p for p in mount_points if _inside(p, key)),
            )
            problem = self._unsafe.get(path) or self._check_root(root)
            if problem is None:
                roots.append(root)
            elif problem[1] == _MISSING:
                self._missing.append(path)
                self._logger.warning(f"Policy root {display_path(path)} does not exist; skipped")
            else:
                where, reason = problem
                refused[where] = reason
                self._logger.error(
                    f"Refusing policy root {display_path(path)}: {display_path(where)}: {reason}"
                )
        # Walked (and reported) in path order: each root's lines come out sorted.
        roots.sort(key=lambda root: root.path)
        # The report lists the roots as walked (resolved), a missing one not at all.
        self._considered = [
            Path(keys[str(d)]) for d in policy.get_directories() if str(d) not in self._missing
        ]
        return policy, roots, when_ns, refused

    def _resolve(self, paths: list[str]) -> dict[str, str]:
        """Each policy path's resolved form (its walk key), computed once."""
        keys: dict[str, str] = {}
        for path in sorted(paths, key=len):
            outer = [p for p in keys if _inside(path, p) and p != path]
            if outer:
                # Below another root: never resolved, so a link there is refused later.
                top = min(outer, key=len)
                keys[path] = keys[top] + path[len(top) :]
            else:
                # The ancestors are resolved; the root itself must not be a link.
                parent, name = os.path.split(path)
                keys[path] = os.path.join(os.path.realpath(parent), name)
                try:
                    link = _untrusted_link(parent)
                except OSError:  # changed while looked at: the root check will say how
                    link = None
                if link is not None:
                    self._unsafe[path] = link
                if keys[path] != path:
                    self._logger.info(
                        f"Policy root {display_path(path)} resolves to {display_path(keys[path])}"
                    )
        return keys

    @staticmethod
    def _check_root(root: ScanRoot) -> tuple[str, str] | None:
        """Why ``root`` must not be walked, as (failing path, reason); None if it is fine.

        The failing path is the root, or the component above it that is a
        symlink or unreadable; ``_MISSING`` is the reason for a missing root.
        """
        try:
            if stat.S_ISLNK(os.lstat(root.path).st_mode):
                return root.path, "is a symlink; refused"
            os.close(open_root(root))
        except FileNotFoundError:
            return root.path, _MISSING
        except OSError as exc:
            # Reached through a symlink below an outer root, or swapped just now.
            return failed_component(root, ()), describe_error(exc)
        return None

    def _walk(
        self,
        out: _Output | None,
        policy: Policy,
        roots: list[ScanRoot],
        when_ns: int,
        mode: int,
        *,
        planned: frozenset[str] | None = None,
        keep: list[FileRecord] | None = None,
        met: set[str] | None = None,
    ) -> PurgeSummary:
        """The one walk every command runs: report lines to ``out``, records to ``keep``."""
        summary = PurgeSummary(purged=mode != REPORT, missing_roots=list(self._missing))
        if out is not None:
            out.write(_report_header(self._considered))
        debug = self._logger.isEnabledFor(logging.DEBUG)
        workers = 1 if planned is not None else self._workers
        for batch in scan(
            roots, workers=workers, progress=self._progress, mode=mode, planned=planned
        ):
            summary.files_checked += batch.files
            summary.files_deleted += batch.deleted
            summary.bytes_deleted += batch.deleted_bytes
            summary.directories_removed += batch.removed
            if met is not None and batch.spared:
                met.update(batch.spared)
                for path in batch.spared:
                    self._logger.info(f"Not purged, changed since the plan: {display_path(path)}")
            if batch.matches:
                summary.files_matched += len(batch.matches)
                if met is not None:
                    met.update(m[0] for m in batch.matches)
                if mode != PURGE_PLANNED:
                    rules = policy.for_path(Path(roots[batch.root].policy_path))
                    if debug or keep is not None:
                        records = [_record(rules, m, when_ns) for m in batch.matches]
                        if debug:
                            for record in records:
                                self._logger.debug(str(record))
                        if keep is not None:
                            keep.extend(records)
                if out is not None:
                    out.write("".join(f"  -> {display_path(m[0])}\n" for m in batch.matches))
            for path, error in batch.errors:
                summary.failures.setdefault(path, error)  # the first (the cause) is kept
            for path in batch.mounts:
                self._logger.warning(f"Not entering mount point {display_path(path)}")
            summary.mount_points.extend(batch.mounts)
        if out is not None:
            if policy.directories and not summary.files_matched:
                out.write("No matching files found.\n")
            if summary.mount_points:
                out.write("Mount points not entered:\n")
                out.write("".join(f"  {display_path(p)}\n" for p in summary.mount_points))
            out.flush()
        return summary

    def plan(self) -> Plan:
        """Walk the policy roots and keep every file to purge."""
        self._plan = None
        policy, roots, when_ns, refused = self._prepare()
        plan = Plan(directories=policy.get_directories(), errors=dict(refused), roots=roots)
        summary = self._walk(None, policy, roots, when_ns, REPORT, keep=plan.files)
        plan.errors.update(summary.failures)
        plan.mounts = summary.mount_points
        self._plan = plan
        return plan

    # -- reporting -------------------------------------------------------------

    def report(self) -> str:
        """The plan as upstream's report text (also logged at INFO)."""
        if self._plan is None:
            raise PlanNotReadyError("Cannot report: plan not ready")
        text = format_report(
            self._plan.directories, (str(f.path) for f in self._plan.files), self._plan.mounts
        )
        self._logger.info(text)
        return text

    def run_report(self, out: TextIO | None) -> PurgeSummary:
        """Plan and write the report to ``out`` as the walk goes; delete nothing.

        What ``report`` and ``warn`` run: memory stays flat however many files
        match. Failures are in the summary, never raised.
        """
        output = _Output(out)
        policy, roots, when_ns, refused = self._prepare()
        summary = self._walk(output, policy, roots, when_ns, REPORT)
        summary.failures = refused | summary.failures
        summary.output_error = output.error
        return summary

    def run(self, out: TextIO | None) -> PurgeSummary:
        """Report and purge as the walk goes, then end the report with the summary.

        What ``execute`` runs. Files are unlinked, and emptied directories
        removed, by the walk itself (relative to the descriptors it holds), so
        no list of files is held and a deep tree costs linear time. Dry run and
        warning mode only report. Failures are in the summary, never raised.
        """
        output = _Output(out)
        policy, roots, when_ns, refused = self._prepare()
        purging = not (self._config.dry_run or self._config.future_duration is not None)
        summary = self._walk(output, policy, roots, when_ns, PURGE if purging else REPORT)
        if not purging:
            self._warn_not_purging()
        summary.failures = refused | summary.failures
        output.write(summary.text() + "\n")
        output.flush()
        summary.output_error = output.error
        if purging:
            self._logger.debug("Purge complete")
        return summary

    def stream_report(self, out: TextIO) -> dict[str, str]:
        """`run_report`, returning only the failures."""
        return self.run_report(out).failures

    def stream_execute(self, out: TextIO) -> PurgeSummary:
        """`run`, raising `PurgeFailedError` if anything failed."""
        summary = self.run(out)
        self._raise_for(summary.failures)
        return summary

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

    def purge(self) -> int:
        """Remove the planned files that still match, then empty directories; the count removed.

        The roots are walked again and a file is unlinked when its path is in
        the plan and it still passes the policy's test on the ``lstat`` taken
        just before the unlink, relative to the descriptor of its directory
        (the decision and the unlink are one pass, as in `run`): a file written
        or renamed over since the plan is kept (logged), a planned file no
        longer found is reported as vanished.
        """
        plan = self._plan
        if plan is None:
            raise PlanNotReadyError("Cannot purge: plan not ready")
        if self._config.dry_run or self._config.future_duration is not None:
            self._warn_not_purging()
            self._raise_for(dict(plan.errors))
            return 0
        policy = self._policy
        assert policy is not None
        wanted = frozenset(str(f.path) for f in plan.files)
        met: set[str] = set()
        summary = self._walk(None, policy, plan.roots, 0, PURGE_PLANNED, planned=wanted, met=met)
        failed = dict(plan.errors) | summary.failures
        for path in sorted(wanted - met):
            # Not met again: vanished, unless a directory above it was refused.
            if not any(_inside(path, other) for other in failed):
                failed[path] = "No such file or directory (vanished)"
        self._raise_for(failed)
        self._logger.debug("Purge complete")
        self._plan = None
        return summary.files_deleted

    def _raise_for(self, failed: dict[str, str]) -> None:
        if failed:
            self._logger.error(
                "Purge encountered errors",
                extra={"failed_files": failed},
            )
            raise PurgeFailedError(failed)


def _untrusted_link(directory: str, hops: int = 0) -> tuple[str, str] | None:
    """The first symlink among ``directory`` and its ancestors that neither root nor this
    process's user owns, with the reason to refuse it; None if there is none.

    A link above a root is followed once, at start (``/scratch -> /data/scratch``),
    which is only safe when a user cannot have made it point somewhere else.
    """
    trusted = {0, os.geteuid()}
    current = ""
    for part in directory.strip(os.sep).split(os.sep):
        if not part:
            continue
        current = f"{current}{os.sep}{part}"
        try:
            info = os.lstat(current)
        except OSError:
            return None  # missing: reported as such when the root is checked
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in trusted:
                return current, (
                    f"is a symlink owned by uid {info.st_uid}, not root; refused (its owner"
                    " could point it anywhere)"
                )
            if hops >= 40:  # as the kernel's ELOOP: a loop, not a tree
                return current, "is a symlink loop; refused"
            # The target (as written) may go through links of its own: check them too.
            target = os.path.join(os.path.dirname(current), os.readlink(current))
            link = _untrusted_link(os.path.normpath(target), hops + 1)
            if link is not None:
                return link
            current = os.path.realpath(current)
    return None


_MISSING = "\0missing"
"""`Purger._check_root`'s answer for a root that does not exist."""


def purge_policy(
    policy: Policy | Path,
    *,
    dry_run: bool = False,
    future_duration: timedelta | None = None,
    now: datetime | None = None,
    workers: int = 1,
    out: TextIO | None = None,
    logger: logging.Logger | None = None,
) -> PurgeSummary:
    """Run the purger in-process over ``policy`` (a policy or its file), as ``execute`` does.

    For a scheduler: it never raises for files that could not be checked or
    removed (they are in ``failures``), only `PurgerConfigError` for a bad
    policy file. ``out`` receives the report text if given.
    """
    config = PurgerConfig(dry_run=dry_run, future_duration=future_duration)
    given = None
    if isinstance(policy, Policy):
        given = policy
    else:
        config = dataclasses.replace(config, policy_file=Path(policy))
    purger = Purger(config, workers=workers, now=now, logger=logger, policy=given)
    return purger.run(out)


def _report_header(directories: list[Path]) -> str:
    if not directories:
        return "No directories considered."
    return "Directories considered:\n" + "".join(f"  {display_path(str(d))}\n" for d in directories)


def format_report(
    directories: list[Path], files: Iterator[str] | list[str], mounts: Sequence[str] = ()
) -> str:
    """Upstream's plan text: the directories, then one ``->`` line per file."""
    header = _report_header(directories)
    if not directories:
        return header
    lines = "".join(f"  -> {display_path(f)}\n" for f in files)
    text = header + (lines or "No matching files found.\n")
    if mounts:
        text += "Mount points not entered:\n" + "".join(f"  {display_path(p)}\n" for p in mounts)
    return text
