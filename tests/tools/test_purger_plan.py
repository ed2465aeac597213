"""Purger planning and purging on real files (spec/images-tools.md 5.3-5.7)."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nublado.purger.config import FileClass, PurgerConfig
from nublado.purger.purger import (
    PlanNotReadyError,
    PurgeFailedError,
    Purger,
    format_report,
)

HOUR = 3600
WEEK = 7 * 24 * HOUR


def opened_path(target: Any, dir_fd: int | None) -> str:
    """The full path an ``os.open`` call names (the purger opens relative to ``dir_fd``)."""
    if dir_fd is None:
        return str(target)
    return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), str(target))


@pytest.fixture(params=["plan-then-purge", "streamed"])
def execute(request: pytest.FixtureRequest) -> Callable[[PurgerConfig], None]:
    """Both ways to execute: the upstream-style API and the CLI's streamed run."""

    def run(config: PurgerConfig) -> None:
        if request.param == "streamed":
            Purger(config, workers=2).stream_execute(io.StringIO())
        else:
            Purger(config).execute()

    return run


def planned(config: PurgerConfig, **kwargs: Any) -> list[str]:
    plan = Purger(config, **kwargs).plan()
    return sorted(str(f.path) for f in plan.files)


def test_nothing_aged_plans_nothing(tree: Path, write_policy: Callable[..., PurgerConfig]) -> None:
    assert planned(write_policy()) == []


def test_large_file_past_access_interval(tree: Path, write_policy, age) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)

    plan = Purger(write_policy()).plan()

    assert [f.path for f in plan.files] == [tree / "scratch" / "large"]
    record = plan.files[0]
    assert (record.file_class, record.file_reason) == (FileClass.LARGE, "ATIME")
    assert record.criterion_interval == timedelta(hours=1)
    assert timedelta(hours=8) <= record.file_interval < timedelta(hours=8, seconds=30)
    assert str(record).startswith(f"{tree}/scratch/large: ATIME 288")
    assert str(record).endswith("s >= 3600s")


def test_large_file_past_modification_interval(tree: Path, write_policy, age) -> None:
    age(tree / "scratch" / "large", mtime=8 * HOUR)

    plan = Purger(write_policy()).plan()

    assert [(str(f.path), f.file_reason) for f in plan.files] == [
        (f"{tree}/scratch/large", "MTIME")
    ]


def test_creation_time_is_ctime(tree: Path, write_policy, policy) -> None:
    policy["directories"][0]["intervals"]["small"]["creation_interval"] = "1s"
    # ctime cannot be set; plan two seconds in the future instead of waiting.
    now = datetime.now(tz=UTC) + timedelta(seconds=2)

    plan = Purger(write_policy(policy), now=now).plan()

    assert [(str(f.path), f.file_reason) for f in plan.files] == [
        (f"{tree}/scratch/small", "CTIME")
    ]


def test_small_files_follow_small_intervals(tree: Path, write_policy, age) -> None:
    age(tree / "scratch" / "small", atime=3 * HOUR)
    age(tree / "scratch" / "large", atime=3 * HOUR)

    assert planned(write_policy()) == [f"{tree}/scratch/large"]


def test_no_small_intervals_never_matches_small_files(
    tree: Path, write_policy, policy, age
) -> None:
    del policy["directories"][0]["intervals"]["small"]
    age(tree / "scratch" / "small", atime=1000 * WEEK, mtime=1000 * WEEK)

    assert planned(write_policy(policy)) == []


def test_zero_interval_disables_criterion(tree: Path, write_policy, policy, age) -> None:
    policy["directories"][0]["intervals"]["large"]["access_interval"] = 0
    age(tree / "scratch" / "large", atime=1000 * WEEK)

    assert planned(write_policy(policy)) == []


def test_nested_policy_owns_its_subtree(tree: Path, write_policy, age) -> None:
    # 3 s is bar's large access interval; scratch's own (1 h) would not match.
    age(tree / "scratch" / "foo" / "bar" / "large", atime=10)
    age(tree / "scratch" / "foo" / "bar" / "medium", atime=10)

    plan = Purger(write_policy()).plan()

    # medium is 13 B: LARGE under scratch (10 B) but SMALL under bar (20 B).
    assert [str(f.path) for f in plan.files] == [f"{tree}/scratch/foo/bar/large"]
    assert plan.files[0].path.parent.name == "bar"
    assert plan.directories == [tree / "scratch", tree / "scratch" / "foo" / "bar"]


def test_future_duration_plans_ahead(tree: Path, write_policy) -> None:
    config = write_policy(futureDuration="3650d")

    assert planned(config) == [
        f"{tree}/scratch/foo/bar/large",
        f"{tree}/scratch/large",
        f"{tree}/scratch/medium",
        f"{tree}/scratch/small",
    ]


@pytest.mark.parametrize(("size", "file_class"), [(9, "SMALL"), (10, "LARGE"), (11, "LARGE")])
def test_size_threshold_is_inclusive(
    tree: Path, write_policy, policy, size: int, file_class: str
) -> None:
    policy["directories"][0]["intervals"] = {
        "large": {"access_interval": "1h"},
        "small": {"access_interval": "1h"},
    }
    target = tree / "scratch" / "sized"
    target.write_bytes(b"x" * size)
    os.utime(target, (time.time() - 2 * HOUR, time.time()))

    plan = Purger(write_policy(policy)).plan()

    assert [(f.path.name, f.file_class.value) for f in plan.files] == [("sized", file_class)]


@pytest.mark.parametrize(
    ("field", "reason"),
    [("access_interval", "ATIME"), ("modification_interval", "MTIME")],
)
@pytest.mark.parametrize(("offset_ns", "matches"), [(0, False), (1, True), (-1, False)])
def test_time_comparison_is_strict_to_the_nanosecond(
    tree: Path, write_policy, policy, field: str, reason: str, offset_ns: int, matches: bool
) -> None:
    del policy["directories"][1]
    policy["directories"][0]["intervals"] = {"large": {field: "1h"}, "small": {field: "1h"}}
    when = datetime.now(tz=UTC).replace(microsecond=0) + timedelta(seconds=5)
    when_ns = int(when.timestamp()) * 10**9
    stamp = when_ns - HOUR * 10**9 - offset_ns  # offset 1: one ns older than the limit
    target = tree / "scratch" / "large"
    recent = time.time_ns()
    times = (stamp, recent) if reason == "ATIME" else (recent, stamp)
    os.utime(target, ns=times)

    plan = Purger(write_policy(policy), now=when).plan()

    assert [(f.path.name, f.file_reason) for f in plan.files] == (
        [("large", reason)] if matches else []
    )


def test_first_matching_criterion_wins(tree: Path, write_policy, age) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR, mtime=8 * HOUR)

    plan = Purger(write_policy()).plan()

    assert [f.file_reason for f in plan.files] == ["ATIME"]


def test_symlinks_are_never_followed_or_planned(
    tree: Path, tmp_path_factory, write_policy, age, execute
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "victim").write_bytes(b"x" * 100)
    (outside / "dir").mkdir()
    (outside / "dir" / "deep").write_bytes(b"x" * 100)
    age(outside / "victim", atime=1000 * WEEK)
    age(outside / "dir" / "deep", atime=1000 * WEEK)
    age(tree / "scratch" / "large", atime=1000 * WEEK)
    scratch = tree / "scratch"
    (scratch / "to-outside-file").symlink_to(outside / "victim")
    (scratch / "to-outside-dir").symlink_to(outside / "dir")
    (scratch / "to-inside-file").symlink_to(scratch / "large")
    (scratch / "to-inside-dir").symlink_to(scratch / "foo")
    (scratch / "dangling").symlink_to(tree / "nowhere")
    os.utime(scratch / "to-outside-file", (0, 0), follow_symlinks=False)

    config = write_policy()
    assert planned(config) == [f"{scratch}/large"]

    execute(config)

    assert (outside / "victim").exists()
    assert (outside / "dir" / "deep").exists()
    assert (scratch / "to-outside-file").is_symlink()
    assert (scratch / "to-inside-dir").is_symlink()
    assert not (scratch / "large").exists()


def test_execute_removes_only_planned_files(tree: Path, write_policy, age, execute) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)

    execute(write_policy())

    remaining = sorted(str(p.relative_to(tree)) for p in (tree / "scratch").rglob("*"))
    assert remaining == [
        "scratch/foo",
        "scratch/foo/bar",
        "scratch/foo/bar/large",
        "scratch/foo/bar/medium",
        "scratch/foo/bar/small",
        "scratch/medium",
        "scratch/small",
    ]


def test_dry_run_leaves_everything_in_place(tree: Path, write_policy, age, caplog, execute) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)
    (tree / "scratch" / "empty").mkdir()
    before = sorted((tree / "scratch").rglob("*"))

    execute(write_policy(dryRun=True))

    assert sorted((tree / "scratch").rglob("*")) == before
    assert "Cannot purge because dry_run enabled" in caplog.text


def test_future_duration_never_deletes(tree: Path, write_policy, caplog, execute) -> None:
    before = sorted((tree / "scratch").rglob("*"))

    execute(write_policy(futureDuration="3650d"))

    assert sorted((tree / "scratch").rglob("*")) == before
    assert "Cannot purge because future_duration is set" in caplog.text


def test_purge_empties_nested_policy_but_keeps_roots(
    tree: Path, write_policy, policy, age, execute
) -> None:
    policy["directories"][1]["intervals"]["small"] = {"modification_interval": "1s"}
    policy["directories"][1]["intervals"]["large"] = {"modification_interval": "1s"}
    bar = tree / "scratch" / "foo" / "bar"
    for name in ("small", "medium", "large"):
        age(bar / name, mtime=1000 * WEEK)

    execute(write_policy(policy))

    assert bar.is_dir()
    assert list(bar.iterdir()) == []
    assert (tree / "scratch" / "foo").is_dir()


def test_tidy_removes_emptied_and_nested_empty_directories(
    tree: Path, write_policy, policy, age, execute
) -> None:
    policy["directories"][1]["intervals"]["small"] = {"access_interval": "1s"}
    bar = tree / "scratch" / "foo" / "bar"
    (bar / "delete_me").mkdir()
    (bar / "delete_me" / "sacrifice").write_bytes(b"x")
    age(bar / "delete_me" / "sacrifice", atime=1000 * WEEK)
    deep = tree / "scratch" / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    hidden = tree / "scratch" / "keep"
    hidden.mkdir()
    (hidden / ".hidden").write_bytes(b"")

    execute(write_policy(policy))

    assert not (bar / "delete_me").exists()
    assert bar.is_dir()
    # Deepest first: a whole chain of empty directories goes in one run.
    assert not (tree / "scratch" / "a").exists()
    assert hidden.is_dir()


def test_a_file_renamed_over_between_plan_and_purge_survives(
    tree: Path, write_policy, age, caplog
) -> None:
    caplog.set_level(logging.INFO)
    large = tree / "scratch" / "large"
    age(large, atime=8 * HOUR)
    purger = Purger(write_policy())
    assert [f.path for f in purger.plan().files] == [large]
    # The user saves new work over it after the plan (as the daemon logs its report).
    fresh = tree / "scratch" / "fresh"
    fresh.write_bytes(b"new work" * 10)
    fresh.rename(large)

    assert purger.purge() == 0

    assert large.read_bytes() == b"new work" * 10
    assert f"Not purged, changed since the plan: {large}" in caplog.text


def test_purge_deletes_planned_files_that_still_match(tree: Path, write_policy, age) -> None:
    large = tree / "scratch" / "large"
    age(large, atime=8 * HOUR)
    purger = Purger(write_policy())
    purger.plan()

    assert purger.purge() == 1
    assert not large.exists()


def test_report_before_plan_fails(write_policy) -> None:
    purger = Purger(write_policy())
    with pytest.raises(PlanNotReadyError, match="Cannot report: plan not ready"):
        purger.report()
    with pytest.raises(PlanNotReadyError, match="Cannot purge: plan not ready"):
        purger.purge()


def test_report_text(tree: Path, write_policy, age) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)
    purger = Purger(write_policy())
    purger.plan()

    assert purger.report() == (
        f"Directories considered:\n  {tree}/scratch\n  {tree}/scratch/foo/bar\n"
        f"  -> {tree}/scratch/large\n"
    )
    assert (
        format_report([tree], [])
        == f"Directories considered:\n  {tree}\nNo matching files found.\n"
    )
    assert format_report([], []) == "No directories considered."


def test_stream_report_matches_stored_report(tree: Path, write_policy, age) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)
    config = write_policy()
    purger = Purger(config)
    purger.plan()

    class Out:
        text = ""

        def write(self, value: str) -> None:
            self.text += value

        def flush(self) -> None:
            pass

    out = Out()
    errors = Purger(config).stream_report(out)  # type: ignore[arg-type]

    assert errors == {}
    assert out.text == purger.report()


def test_parallel_walk_finds_the_same_files(tree: Path, write_policy, age) -> None:
    scratch = tree / "scratch"
    for top in range(5):
        for sub in range(4):
            directory = scratch / f"u{top}" / f"d{sub}"
            directory.mkdir(parents=True)
            for index in range(3):
                path = directory / f"f{index}"
                path.write_bytes(b"x" * 50)
                if index == 1:
                    age(path, atime=8 * HOUR)
    config = write_policy()

    serial = planned(config, workers=1)
    parallel = planned(config, workers=2)

    assert len(serial) == 20
    assert parallel == serial


# -- failures: reported, never a crash ------------------------------------------


class _Entry:
    """A DirEntry stand-in whose stat() can fail like a real one would."""

    def __init__(self, entry: os.DirEntry[str], failure: Callable[[], None] | None) -> None:
        self._entry = entry
        self._failure = failure
        self.name = entry.name
        self.path = entry.path

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_file(follow_symlinks=follow_symlinks)

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if self._failure is not None:
            self._failure()
        return self._entry.stat(follow_symlinks=follow_symlinks)


class _Listing:
    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = entries

    def __enter__(self) -> Iterator[_Entry]:
        return iter(self._entries)

    def __exit__(self, *args: object) -> None:
        pass


def _patch_scandir(
    monkeypatch: pytest.MonkeyPatch,
    *,
    failing_dirs: dict[str, OSError] | None = None,
    failing_files: dict[str, Callable[[], None]] | None = None,
) -> None:
    """Make opening some directories, or stat() of some files, fail."""
    real_open, real_scandir, real_stat = os.open, os.scandir, os.stat
    failing_dirs = failing_dirs or {}
    failing_files = failing_files or {}

    def stat_(path: Any, *args: Any, dir_fd: int | None = None, **kwargs: Any) -> os.stat_result:
        failure = failing_files.get(opened_path(path, dir_fd))
        if failure is not None:
            failure()
        return real_stat(path, *args, dir_fd=dir_fd, **kwargs)

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if opened_path(path, kwargs.get("dir_fd")) in failing_dirs:
            raise failing_dirs[opened_path(path, kwargs.get("dir_fd"))]
        return real_open(path, flags, *args, **kwargs)

    def scandir(path: Any = ".") -> Any:
        # The walk lists directories through a descriptor; find its path for the lookup.
        directory = os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int) else str(path)
        with real_scandir(path) as entries:
            listed = [
                _Entry(e, failing_files.get(os.path.join(directory, e.name))) for e in entries
            ]
        return _Listing(listed)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat_)


def test_unreadable_file_is_reported_and_the_walk_goes_on(
    tree: Path, write_policy, age, monkeypatch
) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)
    unreadable = str(tree / "scratch" / "medium")

    def refuse() -> None:
        raise PermissionError(13, "Permission denied", unreadable)

    _patch_scandir(monkeypatch, failing_files={unreadable: refuse})
    purger = Purger(write_policy())

    plan = purger.plan()

    assert [str(f.path) for f in plan.files] == [f"{tree}/scratch/large"]
    assert plan.errors == {unreadable: "Permission denied"}
    with pytest.raises(PurgeFailedError) as failure:
        purger.purge()
    assert failure.value.failed_files == {unreadable: "Permission denied"}
    assert not (tree / "scratch" / "large").exists()  # the rest of the run happened


def test_unreadable_directory_is_reported(tree: Path, write_policy, age, monkeypatch) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)
    foo = str(tree / "scratch" / "foo")
    _patch_scandir(monkeypatch, failing_dirs={foo: PermissionError(13, "Permission denied", foo)})

    plan = Purger(write_policy()).plan()

    assert [str(f.path) for f in plan.files] == [f"{tree}/scratch/large"]
    # The nested root is reached from the outer root through foo: it fails there too,
    # and the failure is named once, by the directory that failed.
    assert plan.errors == {foo: "Permission denied"}


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root ignores permission bits; the monkeypatched test covers this"
)
def test_really_unreadable_directory_is_reported(tree: Path, write_policy) -> None:
    locked = tree / "scratch" / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        plan = Purger(write_policy()).plan()
    finally:
        locked.chmod(0o700)

    assert str(locked) in plan.errors


def test_file_deleted_during_walk_is_reported(tree: Path, write_policy, monkeypatch) -> None:
    doomed = tree / "scratch" / "small"

    def vanish() -> None:
        doomed.unlink()

    _patch_scandir(monkeypatch, failing_files={str(doomed): vanish})

    plan = Purger(write_policy()).plan()

    assert list(plan.errors) == [str(doomed)]
    assert "vanished" in plan.errors[str(doomed)]


def test_file_deleted_before_purge_is_reported(tree: Path, write_policy, age) -> None:
    age(tree / "scratch" / "large", atime=8 * HOUR)
    age(tree / "scratch" / "foo" / "bar" / "large", atime=8 * HOUR)
    purger = Purger(write_policy())
    purger.plan()
    (tree / "scratch" / "large").unlink()

    with pytest.raises(PurgeFailedError) as failure:
        purger.purge()

    assert list(failure.value.failed_files) == [f"{tree}/scratch/large"]
    assert not (tree / "scratch" / "foo" / "bar" / "large").exists()


def test_purge_never_follows_a_nested_root_swapped_for_a_symlink(
    tree: Path, tmp_path_factory, write_policy, age
) -> None:
    bar = tree / "scratch" / "foo" / "bar"
    age(bar / "large", atime=8 * HOUR)
    purger = Purger(write_policy())
    assert [f.path for f in purger.plan().files] == [bar / "large"]
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "large").write_bytes(b"precious")
    # Between plan and purge, foo is replaced by a link to somewhere else.
    (tree / "scratch" / "foo").rename(tree / "scratch" / "foo.moved")
    (tree / "scratch" / "foo").mkdir()
    (tree / "scratch" / "foo" / "bar").symlink_to(outside)

    with pytest.raises(PurgeFailedError) as failure:
        purger.purge()

    assert (outside / "large").read_bytes() == b"precious"
    assert failure.value.failed_files == {str(bar): "is a symlink; not followed"}


def test_policy_paths_are_normalised(tree: Path, write_policy, policy, age) -> None:
    policy["directories"][0]["path"] = "{root}/scratch/"
    age(tree / "scratch" / "large", atime=8 * HOUR)

    assert planned(write_policy(policy)) == [f"{tree}/scratch/large"]


def test_purge_never_follows_a_subdirectory_swapped_for_a_symlink(
    tree: Path, tmp_path_factory, write_policy, age
) -> None:
    sub = tree / "scratch" / "sub"
    sub.mkdir()
    (sub / "old").write_bytes(b"x" * 50)
    age(sub / "old", atime=8 * HOUR)
    purger = Purger(write_policy())
    assert [f.path for f in purger.plan().files] == [sub / "old"]
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "old").write_bytes(b"precious")
    sub.rename(tree / "scratch" / "sub.moved")
    sub.symlink_to(outside)

    with pytest.raises(PurgeFailedError) as failure:
        purger.purge()

    assert (outside / "old").read_bytes() == b"precious"
    assert list(failure.value.failed_files) == [str(sub / "old")]
    assert sub.is_symlink()


def test_progress_counter_draws_one_line() -> None:
    from io import StringIO

    from nublado.purger.walk import ScanBatch, _Progress

    stream = StringIO()
    meter = _Progress(stream, delay=0, every=0)
    meter.add(ScanBatch(root=0, matches=[("/x", True, 0, 0)], files=1200))
    meter.add(ScanBatch(root=0, files=800))
    meter.close()

    assert stream.getvalue() == (
        "\rpurger: 1,200 files checked, 1 to purge\rpurger: 2,000 files checked, 1 to purge\n"
    )


def test_path_listed_twice_is_walked_once(tree: Path, write_policy, policy, age) -> None:
    policy["directories"].append(dict(policy["directories"][0]))
    age(tree / "scratch" / "large", atime=8 * HOUR)

    assert planned(write_policy(policy)) == [f"{tree}/scratch/large"]


def test_missing_policy_root_is_a_warning(tree: Path, write_policy, policy, caplog) -> None:
    policy["directories"][1]["path"] = "{root}/nowhere"

    plan = Purger(write_policy(policy)).plan()

    assert plan.errors == {}
    assert ("WARNING", f"Policy root {tree}/nowhere does not exist; skipped") in [
        (r.levelname, r.getMessage()) for r in caplog.records
    ]


def test_plan_time_is_exact_to_the_microsecond(tree: Path, write_policy, age) -> None:
    # Planning at an explicit instant: cut-offs come from timedelta arithmetic, exactly.
    large = tree / "scratch" / "large"
    stamp_ns = 1_700_000_000_123_456_000
    os.utime(large, ns=(stamp_ns, stamp_ns))
    at_cutoff = datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC) + timedelta(hours=1)

    assert Purger(write_policy(), now=at_cutoff).plan().files == []
    later = Purger(write_policy(), now=at_cutoff + timedelta(microseconds=1)).plan()
    assert [f.path for f in later.files] == [large]
    assert later.files[0].file_interval == timedelta(hours=1, microseconds=1)


def test_a_misspelt_policy_key_is_logged_once_by_a_long_running_purger(
    tree: Path, write_policy, policy, caplog, monkeypatch
) -> None:
    """As the daemon's purge job reads the policy on every run."""
    monkeypatch.setattr("nublado.purger.config._warned", set())
    policy["directories"][0]["intervals"]["small"] = {"acces_interval": "1s"}
    config = write_policy(policy)

    Purger(config).plan()
    Purger(config).plan()

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"{tree}/policy.yaml: directories[0].intervals.small.acces_interval: unknown policy"
        " key, ignored (did you mean access_interval?)"
    ]
