"""``nublado inithome``: create or check a home directory (spec/images-tools.md 6.1)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from nublado.cli import main
from nublado.inithome.provisioner import InvalidHomeError, InvalidIdError, Provisioner

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="changing a file's owner needs root")
UID, GID = (4242, 4343) if IS_ROOT else (os.getuid(), os.getgid())


def run(*args: str) -> int:
    try:
        result = main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return int(result or 0)


def test_missing_home_is_created_private_and_owned(tmp_path: Path, caplog) -> None:
    home = tmp_path / "rachel"

    Provisioner(home=home, uid=UID, gid=GID).provision()

    info = home.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert (info.st_uid, info.st_gid) == (UID, GID)


def test_only_one_level_is_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Provisioner(home=tmp_path / "r" / "rachel", uid=UID, gid=GID).provision()
    assert not (tmp_path / "r").exists()


def test_correct_existing_home_logs_nothing(tmp_path: Path, caplog) -> None:
    home = tmp_path / "rachel"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    os.chown(home, UID, GID) if IS_ROOT else None

    with caplog.at_level(logging.DEBUG):
        Provisioner(home=home, uid=UID, gid=GID).provision()

    assert caplog.records == []


def test_unexpected_permissions_warn_but_succeed(tmp_path: Path, caplog) -> None:
    home = tmp_path / "rachel"
    home.mkdir()
    home.chmod(0o775)
    if IS_ROOT:
        os.chown(home, UID, GID)

    Provisioner(home=home, uid=UID, gid=GID).provision()

    assert f"{home} has unexpected permissions: 0775 != 0700" in caplog.text
    assert stat.S_IMODE(home.stat().st_mode) == 0o775


def test_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "rachel"
    home.write_text("")

    with pytest.raises(InvalidHomeError, match="exists but is not a directory"):
        Provisioner(home=home, uid=UID, gid=GID).provision()


@needs_root
def test_wrong_owner_of_empty_home_is_reset(tmp_path: Path, caplog) -> None:
    home = tmp_path / "rachel"
    home.mkdir(mode=0o700)
    os.chown(home, 1, 1)

    Provisioner(home=home, uid=UID, gid=GID).provision()

    assert (home.stat().st_uid, home.stat().st_gid) == (UID, GID)
    assert (
        f"{home} is owned by 1:1, not {UID}:{GID} but is empty, resetting ownership" in caplog.text
    )


@needs_root
def test_wrong_owner_of_used_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "rachel"
    home.mkdir(mode=0o700)
    (home / ".bashrc").write_text("")
    os.chown(home, 1, 1)

    with pytest.raises(
        InvalidHomeError, match=f"is owned by 1:1, not {UID}:{GID} and is not empty"
    ):
        Provisioner(home=home, uid=UID, gid=GID).provision()
    assert home.stat().st_uid == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "UID or GID must be nonnegative, not -1"),
        (2**32 - 1, "out of range (4294967295 > 4294967294)"),
    ],
)
def test_id_range(value: int, message: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidIdError) as error:
        Provisioner(home=tmp_path, uid=value, gid=0)
    assert message in str(error.value)
    Provisioner(home=tmp_path, uid=0, gid=2**32 - 2)  # the limits themselves are fine


def test_cli_creates_home(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "rachel"
    monkeypatch.setenv("NUBLADO_HOME", str(home))
    monkeypatch.setenv("NUBLADO_UID", str(UID))
    monkeypatch.setenv("NUBLADO_GID", str(GID))

    assert run("inithome") == 0
    assert home.is_dir()


def test_cli_unusable_home_exits_1(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NUBLADO_HOME", str(tmp_path / "file"))
    monkeypatch.setenv("NUBLADO_UID", str(UID))
    monkeypatch.setenv("NUBLADO_GID", str(GID))

    assert run("inithome") == 1


@pytest.mark.parametrize("home", ["", "relative/home", "."])
def test_cli_empty_or_relative_home_exits_2_and_touches_nothing(
    home: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    before = work.stat()
    monkeypatch.chdir(work)
    monkeypatch.setenv("NUBLADO_HOME", home)
    monkeypatch.setenv("NUBLADO_UID", str(UID + 1))
    monkeypatch.setenv("NUBLADO_GID", str(GID + 1))

    assert run("inithome") == 2

    assert "must be set to an absolute path" in capsys.readouterr().err
    after = work.stat()
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert list(work.iterdir()) == []


def test_provisioner_refuses_a_relative_home() -> None:
    with pytest.raises(InvalidHomeError, match="absolute path"):
        Provisioner(home=Path(""), uid=UID, gid=GID)


@pytest.mark.parametrize("dangling", [False, True])
def test_home_that_is_a_symlink_is_refused(tmp_path: Path, dangling: bool) -> None:
    target = tmp_path / "target"
    if not dangling:
        target.mkdir()
    before = target.stat() if not dangling else None
    home = tmp_path / "home"
    home.symlink_to(target)

    with pytest.raises(InvalidHomeError, match=r"is a symlink$"):
        Provisioner(home=home, uid=UID + 1, gid=GID + 1).provision()

    assert home.is_symlink()
    if before is None:
        assert not target.exists()
    else:
        assert (target.stat().st_uid, target.stat().st_gid) == (before.st_uid, before.st_gid)


MISSING = "Environment variables 'NUBLADO_HOME', 'NUBLADO_UID', and 'NUBLADO_GID' must all be set"
NOT_INT = "Environment variables 'NUBLADO_UID' and 'NUBLADO_GID' must each be set to an integer"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param(
            {},
            f"{MISSING}; not set: 'NUBLADO_HOME', 'NUBLADO_UID', 'NUBLADO_GID'.",
            id="none-set",
        ),
        pytest.param(
            {"NUBLADO_HOME": "/x", "NUBLADO_GID": "1"},
            f"{MISSING}; not set: 'NUBLADO_UID'.",
            id="no-uid",
        ),
        pytest.param(
            {"NUBLADO_UID": "1", "NUBLADO_GID": "1"},
            f"{MISSING}; not set: 'NUBLADO_HOME'.",
            id="no-home",
        ),
        pytest.param(
            {"NUBLADO_HOME": "/x", "NUBLADO_UID": "1", "NUBLADO_GID": "1000x"},
            f"{NOT_INT}; 'NUBLADO_GID' is '1000x'.",
            id="gid-not-int",
        ),
        pytest.param(
            {"NUBLADO_HOME": "/x", "NUBLADO_UID": "", "NUBLADO_GID": "g"},
            f"{NOT_INT}; 'NUBLADO_UID' is '' and 'NUBLADO_GID' is 'g'.",
            id="both-not-int",
        ),
        pytest.param(
            {"NUBLADO_HOME": "rel", "NUBLADO_UID": "1", "NUBLADO_GID": "1"},
            "Environment variable 'NUBLADO_HOME' must be set to an absolute path, not 'rel'.",
            id="relative-home",
        ),
        pytest.param(
            {"NUBLADO_HOME": "/x", "NUBLADO_UID": "-3", "NUBLADO_GID": "1"},
            "UID or GID must be nonnegative, not -3",
            id="negative-uid",
        ),
    ],
)
def test_cli_prints_each_environment_error_once(
    environ: dict[str, str], message: str, run_nublado
) -> None:
    result = run_nublado("inithome", env=environ)

    assert (result.returncode, result.stderr) == (2, f"nublado: error: {message}\n")


def test_setgid_home_is_not_unexpected(tmp_path: Path, caplog) -> None:
    home = tmp_path / "rachel"
    home.mkdir()
    if IS_ROOT:
        os.chown(home, UID, GID)
    home.chmod(0o2700)  # after chown, which clears setgid

    with caplog.at_level(logging.DEBUG):
        Provisioner(home=home, uid=UID, gid=GID).provision()

    assert caplog.records == []
    assert stat.S_IMODE(home.stat().st_mode) == 0o2700


def test_setgid_home_with_wrong_permissions_warns_with_them(tmp_path: Path, caplog) -> None:
    home = tmp_path / "rachel"
    home.mkdir()
    if IS_ROOT:
        os.chown(home, UID, GID)
    home.chmod(0o2750)

    Provisioner(home=home, uid=UID, gid=GID).provision()

    assert caplog.messages == [f"{home} has unexpected permissions: 0750 != 0700"]
