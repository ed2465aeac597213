"""The purger's tree walk: find (and in purge modes remove) files old enough, fast and flat.

This is the hot path. A scratch file system holds millions of files, so the
walk does per file only what the decision needs: one ``lstat`` and up to three
integer comparisons against cut-offs computed once (nanoseconds, so the
comparisons are exact and strict). Nothing is logged or formatted per file, and
only matches and failures are kept. Sub-trees are spread over a pool of
processes so that every core walks.

Nothing here follows a symbolic link or leaves a policy root. The purger runs
as root over trees their users can change while it walks, so no directory is
ever opened by its full path: each is opened relative to its parent's
descriptor with O_NOFOLLOW, files are unlinked and directories removed
relative to their parent's descriptor, and a directory swapped for a symlink is
refused (reported) rather than followed. A mount point (another file system, or
a bind mount of the same one, told apart by mount ID) is never entered.

Users can build hostile trees, so the walk is iterative and its cost is bounded:

* a directory's entries are held as names, never as open descriptors, so a
  directory of 100,000 sub-directories needs one descriptor, not 100,000;
* at most `MAX_OPEN` descriptors are open per walk: past that the shallowest
  open one is closed, and coming back up a directory is re-opened as ``..`` of
  its child, checked to be the same (st_dev, st_ino) it was. Should the check
  fail (the tree was moved meanwhile), it is re-opened by walking down from the
  deepest ancestor still open, checking each step, or reported. A chain
  10,000 directories deep costs two opens per level and 33 descriptors.

Entries are visited in sorted order (a sub-directory where its path sorts), so
matches come out sorted by path, whatever the number of workers.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import multiprocessing
import os
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

__all__ = [
    "ATIME",
    "CTIME",
    "MAX_OPEN",
    "MTIME",
    "PURGE",
    "PURGE_PLANNED",
    "REASONS",
    "REPORT",
    "Cutoffs",
    "Match",
    "ScanBatch",
    "ScanRoot",
    "describe_error",
    "directory_identity",
    "failed_component",
    "open_beneath",
    "open_root",
    "parse_mountinfo",
    "read_mount_points",
    "refusal",
    "scan",
]

ATIME, CTIME, MTIME = 0, 1, 2
"""Reason codes, in the order the criteria are tested (first hit wins)."""

REASONS = ("ATIME", "CTIME", "MTIME")
"""Reason names, indexed by reason code."""

REPORT, PURGE, PURGE_PLANNED = 0, 1, 2
"""Walk modes: only list matches; unlink matches and remove empty directories;
unlink the files of a plan made earlier that still match (and remove empty
directories). Every deleting mode decides on the ``lstat`` it takes just
before the unlink, relative to the same directory descriptor: a file replaced
or rewritten since a plan was made is judged again, never deleted by name."""

MAX_OPEN = 32
"""Directory descriptors one walk keeps open at most (plus its starting one)."""

NEVER = -(1 << 80)
"""A cut-off no timestamp is below: the criterion is disabled."""

Match = tuple[str, bool, int, int]
"""One file to purge: (path, is_large, reason code, timestamp in ns)."""

Identity = tuple[int, int, int]
"""A directory's (st_dev, st_ino, mount ID); the mount ID is -1 when unknown."""


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
    """One policy root to walk, with its rules already turned into cut-offs.

    ``path`` is the resolved path (symlinks above the root followed once, at
    start); every path the walk reports starts with it.
    """

    path: str
    threshold: int
    large: Cutoffs
    small: Cutoffs
    excluded: frozenset[str] = frozenset()
    """Roots of more specific policies: their files belong to those policies."""
    protected: frozenset[str] = frozenset()
    """Directories never removed when empty: nested policy roots and their ancestors."""
    anchor: str = ""
    """For a nested root, the outermost policy root containing it ("" otherwise)."""
    anchor_parts: tuple[str, ...] = ()
    """The components from ``anchor`` down to ``path``."""
    policy_path: str = ""
    """The path as the policy names it (before resolving), for messages."""
    mount_points: frozenset[str] = frozenset()
    """Mount points from /proc/self/mountinfo below the root: a directory's are used only
    where mount IDs are unknown, a file's always (a file's mount ID would cost a statx each)."""

    @property
    def guard_depth(self) -> int:
        """How deep below the root an excluded or protected path can be."""
        base = self.path.rstrip(os.sep).count(os.sep)
        deepest = [p.count(os.sep) - base for p in self.excluded | self.protected]
        return max(deepest, default=0)


@dataclass
class ScanBatch:
    """What one piece of the walk found and did: matches, failures, counts."""

    root: int
    matches: list[Match] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    mounts: list[str] = field(default_factory=list)
    """Mount points met below the root: not entered."""
    deleted: int = 0
    deleted_bytes: int = 0
    removed: int = 0
    """Empty directories removed."""
    spared: list[str] = field(default_factory=list)
    """PURGE_PLANNED only: planned files that no longer match (changed since the plan)."""


_S_IFMT, _S_IFDIR, _S_IFLNK = 0o170000, stat.S_IFDIR, stat.S_IFLNK

_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

Task = tuple[
    int, tuple[str, ...], tuple[str, ...], ScanRoot, Identity, int, "frozenset[str] | None"
]
"""Sibling sub-trees for a worker: (root index, their parent's components below
the root, their names, root, root's identity, mode, planned paths)."""


def _join(directory: str, name: str) -> str:
    return (directory + os.sep if directory != os.sep else directory) + name


# -- directory identity: (dev, ino, mount ID) ------------------------------------------

_AT_EMPTY_PATH = 0x1000
_STATX_INO = 0x100
_STATX_MNT_ID = 0x1000
_STATX_FIELDS = struct.Struct("=I28xQ96xIIQ")  # mask, ino @32, dev major/minor @136, mnt_id @144


def _statx_identity() -> Callable[[int], Identity] | None:
    """An identity function on statx(2), which gives the mount ID; None where unavailable.

    Python has no statx, so it is called through ctypes (about as fast as fstat).
    """
    try:
        # No argtypes and no errno swapping: each call costs less than an os.fstat.
        function = ctypes.CDLL(None).statx
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    buffer = ctypes.create_string_buffer(256)
    unpack = _STATX_FIELDS.unpack_from
    flags, mask_wanted, empty = _AT_EMPTY_PATH, _STATX_INO | _STATX_MNT_ID, b""

    def identity(fd: int) -> Identity:
        if function(fd, empty, flags, mask_wanted, buffer) != 0:
            os.fstat(fd)  # raises the error statx met (a closed descriptor, say)
            raise OSError(errno.EIO, "statx failed")
        mask, ino, major, minor, mount = unpack(buffer)
        return os.makedev(major, minor), ino, mount if mask & _STATX_MNT_ID else -1

    try:
        probe = os.open("/", _OPEN_DIRECTORY)
        try:
            if identity(probe)[2] < 0:
                return None
        finally:
            os.close(probe)
    except OSError:
        return None
    return identity


def _fstat_identity(fd: int) -> Identity:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino, -1


_identity: Callable[[int], Identity] | None = None


def directory_identity(fd: int) -> Identity:
    """(st_dev, st_ino, mount ID) of an open directory; the mount ID is -1 if unknown."""
    global _identity
    if _identity is None:
        _identity = _statx_identity() or _fstat_identity
    return _identity(fd)


def parse_mountinfo(text: str) -> frozenset[str]:
    """Mount points listed in a /proc/self/mountinfo text (octal escapes undone).

    Used where mount IDs are unknown (no statx): a directory whose path is a
    mount point is then not entered even when it is on the same device (a bind
    mount).
    """
    points = set()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            raw = fields[4]
            points.add(
                raw.encode("latin-1", "surrogateescape")
                .decode("unicode_escape")
                .encode("latin-1")
                .decode(errors="surrogateescape")
                if "\\" in raw
                else raw
            )
    return frozenset(points)


def read_mount_points(path: str = "/proc/self/mountinfo") -> frozenset[str]:
    """Mount points of this process's namespace, or none where that file is missing."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return parse_mountinfo(handle.read())
    except OSError:
        return frozenset()


def _crosses_mount(
    child: Identity, root: Identity, path: str | None, points: frozenset[str]
) -> bool:
    """Whether a directory with identity ``child`` is on another mount than its root.

    By mount ID when known (that tells a bind mount of the same file system);
    otherwise by device, and by the mount points read at start.
    """
    if child[2] >= 0 and root[2] >= 0:
        return child[2] != root[2]
    return child[0] != root[0] or (path is not None and path in points)


# -- opening safely -------------------------------------------------------------------


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
        raise _named_refusal(exc, base, None) from None
    try:
        for part in parts:
            try:
                child = os.open(part, _OPEN_DIRECTORY, dir_fd=fd)
            except OSError as exc:
                raise _named_refusal(exc, part, fd) from None
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


def _named_refusal(exc: OSError, name: str, dir_fd: int | None) -> OSError:
    return OSError(exc.errno, refusal(exc, name, dir_fd))


def open_root(root: ScanRoot, parts: tuple[str, ...] = ()) -> int:
    """Open a directory ``parts`` below a policy root, never through a link.

    A nested root is reached from the outermost root that contains it, so a
    symlink anywhere between the two is refused as well.
    """
    return open_beneath(root.anchor or root.path, root.anchor_parts + parts)


def describe_error(exc: OSError) -> str:
    """A short reason for a failure, as the report prints it (no errno, no path)."""
    return exc.strerror or str(exc)


def failed_component(root: ScanRoot, parts: tuple[str, ...] = ()) -> str:
    """The path of the first component of ``parts`` below ``root`` that cannot be opened.

    Used to name a failure by the directory that caused it (a symlink in the
    middle of the path) rather than by the one that was wanted.
    """
    base = root.anchor or root.path
    chain = root.anchor_parts + parts
    path = base
    try:
        fd = os.open(base, _OPEN_DIRECTORY)
    except OSError:
        return base
    try:
        for part in chain:
            path = _join(path, part)
            try:
                child = os.open(part, _OPEN_DIRECTORY, dir_fd=fd)
            except OSError:
                return path
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    return path


# -- the walk ---------------------------------------------------------------------------


class _Frame:
    """One directory on the walk's stack: its descriptor (or -1 once closed) and entries."""

    __slots__ = ("dirs", "fd", "files", "ident", "name", "next_dir", "next_file", "path")

    def __init__(self, fd: int, name: str, ident: Identity, path: str | None) -> None:
        self.fd = fd
        self.name = name
        self.ident = ident
        self.path = path
        self.files: list[str] = []
        self.dirs: list[str] = []
        self.next_file = 0
        self.next_dir = 0


class _Walker:
    """Walks one sub-tree depth-first, in sorted order, with bounded descriptors."""

    def __init__(
        self,
        root: ScanRoot,
        root_ident: Identity,
        batch: ScanBatch,
        mode: int,
        planned: frozenset[str] | None,
        max_open: int | None = None,
    ) -> None:
        self.root = root
        self.root_ident = root_ident
        self.batch = batch
        self.mode = mode
        self.planned = planned or frozenset()
        self.max_open = max(2, max_open or MAX_OPEN)
        self.base_depth = root.path.rstrip(os.sep).count(os.sep)
        self.guard_depth = root.guard_depth
        self.check_points = root_ident[2] < 0 and bool(root.mount_points)
        self.stack: list[_Frame] = []
        self.open = 0
        self.low = 1
        self.first_depth = 0
        """Open frames are stack[0] and stack[low:] (a window at the bottom)."""

    # paths are built only when needed: a chain 10,000 deep must not hold 10,000 long strings

    def path_of(self, index: int) -> str:
        stack = self.stack
        start = index
        while stack[start].path is None:
            start -= 1
        path = stack[start].path
        assert path is not None
        if start < index:
            path = os.sep.join(
                [path.rstrip(os.sep), *(f.name for f in stack[start + 1 : index + 1])]
            )
            if len(stack) < 256 or index == len(stack) - 1:
                stack[index].path = path  # kept, but only near the top of a deep chain
        return path

    def list_directory(self, frame: _Frame, index: int) -> None:
        """Read a directory's names: files, and the sub-directories to enter, both sorted."""
        files, dirs = frame.files, frame.dirs
        try:
            with os.scandir(frame.fd) as entries:
                for entry in entries:
                    # Most entries are regular files: test for that first.
                    if entry.is_file(follow_symlinks=False):
                        files.append(entry.name)
                    elif entry.is_dir(follow_symlinks=False):
                        dirs.append(entry.name)
                    elif not entry.is_symlink():
                        files.append(entry.name)  # a FIFO, socket or device: judged as a file
        except OSError as exc:
            self.batch.errors.append((self.path_of(index), describe_error(exc)))
        if len(files) > 1:
            files.sort()
        if len(dirs) > 1:
            # A directory sorts where its path does: "b/..." after "b-c" and "b.txt".
            dirs.sort(key=lambda name: name + "/")
        depth = self.depth_of(index) + 1
        if depth <= self.guard_depth and self.root.excluded:
            prefix = self.path_of(index)
            frame.dirs = [d for d in dirs if _join(prefix, d) not in self.root.excluded]

    def depth_of(self, index: int) -> int:
        """How deep the frame ``index`` is below the policy root."""
        return self.first_depth + index

    def check_files(self, frame: _Frame, index: int, end: int) -> None:
        """Judge (and in purge modes unlink) the frame's files up to index ``end``."""
        root = self.root
        batch = self.batch
        matches = batch.matches
        threshold = root.threshold
        large_a, large_c, large_m = root.large.atime, root.large.ctime, root.large.mtime
        small_a, small_c, small_m = root.small.atime, root.small.ctime, root.small.mtime
        mode, planned = self.mode, self.planned
        fd = frame.fd
        prefix = self.path_of(index)
        prefix = prefix + os.sep if prefix != os.sep else prefix
        lstat, unlink = os.stat, os.unlink
        # A single file bind-mounted into the tree: listed like any file, but
        # unlinking it fails (EBUSY) on every run, and it is not the tree's to
        # delete. Mount points are known from mountinfo at start; only a root
        # that has some pays for the test.
        points = self.root.mount_points
        count = 0
        for name in frame.files[frame.next_file : end]:
            if points and prefix + name in points:
                batch.mounts.append(prefix + name)
                continue
            try:
                info = lstat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError as exc:
                batch.errors.append((prefix + name, f"{describe_error(exc)} (vanished)"))
                continue
            except OSError as exc:
                batch.errors.append((prefix + name, describe_error(exc)))
                continue
            kind = info.st_mode & _S_IFMT
            if kind in (_S_IFDIR, _S_IFLNK):
                continue  # swapped since listing: a directory is walked, a link never
            count += 1
            if mode == PURGE_PLANNED and prefix + name not in planned:
                continue
            # The policy's test, on the stat just taken: in PURGE_PLANNED mode too,
            # so a file rewritten or replaced since the plan is judged afresh.
            if info.st_size >= threshold:
                cut_a, cut_c, cut_m, large = large_a, large_c, large_m, True
            else:
                cut_a, cut_c, cut_m, large = small_a, small_c, small_m, False
            if info.st_atime_ns < cut_a:
                matches.append((prefix + name, large, ATIME, info.st_atime_ns))
            elif info.st_ctime_ns < cut_c:
                matches.append((prefix + name, large, CTIME, info.st_ctime_ns))
            elif info.st_mtime_ns < cut_m:
                matches.append((prefix + name, large, MTIME, info.st_mtime_ns))
            else:
                if mode == PURGE_PLANNED:
                    batch.spared.append(prefix + name)
                continue
            if mode != REPORT:
                try:
                    unlink(name, dir_fd=fd)  # unlink never removes a directory (EISDIR)
                except IsADirectoryError:
                    batch.errors.append((prefix + name, "became a directory; not removed"))
                except OSError as exc:
                    batch.errors.append((prefix + name, describe_error(exc)))
                else:
                    batch.deleted += 1
                    batch.deleted_bytes += info.st_size
        frame.next_file = end
        batch.files += count

    def enter(self, parent: _Frame, index: int, name: str) -> _Frame | None:
        """Open the sub-directory ``name`` of the top frame; None if refused or a mount."""
        try:
            fd = os.open(name, _OPEN_DIRECTORY, dir_fd=parent.fd)
        except OSError as exc:
            self.batch.errors.append(
                (_join(self.path_of(index), name), refusal(exc, name, parent.fd))
            )
            return None
        try:
            ident = directory_identity(fd)
        except OSError as exc:
            os.close(fd)
            self.batch.errors.append((_join(self.path_of(index), name), describe_error(exc)))
            return None
        path = _join(self.path_of(index), name) if self.check_points else None
        if _crosses_mount(ident, self.root_ident, path, self.root.mount_points):
            os.close(fd)
            self.batch.mounts.append(path or _join(self.path_of(index), name))
            return None
        return _Frame(fd, name, ident, path)

    def reopen(self, index: int, child: _Frame | None) -> bool:
        """Re-open the closed frame ``index``: as ``..`` of its child, else from above.

        Each descriptor is checked to be the directory first seen there (same
        st_dev and st_ino), so a tree moved meanwhile is refused, not walked.
        """
        frame = self.stack[index]
        if child is not None and child.fd >= 0:
            try:
                fd = os.open("..", _OPEN_DIRECTORY, dir_fd=child.fd)
            except OSError:
                fd = -1
            if fd >= 0:
                if directory_identity(fd)[:2] == frame.ident[:2]:
                    frame.fd = fd
                    return True
                os.close(fd)
        # Walk down from the deepest ancestor still open.
        above = index - 1
        while self.stack[above].fd < 0:
            above -= 1
        fd = self.stack[above].fd
        for step in range(above + 1, index + 1):
            wanted = self.stack[step]
            try:
                child_fd = os.open(wanted.name, _OPEN_DIRECTORY, dir_fd=fd)
            except OSError:
                child_fd = -1
            if fd != self.stack[above].fd:
                os.close(fd)
            if child_fd < 0:
                return False
            if directory_identity(child_fd)[:2] != wanted.ident[:2]:
                os.close(child_fd)
                return False
            fd = child_fd
        frame.fd = fd
        return True

    def walk(self, fd: int, path: str, ident: Identity) -> None:
        """Walk everything below the open directory ``fd``; closes ``fd``."""
        stack = self.stack
        stack.append(_Frame(fd, "", ident, path))
        self.open, self.low = 1, 1
        self.first_depth = path.rstrip(os.sep).count(os.sep) - self.base_depth
        try:
            self.list_directory(stack[0], 0)
            while stack:
                index = len(stack) - 1
                frame = stack[index]
                if frame.next_dir < len(frame.dirs):
                    name: str | None = frame.dirs[frame.next_dir]
                    end = bisect.bisect_left(frame.files, f"{name}/", lo=frame.next_file)
                else:
                    name, end = None, len(frame.files)
                if frame.next_file < end:
                    self.check_files(frame, index, end)
                if name is None:
                    self.leave()
                    continue
                frame.next_dir += 1
                child = self.enter(frame, index, name)
                if child is not None:
                    self.push(child)
                    self.list_directory(child, index + 1)
        finally:
            for frame in stack:
                self.close(frame)
            stack.clear()

    def leave(self) -> None:
        """Pop the finished top frame; in purge modes remove it if it is now empty."""
        stack = self.stack
        index = len(stack) - 1
        frame = stack[index]
        if index == 0:
            stack.pop()
            self.close(frame)
            return
        parent = stack[index - 1]
        if parent.fd < 0:
            if self.reopen(index - 1, frame):
                self.open += 1
                self.low = min(self.low, index - 1)
            else:
                # Moved away while we were below it: what is left of it is not
                # walked, and its own parent is re-opened from above in turn.
                self.batch.errors.append(
                    (self.path_of(index - 1), "moved during the walk; the rest of it not checked")
                )
                parent.next_dir, parent.next_file = len(parent.dirs), len(parent.files)
                self.close(frame)
                stack.pop()
                return
        self.close(frame)
        if self.mode != REPORT:
            self.remove_if_empty(parent.fd, index)
        stack.pop()

    def close(self, frame: _Frame) -> None:
        if frame.fd >= 0:
            os.close(frame.fd)
            frame.fd = -1
            self.open -= 1

    def push(self, child: _Frame) -> None:
        """Put an opened sub-directory on the stack, closing the shallowest past the bound."""
        stack = self.stack
        stack.append(child)
        self.open += 1
        if len(stack) > 256:
            stack[-2].path = None  # rebuilt when needed: deep chains hold no long strings
        if self.open > self.max_open:
            low = max(self.low, 1)
            while stack[low].fd < 0:
                low += 1
            self.close(stack[low])
            self.low = low + 1

    def remove_if_empty(self, parent_fd: int, index: int) -> None:
        """rmdir the frame ``index`` relative to its parent unless protected; non-empty is fine.

        Its path is built only when needed (a protected depth, or a failure),
        so a deep chain does not pay for a long string per level.
        """
        if self.depth_of(index) <= self.guard_depth and self.path_of(index) in self.root.protected:
            return
        try:
            os.rmdir(self.stack[index].name, dir_fd=parent_fd)  # only ever an empty directory
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
                self.batch.errors.append((self.path_of(index), describe_error(exc)))
        else:
            self.batch.removed += 1


def _walk_task(task: Task) -> ScanBatch:
    """Walk sibling sub-trees (run in a worker process, or inline); one batch for all.

    Their parent is opened from the root once, each sub-tree relative to it:
    a directory of 100,000 sub-directories costs one descent, not 100,000.
    """
    index, parent_parts, names, root, root_ident, mode, planned = task
    batch = ScanBatch(root=index)
    try:
        parent = open_root(root, parent_parts)
    except OSError as exc:
        batch.errors.append((failed_component(root, parent_parts), describe_error(exc)))
        return batch
    walker = _Walker(root, root_ident, batch, mode, planned)
    walker.first_depth = len(parent_parts) + 1
    parent_path = os.path.join(root.path, *parent_parts) if parent_parts else root.path
    try:
        for name in names:
            path = _join(parent_path, name)
            try:
                fd = os.open(name, _OPEN_DIRECTORY, dir_fd=parent)
            except OSError as exc:
                batch.errors.append((path, refusal(exc, name, parent)))
                continue
            try:
                ident = directory_identity(fd)
            except OSError as exc:
                os.close(fd)
                batch.errors.append((path, describe_error(exc)))
                continue
            if _crosses_mount(ident, root_ident, path, root.mount_points):
                os.close(fd)
                batch.mounts.append(path)
                continue
            walker.walk(fd, path, ident)
    finally:
        os.close(parent)
    return batch


@dataclass(frozen=True)
class _Subtree:
    """In the split's ordered output: a sub-tree still to walk (in a worker)."""

    parts: tuple[str, ...]


@dataclass(frozen=True)
class _Tidy:
    """In the split's ordered output: remove this directory if empty (its sub-tree is done)."""

    parts: tuple[str, ...]


Item = ScanBatch | _Subtree | _Tidy
"""One step of a root's walk, in the order a single walk would take it."""


def _expand(
    root: ScanRoot,
    index: int,
    parts: tuple[str, ...],
    root_ident: Identity,
    mode: int,
    planned: frozenset[str] | None,
) -> list[Item]:
    """List one directory here: its files judged in batches, its sub-directories as items.

    Files and sub-directories alternate in sorted order, so the items come out
    in the order a single walk would visit them.
    """
    path = os.path.join(root.path, *parts) if parts else root.path
    batch = ScanBatch(root=index)
    items: list[Item] = [batch]
    try:
        fd = open_root(root, parts)
    except OSError as exc:
        batch.errors.append((failed_component(root, parts), describe_error(exc)))
        return items
    walker = _Walker(root, root_ident, batch, mode, planned)
    walker.first_depth = len(parts)
    try:
        ident = directory_identity(fd)
        if parts and _crosses_mount(ident, root_ident, path, root.mount_points):
            batch.mounts.append(path)
            return items
        frame = _Frame(fd, "", ident, path)
        walker.stack.append(frame)
        walker.list_directory(frame, 0)
        for name in frame.dirs:
            end = bisect.bisect_left(frame.files, name + "/", lo=frame.next_file)
            if frame.next_file < end:
                walker.batch = ScanBatch(root=index)
                walker.check_files(frame, 0, end)
                items.append(walker.batch)
            items.append(_Subtree((*parts, name)))
        walker.batch = ScanBatch(root=index)
        walker.check_files(frame, 0, len(frame.files))
        items.append(walker.batch)
        return items
    finally:
        os.close(fd)


def _split(
    roots: list[ScanRoot], wanted: int, mode: int, planned: frozenset[str] | None
) -> list[tuple[int, list[Item], Identity]]:
    """Walk the top levels of each root here until there are ``wanted`` sub-trees.

    Returns, per root that could be opened: its index, the ordered items and its
    identity. Sub-trees are re-opened from the root one component at a time,
    never by path.
    """
    result: list[tuple[int, list[Item], Identity]] = []
    for index, root in enumerate(roots):
        try:
            fd = open_root(root)
        except OSError as exc:
            failed = ScanBatch(root=index, errors=[(failed_component(root), describe_error(exc))])
            result.append((index, [failed], (-1, -1, -1)))
            continue
        try:
            root_ident = directory_identity(fd)
        finally:
            os.close(fd)
        items: list[Item] = [_Subtree(())]
        for level in range(3):
            if level and sum(isinstance(item, _Subtree) for item in items) >= wanted:
                break
            expanded: list[Item] = []
            for item in items:
                if isinstance(item, _Subtree):
                    expanded.extend(_expand(root, index, item.parts, root_ident, mode, planned))
                    if item.parts:
                        expanded.append(_Tidy(item.parts))
                else:
                    expanded.append(item)
            items = expanded
        result.append((index, items, root_ident))
    return result


class _Tidier:
    """Removes the split's directories once their sub-trees are done (parent process)."""

    def __init__(self) -> None:
        self._key: tuple[int, tuple[str, ...]] | None = None
        self._fd = -1

    def remove(self, root: ScanRoot, index: int, parts: tuple[str, ...]) -> ScanBatch:
        batch = ScanBatch(root=index)
        path = os.path.join(root.path, *parts)
        if path in root.protected:
            return batch
        key = (index, parts[:-1])
        if key != self._key:
            self.close()
            try:
                self._fd = open_root(root, parts[:-1])
            except OSError as exc:
                batch.errors.append((failed_component(root, parts[:-1]), describe_error(exc)))
                return batch
            self._key = key
        try:
            os.rmdir(parts[-1], dir_fd=self._fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY, errno.ENOENT):
                batch.errors.append((path, describe_error(exc)))
        else:
            batch.removed += 1
        return batch

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._key = -1, None


def _group(
    split: list[tuple[int, list[Item], Identity]],
    roots: list[ScanRoot],
    workers: int,
    mode: int,
    planned: frozenset[str] | None,
) -> tuple[list[Task], list[tuple[int, list[Item | Task]]]]:
    """Gather runs of sibling sub-trees into tasks of about equal count.

    Returns the tasks, and each root's items with every run replaced by its task.
    """
    total = sum(isinstance(item, _Subtree) for _, items, _ in split for item in items)
    size = max(1, -(-total // (max(workers, 2) * 16)))
    runs: list[tuple[int, tuple[str, ...], list[str], Identity]] = []
    ordered: list[tuple[int, list[Item | int]]] = []
    for index, items, ident in split:
        steps: list[Item | int] = []
        for item in items:
            if isinstance(item, _Subtree):
                parent, name = item.parts[:-1], item.parts[-1]
                last = steps[-1] if steps else None
                if isinstance(last, int) and runs[last][1] == parent and len(runs[last][2]) < size:
                    runs[last][2].append(name)
                    continue
                runs.append((index, parent, [name], ident))
                steps.append(len(runs) - 1)
            else:
                steps.append(item)
        ordered.append((index, steps))
    tasks: list[Task] = [
        (index, parent, tuple(names), roots[index], ident, mode, planned)
        for index, parent, names, ident in runs
    ]
    return tasks, [
        (index, [tasks[step] if isinstance(step, int) else step for step in steps])
        for index, steps in ordered
    ]


def scan(
    roots: list[ScanRoot],
    *,
    workers: int = 1,
    progress: bool = False,
    mode: int = REPORT,
    planned: frozenset[str] | None = None,
) -> Iterator[ScanBatch]:
    """Walk every root, yielding batches in sorted order as they complete.

    With ``workers`` above 1 the sub-trees go to a process pool; the batches
    still come out in the order a single walk visits them. In purge modes files
    are unlinked and empty directories removed as the walk goes (a directory
    after everything below it). ``progress`` draws a counter on stderr when it
    is a terminal.
    """
    meter = _Progress(sys.stderr if progress and sys.stderr.isatty() else None)
    tidier = _Tidier()
    try:
        # The same split in both modes, so the output order does not depend on
        # the number of workers and the progress counter moves in either.
        split = _split(roots, max(workers, 2) * 8, mode, planned)
        tasks, ordered = _group(split, roots, workers, mode, planned)
        pool = None
        if workers > 1 and len(tasks) > 1:
            pool = _pool_context().Pool(min(workers, len(tasks)))
            results: Iterator[ScanBatch] = pool.imap(_walk_task, tasks)
        else:
            results = map(_walk_task, tasks)
        try:
            for index, steps in ordered:
                for step in steps:
                    if isinstance(step, tuple):
                        batch = next(results)
                        meter.add(batch)
                        yield batch
                        if mode != REPORT:
                            # Each sub-tree's own directory, now that its walk is done.
                            for name in step[2]:
                                yield tidier.remove(roots[index], index, (*step[1], name))
                        continue
                    if isinstance(step, _Tidy):
                        if mode == REPORT:
                            continue
                        batch = tidier.remove(roots[index], index, step.parts)
                    elif isinstance(step, ScanBatch):
                        batch = step
                    else:  # every sub-tree is in a task by now
                        continue
                    meter.add(batch)
                    yield batch
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        tidier.close()
        meter.close()


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
