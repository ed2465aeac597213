"""``nublado landingpage``: copy the landing page (spec/images-tools.md 6.2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nublado.cli import main
from nublado.landingpage.provisioner import (
    DOCMANAGER_SETTINGS,
    DestinationError,
    DestinationIsDirectoryError,
    LandingPageProvisioner,
    PrecheckError,
)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, str]:
    source = tmp_path / "source"
    source.mkdir()
    (source / "hello.txt").write_text("Hello!\n")
    home = tmp_path / "home"
    home.mkdir()
    return {
        "NUBLADO_HOME": str(home),
        "CST_LANDING_PAGE_SRC_DIR": str(source),
        "CST_LANDING_PAGE_FILES": "hello.txt",
    }


def provisioner(environ: dict[str, str]) -> LandingPageProvisioner:
    return LandingPageProvisioner.from_environment(environ)


def test_copies_files_and_sets_markdown_preview(setup: dict[str, str]) -> None:
    provisioner(setup).go()

    home = Path(setup["NUBLADO_HOME"])
    assert (home / "notebooks" / "tutorials" / "hello.txt").read_text() == "Hello!\n"
    settings = json.loads((home / DOCMANAGER_SETTINGS).read_text())
    assert settings == {"defaultViewers": {"markdown": "Markdown Preview"}}


def test_defaults() -> None:
    landing = provisioner({})
    assert landing.home == Path("/nonexistent")
    assert landing.destination_dir == Path("/nonexistent/notebooks/tutorials")
    assert landing.source_dir == Path("/rubin/cst_repos/tutorial-notebooks-data/welcome")
    assert landing.files == ("welcome.md", "logo_for_header.png")


def test_absolute_target_replaces_home(setup: dict[str, str], tmp_path: Path) -> None:
    setup["CST_LANDING_PAGE_TGT_DIR"] = str(tmp_path / "elsewhere")
    provisioner(setup).go()
    assert (tmp_path / "elsewhere" / "hello.txt").exists()


def test_users_choice_of_viewer_is_kept(setup: dict[str, str]) -> None:
    path = Path(setup["NUBLADO_HOME"]) / DOCMANAGER_SETTINGS
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"defaultViewers": {"markdown": "Editor"}, "other": 1}))

    provisioner(setup).go()

    assert json.loads(path.read_text()) == {"defaultViewers": {"markdown": "Editor"}, "other": 1}


@pytest.mark.parametrize("change", ["source_dir", "file", "home"])
def test_precheck(setup: dict[str, str], change: str, tmp_path: Path) -> None:
    if change == "source_dir":
        setup["CST_LANDING_PAGE_SRC_DIR"] = str(tmp_path / "nope")
    elif change == "file":
        setup["CST_LANDING_PAGE_FILES"] = "hello.txt,missing.md"
    else:
        setup["NUBLADO_HOME"] = str(tmp_path / "nohome")

    with pytest.raises(PrecheckError) as error:
        provisioner(setup).go()
    if change == "home":
        assert str(tmp_path / "nohome") in str(error.value)  # interpolated, unlike upstream


def _destination(setup: dict[str, str]) -> Path:
    target = Path(setup["NUBLADO_HOME"]) / "notebooks" / "tutorials"
    target.mkdir(parents=True)
    return target / "hello.txt"


def test_directory_in_the_way_is_never_removed(setup: dict[str, str]) -> None:
    destination = _destination(setup)
    destination.mkdir()
    (destination / "work.ipynb").write_text("{}")

    with pytest.raises(DestinationIsDirectoryError):
        provisioner(setup).go()
    assert (destination / "work.ipynb").exists()


def test_fifo_in_the_way_is_an_error(setup: dict[str, str]) -> None:
    os.mkfifo(_destination(setup))
    with pytest.raises(DestinationError):
        provisioner(setup).go()


def test_broken_symlink_is_replaced_by_a_file(setup: dict[str, str]) -> None:
    destination = _destination(setup)
    destination.symlink_to("/nonexistent/target")

    provisioner(setup).go()

    assert not destination.is_symlink()
    assert destination.read_text() == "Hello!\n"


def test_symlink_is_replaced_not_written_through(setup: dict[str, str], tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    destination = _destination(setup)
    destination.symlink_to(victim)

    provisioner(setup).go()

    assert victim.read_text() == "keep me"
    assert destination.read_text() == "Hello!\n"


def test_modified_file_is_overwritten(setup: dict[str, str]) -> None:
    destination = _destination(setup)
    destination.write_text("edited")

    provisioner(setup).go()

    assert destination.read_text() == "Hello!\n"


def test_cli_never_fails(monkeypatch, tmp_path: Path, caplog) -> None:
    monkeypatch.setenv("NUBLADO_HOME", str(tmp_path / "missing"))
    monkeypatch.setenv("CST_LANDING_PAGE_SRC_DIR", str(tmp_path))
    monkeypatch.setenv("CST_LANDING_PAGE_FILES", "nothing-here")

    assert main(["landingpage"]) == 0
    assert "Provisioner failed" in caplog.text


def test_cli_copies(setup: dict[str, str], monkeypatch) -> None:
    for key, value in setup.items():
        monkeypatch.setenv(key, value)
    main(["landingpage"])
    assert (Path(setup["NUBLADO_HOME"]) / "notebooks" / "tutorials" / "hello.txt").exists()


def test_copy_keeps_mode_but_not_timestamps(setup: dict[str, str]) -> None:
    source = Path(setup["CST_LANDING_PAGE_SRC_DIR"]) / "hello.txt"
    source.chmod(0o640)
    os.utime(source, (1_000_000, 1_000_000))

    provisioner(setup).go()

    copied = Path(setup["NUBLADO_HOME"]) / "notebooks" / "tutorials" / "hello.txt"
    assert copied.read_text() == "Hello!\n"
    assert copied.stat().st_mode & 0o777 == 0o640
    assert copied.stat().st_mtime > 1_000_000  # data plus mode only (spec 6.2)


@pytest.mark.parametrize("value", [["JSON Editor"], "Markdown Preview", 5, None])
def test_strange_default_viewers_are_left_alone(
    setup: dict[str, str], value: object, caplog
) -> None:
    path = Path(setup["NUBLADO_HOME"]) / DOCMANAGER_SETTINGS
    path.parent.mkdir(parents=True)
    text = json.dumps({"defaultViewers": value, "other": 1})
    path.write_text(text)

    provisioner(setup).go()

    assert path.read_text() == text
    assert any("defaultViewers is not an object" in m for m in caplog.messages)


@pytest.mark.parametrize("document", ["[1, 2]", '"x"'])
def test_settings_that_are_not_an_object_are_left_alone(
    setup: dict[str, str], document: str, caplog
) -> None:
    path = Path(setup["NUBLADO_HOME"]) / DOCMANAGER_SETTINGS
    path.parent.mkdir(parents=True)
    path.write_text(document)

    provisioner(setup).go()

    assert path.read_text() == document
    assert any("not a JSON object" in m for m in caplog.messages)


NO_HOME = (
    "nublado: error: Environment variable 'NUBLADO_HOME' must be set to the user's home"
    " directory (a lab's init containers get it from the controller).\n"
)


@pytest.mark.parametrize(
    ("home", "stderr"),
    [
        pytest.param(None, NO_HOME, id="unset"),
        pytest.param(
            "",
            "nublado: error: Environment variable 'NUBLADO_HOME' must be set to an absolute"
            " path, not ''.\n",
            id="empty",
        ),
        pytest.param(
            "home",
            "nublado: error: Environment variable 'NUBLADO_HOME' must be set to an absolute"
            " path, not 'home'.\n",
            id="relative",
        ),
    ],
)
def test_cli_without_an_absolute_home_is_one_line_and_exit_2(
    setup: dict[str, str], home: str | None, stderr: str, run_nublado, tmp_path: Path
) -> None:
    environ = {key: value for key, value in setup.items() if key != "NUBLADO_HOME"}
    if home is not None:
        environ["NUBLADO_HOME"] = home

    result = run_nublado("landingpage", env=environ)

    assert (result.returncode, result.stderr) == (2, stderr)
    # The child runs in tmp_path: a relative home would have been made there.
    assert not (tmp_path / "notebooks").exists()
    assert not (tmp_path / "home" / "notebooks").exists()


def test_cli_failure_is_one_log_line_and_exit_0(setup: dict[str, str], run_nublado) -> None:
    setup["CST_LANDING_PAGE_FILES"] = "hello.txt,missing.md"

    result = run_nublado("landingpage", env=setup)

    missing = Path(setup["CST_LANDING_PAGE_SRC_DIR"]) / "missing.md"
    assert (result.returncode, result.stderr) == (
        0,
        f"ERROR nublado.landingpage: Provisioner failed: Source file {missing} is not a file\n",
    )


def test_cli_unreadable_settings_is_one_log_line(setup: dict[str, str], run_nublado) -> None:
    path = Path(setup["NUBLADO_HOME"]) / DOCMANAGER_SETTINGS
    path.parent.mkdir(parents=True)
    path.write_text("{not json")

    result = run_nublado("landingpage", env=setup)

    assert (result.returncode, result.stderr) == (
        0,
        f"ERROR nublado.landingpage: Provisioner failed: {path} is not valid JSON:"
        " Expecting property name enclosed in double quotes: line 1 column 2 (char 1)\n",
    )
    assert path.read_text() == "{not json"
