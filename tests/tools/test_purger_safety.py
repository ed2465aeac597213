"""The purger never acts outside its policy roots (it runs as root on user trees).

Races are staged deterministically: the call between the purger's check and
its act (``os.open`` or ``os.rmdir``) is wrapped to swap a directory for a
symlink at exactly that moment. Everything lives in ``tmp_path``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nublado.purger import walk
from nublado.purger.config import PurgerConfig, PurgerConfigError
from nublado.purger.purger import PurgeFailedError, Purger

HOUR = 3600
DEPTHS = ["", "a/b/c/d"]
"""Where a test directory sits: in the top levels the parent process splits,
or deep enough to be walked by ``_walk_from`` (in a worker, or inline)."""


def opened_path(target: Any, dir_fd: int | None) -> str:
    """The full path an ``os.open`` call names (the purger opens relative to ``dir_fd``)."""
    if dir_fd is None:
        return str(target)
    return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), str(target))


def swap_for_symlink(directory: Path, target: Path) -> None:
    """Move ``directory`` aside and put a symlink to ``target`` in its place."""
    directory.rename(directory.with_name(directory.name + ".moved"))
    directory.symlink_to(target)


def swap_before_open(monkeypatch: pytest.MonkeyPatch, directory: Path, target: Path) -> None:
    """The first time ``directory`` is about to be opened, swap it for a symlink."""
    real_open = os.open
    done: list[bool] = []

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if not done and opened_path(path, kwargs.get("dir_fd")) == str(directory):
            done.append(True)
            swap_for_symlink(directory, target)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside every policy root, with an old file and an empty directory."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "large").write_bytes(b"precious" * 10)
    (directory / "old").write_bytes(b"precious" * 10)
    (directory / "empty").mkdir()
    aged = os.stat(directory / "large").st_atime - 1000 * HOUR
    for name in ("large", "old"):
        os.utime(directory / name, (aged, aged))
    return directory


def run_both(config: PurgerConfig) -> PurgeFailedError:
    """Execute the streamed way, expecting a failure report."""
    with pytest.raises(PurgeFailedError) as failure:
        Purger(config, workers=1).stream_execute(io.StringIO())
    return failure.value


def assert_untouched(outside: Path) -> None:
    assert (outside / "large").read_bytes() == b"precious" * 10
    assert (outside / "old").read_bytes() == b"precious" * 10
    assert (outside / "empty").is_dir()


@pytest.mark.parametrize("mode", ["plan-then-purge", "streamed"])
def test_policy_root_that_is_a_symlink_is_refused(
    tree: Path, write_policy, outside: Path, mode: str
) -> None:
    scratch = tree / "scratch"
    swap_for_symlink(scratch, outside)

    purger = Purger(write_policy(), workers=1)
    plan = purger.plan()
    assert plan.files == []
    assert plan.errors[str(scratch)] == "is a symlink; refused"
    with pytest.raises(PurgeFailedError) as failure:
        if mode == "streamed":
            purger.stream_execute(io.StringIO())
        else:
            purger.purge()

    assert failure.value.failed_files[str(scratch)] == "is a symlink; refused"
    assert_untouched(outside)


def test_report_of_a_symlinked_root_lists_nothing_outside(
    tree: Path, write_policy, outside: Path
) -> None:
    swap_for_symlink(tree / "scratch", outside)
    out = io.StringIO()

    errors = Purger(write_policy(), workers=1).stream_report(out)

    assert str(outside) not in out.getvalue()
    assert "/large" not in out.getvalue().replace("Directories", "")
    assert errors[str(tree / "scratch")] == "is a symlink; refused"


def test_nested_policy_root_that_is_a_symlink_is_refused(
    tree: Path, write_policy, outside: Path
) -> None:
    bar = tree / "scratch" / "foo" / "bar"
    swap_for_symlink(bar, outside)

    failure = run_both(write_policy())

    assert failure.failed_files[str(bar)] == "is a symlink; refused"
    assert_untouched(outside)


def test_nested_policy_root_below_a_symlink_is_refused(
    tree: Path, write_policy, outside: Path
) -> None:
    # foo (a user-owned directory between two roots) becomes a link: bar is
    # then reached through it, and must not be walked.
    (outside / "bar").mkdir()
    (outside / "bar" / "large").write_bytes(b"x" * 45)
    os.utime(outside / "bar" / "large", (1, 1))
    swap_for_symlink(tree / "scratch" / "foo", outside)

    failure = run_both(write_policy())

    assert failure.failed_files == {f"{tree}/scratch/foo": "is a symlink; not followed"}
    assert (outside / "bar" / "large").exists()
    assert_untouched(outside)


def test_root_swapped_for_a_symlink_between_plan_and_purge(
    tree: Path, write_policy, age, outside: Path
) -> None:
    scratch = tree / "scratch"
    age(scratch / "large", atime=8 * HOUR)
    purger = Purger(write_policy(), workers=1)
    assert [f.path for f in purger.plan().files] == [scratch / "large"]
    swap_for_symlink(scratch, outside)

    with pytest.raises(PurgeFailedError) as failure:
        purger.purge()

    assert_untouched(outside)
    assert failure.value.failed_files == {str(scratch): "is a symlink; not followed"}


def test_directory_swapped_between_check_and_unlink(
    tree: Path, write_policy, age, outside: Path, monkeypatch
) -> None:
    sub = tree / "scratch" / "sub"
    sub.mkdir()
    (sub / "old").write_bytes(b"x" * 50)
    age(sub / "old", atime=8 * HOUR)
    purger = Purger(write_policy(), workers=1)
    assert [f.path for f in purger.plan().files] == [sub / "old"]
    # The swap happens inside the purge, just as it descends into sub.
    swap_before_open(monkeypatch, sub, outside)

    with pytest.raises(PurgeFailedError) as failure:
        purger.purge()

    assert_untouched(outside)
    assert failure.value.failed_files == {str(sub): "is a symlink; not followed"}


@pytest.mark.parametrize("depth", DEPTHS)
def test_directory_swapped_during_the_walk_is_not_listed(
    tree: Path, write_policy, age, outside: Path, monkeypatch, depth: str
) -> None:
    sub = tree / "scratch" / depth / "sub"
    sub.mkdir(parents=True)
    (sub / "old").write_bytes(b"x" * 50)
    age(sub / "old", atime=8 * HOUR)
    # sub is listed as a directory, then swapped just before the walk opens it.
    swap_before_open(monkeypatch, sub, outside)
    out = io.StringIO()

    errors = Purger(write_policy(), workers=1).stream_report(out)

    assert str(outside) not in out.getvalue()
    assert f"{sub}/" not in out.getvalue()
    assert errors == {str(sub): "is a symlink; not followed"}


@pytest.mark.parametrize("depth", DEPTHS)
def test_directory_swapped_during_the_streamed_purge(
    tree: Path, write_policy, age, outside: Path, monkeypatch, depth: str
) -> None:
    sub = tree / "scratch" / depth / "sub"
    sub.mkdir(parents=True)
    (sub / "large").write_bytes(b"x" * 50)
    age(sub / "large", atime=8 * HOUR)
    swap_before_open(monkeypatch, sub, outside)

    failure = run_both(write_policy())

    assert_untouched(outside)
    assert failure.failed_files == {str(sub): "is a symlink; not followed"}


def test_tidy_never_removes_a_directory_through_a_swapped_parent(
    tree: Path, write_policy, outside: Path, monkeypatch
) -> None:
    sub = tree / "scratch" / "sub"
    (sub / "empty").mkdir(parents=True)
    real_rmdir = os.rmdir

    def rmdir(path: Any, *, dir_fd: int | None = None) -> None:
        # Just before sub/empty is removed, sub becomes a link to outside.
        if opened_path(path, dir_fd) == str(sub / "empty") and not sub.is_symlink():
            swap_for_symlink(sub, outside)
        real_rmdir(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "rmdir", rmdir)

    failure = run_both(write_policy())

    # The rmdir went to the directory the walk held open (now sub.moved), not through the link.
    assert failure.failed_files == {str(sub): "Not a directory"}  # the link is left alone
    assert sub.is_symlink()
    assert_untouched(outside)
    assert not (tree / "scratch" / "sub.moved" / "empty").exists()


def test_tidy_rmdir_of_a_name_swapped_for_a_symlink_fails_safely(
    tree: Path, write_policy, outside: Path, monkeypatch
) -> None:
    empty = tree / "scratch" / "empty"
    empty.mkdir()
    real_rmdir = os.rmdir

    def rmdir(path: Any, *, dir_fd: int | None = None) -> None:
        if opened_path(path, dir_fd) == str(empty) and not empty.is_symlink():
            swap_for_symlink(empty, outside / "empty")
        real_rmdir(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "rmdir", rmdir)

    failure = run_both(write_policy())

    assert_untouched(outside)
    assert empty.is_symlink()
    assert "Not a directory" in failure.failed_files[str(empty)]


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("kind", ["other device", "same device, other mount ID"])
def test_other_mounts_are_not_entered(
    tree: Path, write_policy, age, monkeypatch, caplog, depth: str, kind: str
) -> None:
    mount = tree / "scratch" / depth / "mnt"
    mount.mkdir(parents=True)
    (mount / "old").write_bytes(b"x" * 50)
    age(mount / "old", atime=8 * HOUR)
    (mount / "empty").mkdir()
    real_identity = walk.directory_identity

    def identity(fd: int) -> tuple[int, int, int]:
        dev, ino, mount_id = real_identity(fd)
        if os.readlink(f"/proc/self/fd/{fd}") == str(mount):
            return (dev + 1, ino, mount_id + 1) if kind == "other device" else (dev, ino, 99999)
        return dev, ino, mount_id

    monkeypatch.setattr(walk, "directory_identity", identity)
    out = io.StringIO()

    Purger(write_policy(), workers=1).stream_execute(out)  # no failure

    assert (mount / "old").exists()
    assert (mount / "empty").is_dir()
    assert ("WARNING", f"Not entering mount point {mount}") in [
        (r.levelname, r.getMessage()) for r in caplog.records
    ]
    assert out.getvalue().endswith(
        f"Mount points not entered:\n  {mount}\n"
        "Summary: 0 files deleted (0 B), 0 directories removed; 0 failures.\n"
    )


@pytest.mark.parametrize("path", ["/", "//", "/\x00/x", "/tmp/a\x00b"])
def test_dangerous_policy_paths_are_refused(
    tree: Path, write_policy: Callable[..., PurgerConfig], policy, path: str
) -> None:
    policy["directories"][0]["path"] = path
    config = write_policy(policy)

    with pytest.raises(PurgerConfigError, match=r"directories\[0\]\.path: must not"):
        Purger(config).plan()


def test_empty_environment_values_count_as_unset() -> None:
    config = PurgerConfig.from_values({"dryRun": True}, {"DEBUG": "", "NUBLADO_DRY_RUN": ""})

    assert (config.debug, config.dry_run) == (False, True)
