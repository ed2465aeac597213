"""Trees any user can build under scratch: wide, deep, mounted over, reached through links.

The descriptor-bound tests run the purger in a child process whose
RLIMIT_NOFILE is lowered, so exhausting descriptors shows in a second rather
than after 100,000 directories. Mounts are real where this machine lets an
unprivileged mount namespace be made (``unshare -rm``), and otherwise checked
on a fabricated /proc/self/mountinfo.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nublado.purger import purger as purger_module
from nublado.purger import walk
from nublado.purger.config import PurgerConfig
from nublado.purger.purger import Purger

HOUR = 3600
OLD = 1_000_000_000  # 2001: older than every interval of the test policies

POLICY = {
    "directories": [
        {
            "path": "{root}",
            "threshold": "10B",
            "intervals": {"large": {"access_interval": "1h"}, "small": {"access_interval": "1h"}},
        }
    ]
}


def write_config(tmp_path: Path, root: Path, policy: Any = POLICY) -> Path:
    """A policy over ``root`` and a configuration naming it; returns the configuration."""
    text = yaml.safe_dump(policy).replace("{root}", str(root))
    (tmp_path / "policy.yaml").write_text(text)
    config = tmp_path / "config.yaml"
    config.write_text(f"policyFile: {tmp_path / 'policy.yaml'}\nlogProfile: development\n")
    return config


def run_limited(config: Path, command: str, *, nofile: int) -> subprocess.CompletedProcess[str]:
    """``nublado purger COMMAND`` in a child process allowed ``nofile`` descriptors."""
    code = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}))
        from nublado.cli import main
        sys.exit(main(["purger", {command!r}, "-c", {str(config)!r}, "--workers", "2"]))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )


def old_file(directory_fd: int, name: str) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=directory_fd)
    os.write(fd, b"x" * 20)
    os.utime(fd, (OLD, OLD))
    os.close(fd)


def build_chain(top: Path, depth: int, old_every: int) -> list[int]:
    """``top/d/d/.../d`` ``depth`` levels deep (deeper than PATH_MAX allows by name),
    with an old file every ``old_every`` levels; returns the levels holding one."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    levels = []
    for level in range(1, depth + 1):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
        if level % old_every == 0:
            old_file(fd, "old")
            levels.append(level)
    os.close(fd)
    return levels


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """The policy root; removed afterwards with ``rm -rf``, since a chain left
    behind would make pytest's own clean-up (shutil.rmtree) recurse too deep."""
    root = tmp_path / "scratch"
    root.mkdir()
    yield root
    subprocess.run(["rm", "-rf", "--", str(tmp_path)], check=False)


# -- wide ---------------------------------------------------------------------------------


def test_wide_directory_needs_few_descriptors(tmp_path: Path, scratch: Path) -> None:
    wide = scratch / "wide"
    wide.mkdir()
    fd = os.open(wide, os.O_RDONLY | os.O_DIRECTORY)
    for index in range(3000):
        os.mkdir(f"e{index:05d}", dir_fd=fd)
    os.mkdir("keep", dir_fd=fd)
    old_file(fd, "old")
    keep = os.open("keep", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    old_file(keep, "old")
    os.close(keep)
    config = write_config(tmp_path, scratch)

    report = run_limited(config, "report", nofile=64)
    assert (report.returncode, report.stderr.count("failed")) == (0, 0), report.stderr
    assert report.stdout.splitlines()[-2:] == [f"  -> {wide}/keep/old", f"  -> {wide}/old"]

    result = run_limited(config, "execute", nofile=64)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "Summary: 2 files deleted (40 B), 3,002 directories removed; 0 failures."
    )
    assert os.listdir(scratch) == []


# -- deep ---------------------------------------------------------------------------------


def test_deep_chain_is_walked_with_bounded_descriptors(tmp_path: Path, scratch: Path) -> None:
    levels = build_chain(scratch, 10_000, 1_000)
    config = write_config(tmp_path, scratch)

    report = run_limited(config, "report", nofile=64)

    assert report.returncode == 0, report.stderr[-2000:]
    lines = [line for line in report.stdout.splitlines() if line.startswith("  -> ")]
    # Sorted by path: "d/d/.../old" sorts before "d/old".
    assert lines == sorted(f"  -> {scratch}/" + "d/" * level + "old" for level in levels)
    assert len(lines) == 10

    result = run_limited(config, "execute", nofile=64)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == (
        "Summary: 10 files deleted (200 B), 10,000 directories removed; 0 failures."
    )
    assert os.listdir(scratch) == []


@pytest.mark.parametrize("mode", ["report", "execute"])
def test_deep_chain_costs_linear_opens(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    depth = 3000
    build_chain(scratch, depth, 500)
    config = PurgerConfig.load(write_config(tmp_path, scratch), environ={})
    opened: list[int] = []
    most = [0]
    real_open, real_close = os.open, os.close
    live = [0]

    def open_(*args: Any, **kwargs: Any) -> int:
        fd = real_open(*args, **kwargs)
        opened.append(fd)
        live[0] += 1
        most[0] = max(most[0], live[0])
        return fd

    def close(fd: int) -> None:
        live[0] -= 1
        real_close(fd)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "close", close)
    purger = Purger(config, workers=1)

    summary = purger.run_report(io.StringIO()) if mode == "report" else purger.run(io.StringIO())
    monkeypatch.undo()

    assert summary.failures == {}
    assert summary.files_matched == 6
    # Down once and up once through "..": about two opens per level, never per level squared.
    assert len(opened) <= 2 * depth + 20
    assert most[0] <= walk.MAX_OPEN + 4
    if mode == "execute":
        assert os.listdir(scratch) == []


def test_a_directory_moved_while_deep_below_it_is_reopened_from_above(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a/d/d/.../d (200 deep), then a/z/old: walking back up from the chain, the
    # ".." of a/d no longer leads to a (a/d was moved away meanwhile), so a is
    # re-opened by walking down from scratch, and a/z is still walked.
    (scratch / "a").mkdir()
    build_chain(scratch / "a", 200, 1000)
    (scratch / "a" / "z").mkdir()
    (scratch / "a" / "z" / "old").write_bytes(b"x" * 20)
    os.utime(scratch / "a" / "z" / "old", (OLD, OLD))
    config = PurgerConfig.load(write_config(tmp_path, scratch), environ={})
    real_open = os.open
    moved: list[bool] = []

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if path == ".." and not moved:
            moved.append(True)
            os.rename(scratch / "a" / "d", tmp_path / "elsewhere")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(walk, "MAX_OPEN", 8)
    monkeypatch.setattr(os, "open", open_)
    out = io.StringIO()

    summary = Purger(config, workers=1).run_report(out)

    assert moved
    assert summary.failures == {}
    assert out.getvalue().splitlines()[-1] == f"  -> {scratch}/a/z/old"


# -- mounts -------------------------------------------------------------------------------


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare -rm (a mount namespace)")
def test_real_mounts_are_never_entered(tmp_path: Path, scratch: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"x" * 20)
    os.utime(outside / "precious", (OLD, OLD))
    (scratch / "user" / "bind").mkdir(parents=True)
    (scratch / "user" / "tmpfs").mkdir()
    (scratch / "user" / "old").write_bytes(b"x" * 20)
    os.utime(scratch / "user" / "old", (OLD, OLD))
    config = write_config(tmp_path, scratch)
    user = scratch / "user"
    script = (
        f"mount --bind {outside} {user}/bind && mount -t tmpfs none {user}/tmpfs"
        f" && printf xxxxxxxxxxxx > {user}/tmpfs/old && touch -d 2001-01-01 {user}/tmpfs/old"
        f" && {sys.executable} -c 'from nublado.cli import main; main()'"
        f" purger execute -c {config} --workers 1; echo status=$?;"
        f" ls {user}/tmpfs"
    )

    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, check=False
    )

    assert "status=0" in result.stdout, result.stderr
    assert (outside / "precious").exists()  # the bind mount's files are outside the root
    assert result.stdout.rstrip().endswith("old")  # the tmpfs's file is still there
    assert not (user / "old").exists()
    assert (
        f"Mount points not entered:\n  {user}/bind\n  {user}/tmpfs\n"
        "Summary: 1 file deleted (20 B), 0 directories removed; 0 failures.\n"
    ) in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert warnings == [
        f"WARNING [rsp_scratchpurger] Not entering mount point {user}/bind",
        f"WARNING [rsp_scratchpurger] Not entering mount point {user}/tmpfs",
    ]


def test_a_file_mounted_into_a_root_is_skipped_and_reported(tmp_path: Path, scratch: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"x" * 20)
    os.utime(outside / "precious", (OLD, OLD))
    (scratch / "mounted").write_bytes(b"")
    os.utime(scratch / "mounted", (OLD, OLD))
    config = write_config(tmp_path, scratch)
    script = (
        f"mount --bind {outside}/precious {scratch}/mounted"
        f" && {sys.executable} -c 'from nublado.cli import main; main()'"
        f" purger execute -c {config} --workers 1; echo status=$?"
    )

    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, check=False
    )
    if "mount:" in result.stderr or "unshare:" in result.stderr:
        pytest.skip(f"no mount namespace here: {result.stderr.strip()}")

    assert "status=0" in result.stdout, result.stderr
    assert (outside / "precious").exists()
    assert (
        f"No matching files found.\nMount points not entered:\n  {scratch}/mounted\n"
        "Summary: 0 files deleted (0 B), 0 directories removed; 0 failures.\n"
    ) in result.stdout


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
66 27 254:0 /data/x {root}/user/bind rw,relatime - ext4 /dev/vda rw
67 27 254:0 /data/y {root}/with\\040space rw,relatime - ext4 /dev/vda rw
"""


def test_mountinfo_is_parsed_with_escapes(scratch: Path) -> None:
    points = walk.parse_mountinfo(MOUNTINFO.replace("{root}", str(scratch)))

    assert points == {"/proc", "/", f"{scratch}/user/bind", f"{scratch}/with space"}


@pytest.mark.parametrize(
    ("child", "root", "path", "crosses"),
    [
        ((1, 5, 30), (1, 2, 30), "/s/a", False),  # same mount ID
        ((1, 5, 31), (1, 2, 30), "/s/a", True),  # a bind mount: same device, other mount
        ((2, 5, 31), (1, 2, 30), "/s/a", True),
        ((1, 5, -1), (1, 2, -1), "/s/a", False),  # no mount IDs: device and mountinfo
        ((2, 5, -1), (1, 2, -1), "/s/a", True),
        ((1, 5, -1), (1, 2, -1), "/s/bind", True),
    ],
)
def test_mount_decision(
    child: tuple[int, int, int], root: tuple[int, int, int], path: str, crosses: bool
) -> None:
    assert walk._crosses_mount(child, root, path, frozenset({"/s/bind"})) is crosses


def test_without_mount_ids_a_bind_mount_in_mountinfo_is_not_entered(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a kernel without statx: device numbers, plus the mount points read at start.
    for name in ("user/bind", "with space", "user/plain"):
        (scratch / name).mkdir(parents=True)
        (scratch / name / "old").write_bytes(b"x" * 20)
        os.utime(scratch / name / "old", (OLD, OLD))
    text = MOUNTINFO.replace("{root}", str(scratch))
    monkeypatch.setattr(walk, "_identity", walk._fstat_identity)
    monkeypatch.setattr(purger_module, "read_mount_points", lambda: walk.parse_mountinfo(text))
    config = PurgerConfig.load(write_config(tmp_path, scratch), environ={})

    summary = Purger(config, workers=1).run(io.StringIO())

    assert summary.mount_points == [f"{scratch}/user/bind", f"{scratch}/with space"]
    assert (scratch / "user" / "bind" / "old").exists()
    assert (scratch / "with space" / "old").exists()
    assert not (scratch / "user" / "plain").exists()


# -- roots reached through links -------------------------------------------------------------


def test_root_with_a_symlinked_ancestor_works(
    tmp_path: Path, write_policy: Callable[..., PurgerConfig], age: Callable[..., None]
) -> None:
    # /tmp/x/data/scratch is the real tree; the outer root is named through the
    # link /tmp/x/link -> data, the nested one by its real path.
    real = tmp_path / "data" / "scratch"
    (real / "foo" / "bar").mkdir(parents=True)
    for directory in (real, real / "foo" / "bar"):
        (directory / "medium").write_bytes(b"Hello, world!")
        age(directory / "medium", atime=8 * HOUR)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    policy = {
        "directories": [
            {
                "path": str(tmp_path / "link" / "scratch"),
                "threshold": "10B",
                "intervals": {"large": {"access_interval": "1h"}},
            },
            {
                "path": str(real / "foo" / "bar"),
                "threshold": "20B",
                "intervals": {"large": {"access_interval": "1h"}},
            },
        ]
    }
    out = io.StringIO()

    summary = Purger(write_policy(policy), workers=1).run(out)

    # medium is large under the outer policy (10B) but small under bar's (20B, no
    # small intervals): bar's copy belongs to bar's policy and stays.
    assert summary.failures == {}
    assert [line for line in out.getvalue().splitlines() if "->" in line] == [f"  -> {real}/medium"]
    assert not (real / "medium").exists()
    assert (real / "foo" / "bar" / "medium").exists()


def test_the_report_names_the_resolved_root(
    tmp_path: Path, write_policy: Callable[..., PurgerConfig]
) -> None:
    (tmp_path / "data" / "scratch").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    policy = {
        "directories": [
            {"path": str(tmp_path / "link" / "scratch"), "threshold": "1B", "intervals": {}},
            {"path": str(tmp_path / "missing"), "threshold": "1B", "intervals": {}},
        ]
    }
    out = io.StringIO()

    Purger(write_policy(policy), workers=1).run_report(out)

    assert out.getvalue().startswith(
        f"Directories considered:\n  {tmp_path}/data/scratch\nNo matching files found.\n"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a link to another user needs root")
def test_a_symlinked_ancestor_a_user_owns_is_refused(
    tmp_path: Path, write_policy: Callable[..., PurgerConfig], age: Callable[..., None]
) -> None:
    (tmp_path / "data" / "scratch").mkdir(parents=True)
    (tmp_path / "data" / "scratch" / "old").write_bytes(b"x" * 20)
    age(tmp_path / "data" / "scratch" / "old", atime=8 * HOUR)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    os.lchown(tmp_path / "link", 4242, 4242)
    policy = {
        "directories": [
            {
                "path": str(tmp_path / "link" / "scratch"),
                "threshold": "1B",
                "intervals": {"large": {"access_interval": "1h"}},
            }
        ]
    }

    summary = Purger(write_policy(policy), workers=1).run(io.StringIO())

    assert summary.failures == {
        str(tmp_path / "link"): "is a symlink owned by uid 4242, not root; refused (its owner"
        " could point it anywhere)"
    }
    assert (tmp_path / "data" / "scratch" / "old").exists()


def test_summary_as_json_for_a_scheduler(tmp_path: Path, scratch: Path) -> None:
    (scratch / "old").write_bytes(b"x" * 20)
    os.utime(scratch / "old", (OLD, OLD))
    write_config(tmp_path, scratch)

    summary = purger_module.purge_policy(tmp_path / "policy.yaml")

    assert json.loads(json.dumps(summary.__dict__)) == {
        "purged": True,
        "files_checked": 1,
        "files_matched": 1,
        "files_deleted": 1,
        "bytes_deleted": 20,
        "directories_removed": 0,
        "mount_points": [],
        "missing_roots": [],
        "failures": {},
        "output_error": None,
    }
