"""The purger's tree walk: find files old enough to purge, fast and flat.

This is the hot path. A scratch file system holds millions of files, so the
walk does per file only what the decision needs: one ``lstat`` and up to three
integer comparisons against cut-offs computed once (nanoseconds, so the
comparisons are exact and strict). Nothing is logged or formatted per file, and
only matches and failures are kept. Sub-trees are spread over a pool of
processes so that every core walks.

Nothing here follows a symbolic link or leaves a policy root. The purger runs
as root over trees their users can change while it walks, so no directory is
ever opened by its full path: each is opened relative to its parent's
descriptor with O_NOFOLLOW, and a directory swapped for a symlink is refused
(reported) rather than followed. A directory on another device (a mount point)
is not entered. Paths are kept as strings only for the report.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

__all__ = [
    "ATIME",
    "CTIME",
    "MTIME",
    "REASONS",
    "Cutoffs",
    "Match",
    "ScanBatch",
    "ScanRoot",
    "describe_error",
    "open_beneath",
    "open_root",
    "refusal",
    "scan",
    "walk_directories",
]

ATIME, CTIME, MTIME = 0, 1, 2
"""Reason codes, in the order the criteria are tested (first hit wins)."""

REASONS = ("ATIME", "CTIME", "MTIME")
"""Reason names, indexed by reason code."""

NEVER = -(1 << 80)
"""A cut-off no timestamp is below: the criterion is disabled."""

Match = tuple[str, bool, int, int]
"""One file to purge: (path, is_large, reason code, timestamp in ns)."""


@dataclass(frozen=True)
class Cutoffs:
    """Timestamps (ns since the epoch) below which a file of one class matches.

    ``atime + interval < when`` is ``atime < when - interval``: computed once here,
    the per-file test is a plain integer comparison.
    """

    atime: int = NEVER
    ctime: int = NEVER
    mtime: int = NEVER


@dataclass(frozen=True)
class ScanRoot:
    """One policy root to walk, with its rules already turned into cut-offs."""

    path: str
    threshold: int
    large: Cutoffs
    small: Cutoffs
    excluded: frozenset[str] = frozenset()
    """Roots of more specific policies: their files belong to those policies."""
    anchor: str = ""
    """For a nested root, the outermost policy root containing it ("" otherwise)."""
    anchor_parts: tuple[str, ...] = ()
    """The components from ``anchor`` down to ``path``."""


@dataclass
class ScanBatch:
    """What one piece of the walk found: matches, failures and a file count."""

    root: int
    matches: list[Match] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    mounts: list[str] = field(default_factory=list)
    """Directories on another device than their root: not entered."""


_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

Task = tuple[int, tuple[str, ...], ScanRoot, int]
"""One sub-tree for a worker: (root index, components below the root, root, root's device)."""


def _join(directory: str, name: str) -> str:
    return (directory + os.sep if directory != os.sep else directory) + name


def open_beneath(base: str, parts: tuple[str, ...] = ()) -> int:
    """Open ``base``, then each of ``parts`` below it, one component at a time.

    Every component, ``base``'s last one included, is opened with O_NOFOLLOW
    and O_DIRECTORY relative to its parent's descriptor, so a component that is
    (or has just become) a symlink or not a directory fails (ELOOP, ENOTDIR)
    instead of being followed. The caller closes the descriptor returned.
    """
    try:
        fd = os.open(base, _OPEN_DIRECTORY)
    except OSError as exc:
        raise _named_refusal(exc, base, None, base) from None
    path = base
    try:
        for part in parts:
            path = _join(path, part)
            try:
                child = os.open(part, _OPEN_DIRECTORY, dir_fd=fd)
            except OSError as exc:
                raise _named_refusal(exc, part, fd, path) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def refusal(exc: OSError, name: str, dir_fd: int | None) -> str:
    """Why opening the directory ``name`` failed, saying "is a symlink" when it is one.

    With O_DIRECTORY and O_NOFOLLOW Linux answers ENOTDIR (or ELOOP) for a
    symlink; one ``lstat`` on this rare path tells the two cases apart.
    """
    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
        return describe_error(exc)
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return describe_error(exc)
    if stat.S_ISLNK(info.st_mode):
        return "is a symlink; not followed"
    return "is not a directory"


def _named_refusal(exc: OSError, name: str, dir_fd: int | None, path: str) -> OSError:
    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
        return exc
    return OSError(exc.errno, f"{path} {refusal(exc, name, dir_fd)}")


def open_root(root: ScanRoot, parts: tuple[str, ...] = ()) -> int:
    """Open a directory ``parts`` below a policy root, never through a link.

    A nested root is reached from the outermost root that contains it, so a
    symlink anywhere between the two is refused as well.
    """
    return open_beneath(root.anchor or root.path, root.anchor_parts + parts)


def _scan_directory(fd: int, directory: str, root: ScanRoot, batch: ScanBatch) -> list[str]:
    """Check the files directly in the open directory ``fd``; return its sub-directories.

    The directory is listed through its descriptor and each ``lstat`` resolves
    one name relative to it, never a whole path.
    """
    threshold = root.threshold
    large_a, large_c, large_m = root.large.atime, root.large.ctime, root.large.mtime
    small_a, small_c, small_m = root.small.atime, root.small.ctime, root.small.mtime
    excluded = root.excluded
    matches = batch.matches
    prefix = directory + os.sep if directory != os.sep else directory
    subdirectories: list[str] = []
    count = 0
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    # Most entries are regular files: test for that first.
                    if entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                    elif entry.is_dir(follow_symlinks=False):
                        if not excluded or prefix + entry.name not in excluded:
                            subdirectories.append(entry.name)
                        continue
                    elif entry.is_symlink():
                        continue
                    else:  # a FIFO, socket or device node: judged like a file
                        info = entry.stat(follow_symlinks=False)
                except FileNotFoundError as exc:
                    batch.errors.append((prefix + entry.name, f"{describe_error(exc)} (vanished)"))
                    continue
                except OSError as exc:
                    batch.errors.append((prefix + entry.name, describe_error(exc)))
                    continue
                count += 1
                if info.st_size >= threshold:
                    cut_a, cut_c, cut_m, large = large_a, large_c, large_m, True
                else:
                    cut_a, cut_c, cut_m, large = small_a, small_c, small_m, False
                if info.st_atime_ns < cut_a:
                    matches.append((prefix + entry.name, large, ATIME, info.st_atime_ns))
                elif info.st_ctime_ns < cut_c:
                    matches.append((prefix + entry.name, large, CTIME, info.st_ctime_ns))
                elif info.st_mtime_ns < cut_m:
                    matches.append((prefix + entry.name, large, MTIME, info.st_mtime_ns))
    except OSError as exc:
        # Reading the directory's next entry failed.
        batch.errors.append((directory, describe_error(exc)))
    batch.files += count
    return subdirectories


def describe_error(exc: OSError) -> str:
    """A short reason for a failure, as the report prints it."""
    return exc.strerror or str(exc)


def _open_error(exc: OSError, path: str) -> str:
    """The reason for a report keyed by ``path``, without repeating the path."""
    reason = describe_error(exc)
    return reason.removeprefix(path + " ")


def _same_device(fd: int, device: int, path: str, batch: ScanBatch) -> bool:
    """False (and noted as a skipped mount point) if ``fd`` is on another device."""
    if os.fstat(fd).st_dev == device:
        return True
    batch.mounts.append(path)
    return False


def _walk_from(fd: int, directory: str, root: ScanRoot, device: int, batch: ScanBatch) -> None:
    """Walk everything below the open directory ``fd`` depth-first; closes ``fd``.

    Each child is opened relative to its parent's descriptor with O_NOFOLLOW,
    so a directory swapped for a symlink after it was listed is refused, and
    one descriptor per level is open at a time. The order is the listing order,
    pre-order, as a path stack would give.
    """
    stack = [(fd, directory, iter(_scan_directory(fd, directory, root, batch)))]
    try:
        while stack:
            parent, path, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                os.close(parent)
                continue
            child_path = _join(path, name)
            try:
                child = os.open(name, _OPEN_DIRECTORY, dir_fd=parent)
            except OSError as exc:
                batch.errors.append((child_path, refusal(exc, name, parent)))
                continue
            if not _same_device(child, device, child_path, batch):
                os.close(child)
                continue
            stack.append((child, child_path, iter(_scan_directory(child, child_path, root, batch))))
    finally:
        for parent, _, _ in stack:
            os.close(parent)


def _task_path(root: ScanRoot, parts: tuple[str, ...]) -> str:
    return os.path.join(root.path, *parts) if parts else root.path


def _scan_tree(task: Task) -> ScanBatch:
    """Walk one sub-tree depth-first (run in a worker process)."""
    index, parts, root, device = task
    batch = ScanBatch(root=index)
    path = _task_path(root, parts)
    try:
        fd = open_root(root, parts)
    except OSError as exc:
        batch.errors.append((path, _open_error(exc, path)))
        return batch
    try:
        same = _same_device(fd, device, path, batch)
    except BaseException:
        os.close(fd)
        raise
    if not same:
        os.close(fd)
        return batch
    _walk_from(fd, path, root, device, batch)
    return batch


def _split(roots: list[ScanRoot], wanted: int) -> tuple[list[ScanBatch], list[Task]]:
    """Walk the top levels here until there are ``wanted`` sub-trees to share out.

    Sub-trees are handed over as components below their root, and re-opened
    from the root one component at a time, so nothing is ever reopened by path.
    """
    batches: list[ScanBatch] = []
    tasks: list[Task] = []
    for index, root in enumerate(roots):
        batch = ScanBatch(root=index)
        batches.append(batch)
        try:
            fd = open_root(root)
        except OSError as exc:
            batch.errors.append((root.path, _open_error(exc, root.path)))
            continue
        try:
            device = os.fstat(fd).st_dev
            names = _scan_directory(fd, root.path, root, batch)
        finally:
            os.close(fd)
        frontier: list[tuple[str, ...]] = [(name,) for name in names]
        for _ in range(2):
            if len(frontier) >= wanted:
                break
            deeper: list[tuple[str, ...]] = []
            for parts in frontier:
                path = _task_path(root, parts)
                try:
                    fd = open_root(root, parts)
                except OSError as exc:
                    batch.errors.append((path, _open_error(exc, path)))
                    continue
                try:
                    if _same_device(fd, device, path, batch):
                        names = _scan_directory(fd, path, root, batch)
                        deeper.extend((*parts, name) for name in names)
                finally:
                    os.close(fd)
            frontier = deeper
        tasks.extend((index, parts, root, device) for parts in frontier)
    return batches, tasks


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds and needs no re-import; forkserver
    # (the 3.14 default) would re-import the package in every worker.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class _Progress:
    """A one-line counter on an interactive stderr, redrawn at most 4 times a second."""

    def __init__(self, stream: TextIO | None, *, delay: float = 1.0, every: float = 0.25) -> None:
        self._stream = stream
        self._delay = delay
        self._every = every
        self._last = 0.0
        self._start = time.monotonic()
        self._drawn = False
        self.files = 0
        self.matches = 0

    def add(self, batch: ScanBatch) -> None:
        self.files += batch.files
        self.matches += len(batch.matches)
        if self._stream is None:
            return
        now = time.monotonic()
        if now - self._start < self._delay or now - self._last < self._every:
            return
        self._last = now
        self._drawn = True
        self._stream.write(f"\rpurger: {self.files:,} files checked, {self.matches:,} to purge")
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not None and self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def scan(roots: list[ScanRoot], *, workers: int = 1, progress: bool = False) -> Iterator[ScanBatch]:
    """Walk every root, yielding batches in a stable order as they complete.

    With ``workers`` above 1 the sub-trees go to a process pool; the batches
    still come out in the same order as a single-process walk would list
    the sub-trees. ``progress`` draws a counter on stderr when it is a terminal.
    """
    meter = _Progress(sys.stderr if progress and sys.stderr.isatty() else None)
    try:
        # The same split in both modes, so the output order does not depend on
        # the number of workers and the progress counter moves in either.
        batches, tasks = _split(roots, wanted=max(workers, 2) * 8)
        for batch in batches:
            meter.add(batch)
            yield batch
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                batch = _scan_tree(task)
                meter.add(batch)
                yield batch
            return
        with _pool_context().Pool(min(workers, len(tasks))) as pool:
            for batch in pool.imap(_scan_tree, tasks):
                meter.add(batch)
                yield batch
    finally:
        meter.close()


def walk_directories(root: ScanRoot) -> tuple[list[str], list[tuple[str, str]]]:
    """Every directory below ``root`` (not the root itself) and the failures met.

    Never through a link, never onto another device, never into a nested
    policy root (its own walk covers it); opened only relative to descriptors.
    """
    found: list[str] = []
    batch = ScanBatch(root=0)
    try:
        fd = open_root(root)
    except OSError as exc:
        return found, [(root.path, _open_error(exc, root.path))]
    device = os.fstat(fd).st_dev
    excluded = root.excluded
    stack = [(fd, root.path)]
    try:
        while stack:
            parent, path = stack.pop()
            try:
                with os.scandir(parent) as entries:
                    names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
            except OSError as exc:
                batch.errors.append((path, describe_error(exc)))
                names = []
            for name in names:
                child_path = _join(path, name)
                if child_path in excluded:
                    continue
                try:
                    child = os.open(name, _OPEN_DIRECTORY, dir_fd=parent)
                except OSError as exc:
                    batch.errors.append((child_path, refusal(exc, name, parent)))
                    continue
                if not _same_device(child, device, child_path, batch):
                    os.close(child)
                    continue
                found.append(child_path)
                stack.append((child, child_path))
            os.close(parent)
    finally:
        for parent, _ in stack:
            os.close(parent)
    return found, batch.errors
