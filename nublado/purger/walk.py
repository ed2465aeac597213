"""The purger's tree walk: find files old enough to purge, fast and flat.

This is the hot path. A scratch file system holds millions of files, so the
walk does per file only what the decision needs: one ``lstat`` and up to three
integer comparisons against cut-offs computed once (nanoseconds, so the
comparisons are exact and strict). Nothing is logged or formatted per file, and
only matches and failures are kept. Sub-trees are spread over a pool of
processes so that every core walks.

Nothing here follows a symbolic link: a symlinked directory is seen as a link
(``is_dir(follow_symlinks=False)``) and skipped like any other link, so the walk
never leaves the policy roots.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator
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
    "scan",
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


@dataclass
class ScanBatch:
    """What one piece of the walk found: matches, failures and a file count."""

    root: int
    matches: list[Match] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0


_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _scan_directory(
    directory: str, root: ScanRoot, batch: ScanBatch, subdirectories: list[str]
) -> None:
    """Check the files directly in ``directory``; append its sub-directories.

    The directory is opened with O_NOFOLLOW and listed through its descriptor,
    so a directory swapped for a symlink after its parent was listed is refused
    rather than followed, and each ``lstat`` resolves one name, not a whole path.
    """
    threshold = root.threshold
    large_a, large_c, large_m = root.large.atime, root.large.ctime, root.large.mtime
    small_a, small_c, small_m = root.small.atime, root.small.ctime, root.small.mtime
    excluded = root.excluded
    matches = batch.matches
    prefix = directory + os.sep if directory != os.sep else directory
    count = 0
    try:
        fd = os.open(directory, _OPEN_DIRECTORY)
    except OSError as exc:
        batch.errors.append((directory, _describe(exc)))
        return
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    # Most entries are regular files: test for that first.
                    if entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                    elif entry.is_dir(follow_symlinks=False):
                        path = prefix + entry.name
                        if path not in excluded:
                            subdirectories.append(path)
                        continue
                    elif entry.is_symlink():
                        continue
                    else:  # a FIFO, socket or device node: judged like a file
                        info = entry.stat(follow_symlinks=False)
                except FileNotFoundError as exc:
                    batch.errors.append((prefix + entry.name, f"{_describe(exc)} (vanished)"))
                    continue
                except OSError as exc:
                    batch.errors.append((prefix + entry.name, _describe(exc)))
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
        batch.errors.append((directory, _describe(exc)))
    finally:
        os.close(fd)
    batch.files += count


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _scan_tree(task: tuple[int, str, ScanRoot]) -> ScanBatch:
    """Walk one sub-tree depth-first (run in a worker process)."""
    index, top, root = task
    batch = ScanBatch(root=index)
    stack = [top]
    while stack:
        directory = stack.pop()
        children: list[str] = []
        _scan_directory(directory, root, batch, children)
        children.reverse()
        stack.extend(children)
    return batch


def _split(
    roots: list[ScanRoot], wanted: int
) -> tuple[list[ScanBatch], list[tuple[int, str, ScanRoot]]]:
    """Walk the top levels here until there are ``wanted`` sub-trees to share out."""
    batches: list[ScanBatch] = []
    tasks: list[tuple[int, str, ScanRoot]] = []
    for index, root in enumerate(roots):
        batch = ScanBatch(root=index)
        batches.append(batch)
        frontier = [root.path]
        for _ in range(3):
            if len(frontier) >= wanted:
                break
            deeper: list[str] = []
            for directory in frontier:
                _scan_directory(directory, root, batch, deeper)
            frontier = deeper
        tasks.extend((index, directory, root) for directory in frontier)
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


def walk_directories(top: str) -> Iterable[str]:
    """Every directory below ``top`` (not ``top`` itself), never through a link."""
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                children = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            # Already reported by the plan's walk; tidying simply skips it.
            continue
        yield from children
        stack.extend(children)
