"""``nublado startup``: the lab preparer (spec/images-tools.md 6.3)."""

from __future__ import annotations

import configparser
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from nublado.cli import main
from nublado.startup.abnormal import portable_error, welcome_text
from nublado.startup.command import Command, CommandFailedError, CommandTimedOutError
from nublado.startup.preparer import LAB_STATIC_CMD_ARGS, Preparer, StartupPaths

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"
REPERTOIRE = "https://data.example.com/repertoire"
NOW = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)
OLD_LOGGING = b"# the logging profile we shipped before\n"


LAB = {
    "JUPYTERHUB_SERVICE_PREFIX": "/nb/user/hambone/",
    "JUPYTER_IMAGE_SPEC": "lighthouse.ceres/library/sketchbook:w_2077_43@sha256:5678",
}
NOT_IN_LAB = (
    "nublado: error: not in a lab: environment {} not set (nublado startup prepares a lab"
    " container and runs only as a lab's init container).\n"
)


@pytest.fixture
def discovery() -> Iterator[respx.MockRouter]:
    """Service discovery answering with the reference document."""
    document = json.loads((REFERENCE / "inputs" / "discovery.json").read_text())
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{REPERTOIRE}/discovery").mock(return_value=httpx.Response(200, json=document))
        yield mock


@pytest.fixture
def lab(tmp_path: Path, discovery: respx.MockRouter) -> dict[str, Any]:
    """A home, scratch, /etc and JupyterLab config dir, all under tmp_path."""
    home = tmp_path / "home" / "hambone"
    home.mkdir(parents=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    etc = tmp_path / "etc"
    (etc / "skel" / "notebooks" / ".user_setups").mkdir(parents=True)
    (etc / "skel" / ".pythonrc").write_text("# skel pythonrc\n")
    (etc / "dircolors.ansi-universal").write_text("# colours\n")
    config_dir = tmp_path / "jupyterlab"
    (config_dir / "etc").mkdir(parents=True)
    (config_dir / "etc" / "20-logging.py").write_text("# new logging profile\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git_log = tmp_path / "git.log"
    (bin_dir / "git").write_text(f'#!/bin/sh\necho "$HOME $*" >> {git_log}\n')
    (bin_dir / "git").chmod(0o755)
    environ = {
        "NUBLADO_HOME": str(home),
        "SCRATCH_PATH": str(scratch),
        "REPERTOIRE_BASE_URL": REPERTOIRE,
        "JUPYTERLAB_CONFIG_DIR": str(config_dir),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
    }
    paths = StartupPaths(startup=tmp_path / "startup", etc=etc, tmp=tmp_path / "tmp")
    return {
        "environ": environ,
        "paths": paths,
        "home": home,
        "scratch": scratch,
        "git_log": git_log,
        "tmp": tmp_path,
    }


def prepare(lab: dict[str, Any], **extra: str) -> Preparer:
    preparer = Preparer({**lab["environ"], **extra}, paths=lab["paths"], now=NOW)
    preparer.prepare()
    return preparer


def written(lab: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    startup = lab["paths"].startup
    return json.loads((startup / "env.json").read_text()), json.loads(
        (startup / "args.json").read_text()
    )


def test_expected_output(lab: dict[str, Any]) -> None:
    prepare(lab)

    env, args = written(lab)
    home, user_scratch = lab["home"], lab["scratch"] / "hambone"
    assert env == {
        "CPU_COUNT": "1", "CPU_LIMIT": "1",
        "DAF_BUTLER_CACHE_DIRECTORY": f"{user_scratch}/butler_cache",
        "FIREFLY_URL": "https://data.example.com/portal/app/",
        "GOTO_NUM_THREADS": "1", "HOME": str(home), "JUPYTER_PREFER_ENV_PATH": "no",
        "MKL_DOMAIN_NUM_THREADS": "1", "MPI_NUM_THREADS": "1", "NUMEXPR_MAX_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "RAYON_NUM_THREADS": "1", "RUNNING_INSIDE_JUPYTERLAB": "TRUE",
        "SCRATCH_DIR": str(user_scratch), "TMPDIR": f"{user_scratch}/tmp", "USER": "hambone",
    }  # fmt: skip
    assert args == [*LAB_STATIC_CMD_ARGS, f"--notebook-dir={home}", "--log-level=INFO"]
    assert len(LAB_STATIC_CMD_ARGS) == 12
    env_text = (lab["paths"].startup / "env.json").read_text()
    assert env_text == json.dumps(env, sort_keys=True, indent=2)
    assert (user_scratch / "tmp").stat().st_mode & 0o777 == 0o700


def test_debug_and_cull_flags(lab: dict[str, Any]) -> None:
    prepare(lab, DEBUG="1", CULL_KERNEL_IDLE_TIMEOUT="3600", NO_ACTIVITY_TIMEOUT="7200",
            CULL_TERMINAL_INTERVAL="")  # fmt: skip

    _, args = written(lab)
    assert args[12:] == [
        f"--notebook-dir={lab['home']}",
        "--log-level=DEBUG",
        "--ServerApp.shutdown_no_activity_timeout=7200",
        "--MappingKernelManager.cull_idle_timeout=3600",
    ]


def test_tmpdir_rules(lab: dict[str, Any]) -> None:
    (lab["scratch"] / "hambone").mkdir()
    (lab["scratch"] / "hambone" / "tmp").write_text("a file in the way")
    assert "TMPDIR" not in prepare(lab).env
    assert "TMPDIR" not in prepare(lab, TMPDIR="/preset").env
    assert "TMPDIR" not in prepare(lab, SCRATCH_PATH=str(lab["tmp"] / "no-scratch")).env


def test_butler_cache_falls_back_to_tmp(lab: dict[str, Any]) -> None:
    (lab["scratch"] / "hambone").mkdir()
    (lab["scratch"] / "hambone" / "butler_cache").write_text("in the way")

    env = prepare(lab).env

    assert env["DAF_BUTLER_CACHE_DIRECTORY"] == str(lab["tmp"] / "tmp" / "butler_cache")
    assert "DAF_BUTLER_CACHE_DIRECTORY" not in prepare(lab, DAF_BUTLER_CACHE_DIRECTORY="/x").env


def test_initial_then_username_scratch(lab: dict[str, Any]) -> None:
    env = prepare(lab, HOMEDIR_SCHEMA="initialThenUsername").env
    assert env["SCRATCH_DIR"] == str(lab["scratch"] / "h" / "hambone")


@pytest.mark.parametrize(
    ("limit", "count"),
    [("0.1", "1"), ("3.1", "3"), ("14", "14"), ("1.0", "1"), ("NaN", "1"), ("", "1"),
     ("inf", "1"), ("lots", "1")],
)  # fmt: skip
def test_cpu_limit(lab: dict[str, Any], limit: str, count: str) -> None:
    env = prepare(lab, CPU_LIMIT=limit).env
    assert env["CPU_LIMIT"] == env["OMP_NUM_THREADS"] == env["RAYON_NUM_THREADS"] == count
    assert "ABNORMAL_STARTUP" not in env


def test_image_digest_and_panda_config_root(lab: dict[str, Any]) -> None:
    home = lab["home"]
    env = prepare(lab, JUPYTER_IMAGE_SPEC="ghcr.io/lsst/sciplat-lab@sha256:abc123",
                  PANDA_CONFIG_ROOT="~/panda").env  # fmt: skip
    assert env["IMAGE_DIGEST"] == "abc123"
    assert env["PANDA_CONFIG_ROOT"] == f"{home}/panda"
    for value in ("~", "~hambone", "~hambone/"):
        assert prepare(lab, PANDA_CONFIG_ROOT=value).env["PANDA_CONFIG_ROOT"] == str(home)
    assert "PANDA_CONFIG_ROOT" not in prepare(lab, PANDA_CONFIG_ROOT="~other/x").env
    assert "PANDA_CONFIG_ROOT" not in prepare(lab, PANDA_CONFIG_ROOT="/abs/path").env
    assert "IMAGE_DIGEST" not in prepare(lab, JUPYTER_IMAGE_SPEC="image:tag").env


def test_discovery_failure_skips_firefly(lab: dict[str, Any], discovery) -> None:
    discovery.get(f"{REPERTOIRE}/discovery").mock(return_value=httpx.Response(500))
    env = prepare(lab).env
    assert "FIREFLY_URL" not in env
    assert "ABNORMAL_STARTUP" not in env


def test_credentials_are_merged(lab: dict[str, Any]) -> None:
    secrets = lab["tmp"] / "secrets"
    secrets.mkdir()
    (secrets / "aws-credentials.ini").write_text(
        "[default]\naws_access_key_id = key01\n\n[secondary]\naws_access_key_id = key02\n"
    )
    (secrets / "postgres-credentials.txt").write_text("127.0.0.1:5432:db01:postgres:s33kr1t\n")
    lsst = lab["home"] / ".lsst"
    lsst.mkdir()
    (lsst / "aws-credentials.ini").write_text(
        "[default]\naws_access_key_id = old\n\n[tertiary]\naws_access_key_id = key03\n"
    )
    (lsst / "postgres-credentials.txt").write_text(
        "127.0.0.1:5432:db01:postgres:gets_overwritten\n"
        "127.0.0.1:5432:db02:postgres:should_stay\nno colon here\n"
    )

    env = prepare(
        lab,
        AWS_SHARED_CREDENTIALS_FILE=str(secrets / "aws-credentials.ini"),
        PGPASSFILE=str(secrets / "postgres-credentials.txt"),
    ).env

    assert env["AWS_SHARED_CREDENTIALS_FILE"] == str(lsst / "aws-credentials.ini")
    assert env["ORIG_PGPASSFILE"] == str(secrets / "postgres-credentials.txt")
    aws = configparser.ConfigParser()
    aws.read(lsst / "aws-credentials.ini")
    assert {s: aws[s]["aws_access_key_id"] for s in aws.sections()} == {
        "default": "key01", "tertiary": "key03", "secondary": "key02",
    }  # fmt: skip
    assert (lsst / "postgres-credentials.txt").read_text().splitlines() == [
        "127.0.0.1:5432:db01:postgres:s33kr1t",
        "127.0.0.1:5432:db02:postgres:should_stay",
    ]


def test_dask_dashboard_written_when_missing(lab: dict[str, Any]) -> None:
    prepare(lab)
    dashboard = lab["home"] / ".config" / "dask" / "dashboard.yaml"
    assert yaml.safe_load(dashboard.read_text()) == {
        "distributed": {"dashboard": {"link": "{JUPYTERHUB_PUBLIC_URL}proxy/{port}/status"}}
    }


def test_dask_old_link_is_rewritten_with_backup(lab: dict[str, Any]) -> None:
    dask = lab["home"] / ".config" / "dask"
    dask.mkdir(parents=True)
    old = "{EXTERNAL_INSTANCE_URL}{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
    (dask / "mine.yaml").write_text(yaml.safe_dump({"distributed": {"dashboard": {"link": old}}}))
    (dask / "empty.yml").write_text("nothing: null\n")

    prepare(lab)

    link = yaml.safe_load((dask / "mine.yaml").read_text())["distributed"]["dashboard"]["link"]
    assert link == "{JUPYTERHUB_PUBLIC_URL}proxy/{port}/status"
    assert (dask / "mine.yaml.2026-11-22").exists()
    assert (dask / "empty.yml.2026-11-22").exists()  # empty after flensing: set aside
    assert not (dask / "empty.yml").exists()
    assert not (dask / "dashboard.yaml").exists()


def test_dask_file_that_is_not_a_mapping_does_not_crash(lab: dict[str, Any]) -> None:
    dask = lab["home"] / ".config" / "dask"
    dask.mkdir(parents=True)
    (dask / "list.yaml").write_text("- 1\n- 2\n")

    env = prepare(lab).env

    assert "ABNORMAL_STARTUP" not in env
    assert (dask / "list.yaml").read_text() == "- 1\n- 2\n"
    assert (dask / "dashboard.yaml").exists()


def test_git_lfs_installed_once(lab: dict[str, Any]) -> None:
    prepare(lab)
    assert lab["git_log"].read_text() == f"{lab['home']} lfs install\n"
    (lab["home"] / ".gitconfig").write_text('[filter "lfs"]\n\tclean = git-lfs clean -- %f\n')
    prepare(lab)
    assert lab["git_log"].read_text().count("lfs install") == 1


def test_logging_profile(lab: dict[str, Any]) -> None:
    target = lab["home"] / ".ipython" / "profile_default" / "startup" / "20-logging.py"
    prepare(lab)
    assert target.read_text() == "# new logging profile\n"

    target.write_text("# my own changes\n")
    prepare(lab)
    assert target.read_text() == "# my own changes\n"


def test_known_old_logging_profile_is_replaced(lab: dict[str, Any], monkeypatch) -> None:
    import nublado.startup.preparer as preparer_module

    digest = hashlib.sha256(OLD_LOGGING).hexdigest()
    monkeypatch.setattr(preparer_module, "PREVIOUS_LOGGING_CHECKSUMS", frozenset({digest}))
    target = lab["home"] / ".ipython" / "profile_default" / "startup" / "20-logging.py"
    target.parent.mkdir(parents=True)
    target.write_bytes(OLD_LOGGING)

    prepare(lab)

    assert target.read_text() == "# new logging profile\n"


def test_skel_and_dircolors_never_overwrite(lab: dict[str, Any]) -> None:
    (lab["home"] / ".pythonrc").write_text("# mine\n")

    prepare(lab)

    assert (lab["home"] / ".pythonrc").read_text() == "# mine\n"
    assert (lab["home"] / "notebooks" / ".user_setups").is_dir()
    assert (lab["home"] / ".dir_colors").read_text() == "# colours\n"


def test_missing_dircolors_source_is_abnormal(lab: dict[str, Any]) -> None:
    (lab["paths"].etc / "dircolors.ansi-universal").unlink()
    env = prepare(lab).env
    assert env["ABNORMAL_STARTUP_ERRORCODE"] == "ENOENT"
    assert env["ABNORMAL_STARTUP_ERRNO"] == str(errno.ENOENT)


def test_output_limit_raised_and_bad_json_left_alone(lab: dict[str, Any]) -> None:
    tracker = (
        lab["home"] / ".jupyter/lab/user-settings/@jupyterlab/notebook-extension"
        / "tracker.jupyterlab.settings"
    )  # fmt: skip
    prepare(lab)
    assert json.loads(tracker.read_text()) == {"maxNumberOutputs": 10000}
    assert tracker.read_text() == json.dumps({"maxNumberOutputs": 10000}, indent=4)

    tracker.write_text("{ // a JSON5 comment\n}")
    env = prepare(lab).env
    assert tracker.read_text() == "{ // a JSON5 comment\n}"
    assert "ABNORMAL_STARTUP" not in env
    assert (lab["paths"].startup / "env.json").exists()


def test_relocation(lab: dict[str, Any]) -> None:
    home = lab["home"]
    (home / ".local" / "foo").mkdir(parents=True)
    (home / "notebooks").mkdir()
    (home / "notebooks" / ".user_setups").write_text("setup\n")

    prepare(lab, RESET_USER_ENV="1")

    moved = home / ".user_env.20261122010203"
    assert (moved / "local" / "foo").is_dir()
    assert (moved / "notebooks" / "user_setups").read_text() == "setup\n"
    assert not (home / ".local" / "foo").exists()


def test_relocation_of_setups_alone(lab: dict[str, Any]) -> None:
    (lab["home"] / "notebooks").mkdir()
    (lab["home"] / "notebooks" / ".user_setups").write_text("setup\n")

    env = prepare(lab, RESET_USER_ENV="1").env

    assert "ABNORMAL_STARTUP" not in env
    assert (lab["home"] / ".user_env.20261122010203" / "notebooks" / "user_setups").exists()


def test_missing_home_is_ebadenv(lab: dict[str, Any]) -> None:
    environ = dict(lab["environ"])
    del environ["NUBLADO_HOME"]
    Preparer(environ, paths=lab["paths"], now=NOW).prepare()

    env, args = written(lab)
    assert env["ABNORMAL_STARTUP_ERRNO"] == "200"
    assert env["ABNORMAL_STARTUP_ERRORCODE"] == "EBADENV"
    assert env["ABNORMAL_STARTUP_MESSAGE"] == (
        "[Errno 200] Missing environment variable: 'NUBLADO_HOME'"
    )
    tmp = lab["paths"].tmp
    assert env["HOME"] == str(tmp)
    assert f"--notebook-dir={tmp}" in args
    welcome = (tmp / "notebooks" / "tutorials" / "welcome.md").read_text()
    assert "missing environment variables" in welcome


def test_full_disk_is_abnormal_and_explained(lab: dict[str, Any], monkeypatch) -> None:
    def full(self: Preparer) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", f"{self.home}/.cache/1mb.txt")

    monkeypatch.setattr(Preparer, "_write_test_file", full)
    (lab["home"] / ".cache" / "junk").mkdir(parents=True)

    preparer = prepare(lab)

    env, args = written(lab)
    assert env["ABNORMAL_STARTUP_ERRORCODE"] == "ENOSPC"
    assert env["ABNORMAL_STARTUP_MESSAGE"] == (
        f"[Errno 28] No space left on device: '{lab['home']}/.cache/1mb.txt'"
    )
    safe = lab["scratch"] / "hambone"  # one source for HOME and the page
    assert env["HOME"] == str(safe)
    assert f"--notebook-dir={safe}" in args
    assert "file system holding" in (safe / "notebooks/tutorials/welcome.md").read_text()
    assert not (lab["home"] / ".cache" / "junk").exists()  # emergency cleanup ran
    assert not (lab["home"] / ".dir_colors").exists()  # seeding skipped

    preparer.clear_abnormal()
    assert not any(key.startswith("ABNORMAL_STARTUP") for key in preparer.env)


def test_space_recovered_after_cleanup_is_normal(lab: dict[str, Any], monkeypatch) -> None:
    calls = []
    real = Preparer._write_test_file

    def once_full(self: Preparer) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        real(self)

    monkeypatch.setattr(Preparer, "_write_test_file", once_full)

    assert "ABNORMAL_STARTUP" not in prepare(lab).env
    assert len(calls) == 2


def test_unknown_errors_are_portable() -> None:
    error, code = portable_error(OSError(9999, "weird", "/x"))
    assert (code, str(error)) == ("EUNKNOWN", "[Errno 201] weird: '/x'")
    error, code = portable_error(OSError("no errno"))
    assert (code, str(error)) == ("EUNKNOWN", "[Errno 201] Unknown error 201")
    error, code = portable_error(ValueError("bad"))
    assert (code, error.errno) == ("EUNKNOWN", 201)


def test_welcome_layout() -> None:
    text = welcome_text("EUNKNOWN", "msg", "/home/x")
    assert text.startswith("\n# Abnormal startup\n\n")
    assert "keep.\n\n\n\nPlease open an issue with your RSP site administrator with the\n" in text
    assert text.endswith("following information: `msg`\n")
    assert "`quota`" in welcome_text("EDQUOT", "m", "/home/x")


def test_command_wrapper(tmp_path: Path) -> None:
    with pytest.raises(CommandFailedError, match="'false' failed with status 1"):
        Command().run("false")
    assert Command(ignore_fail=True).run("false").returncode == 1
    assert Command().run("echo", "hi", cwd=tmp_path).stdout == "hi\n"
    with pytest.raises(CommandTimedOutError, match="timed out after 0.2s"):
        Command().run("sleep", "5", timeout=0.2)


def test_cli(lab: dict[str, Any], monkeypatch) -> None:
    for key, value in {**lab["environ"], **LAB}.items():
        monkeypatch.setenv(key, value)
    out = lab["tmp"] / "out"
    monkeypatch.setenv("NUBLADO_ETC_PATH", str(lab["paths"].etc))
    monkeypatch.setenv("NUBLADO_TMP_PATH", str(lab["paths"].tmp))

    main(["startup", "--startup-path", str(out)])

    env = json.loads((out / "env.json").read_text())
    assert env["USER"] == "hambone"
    assert env["IMAGE_DIGEST"] == "5678"
    assert "ABNORMAL_STARTUP" not in env
    assert os.environ.get("HOME") != str(lab["home"])  # the process env is not modified


@pytest.mark.parametrize(
    "document",
    [
        {"services": []},
        {"services": {"ui": []}},
        {"services": {"ui": {"portal": 5}}, "urls": "x"},
        {"urls": {"ui": {"portal": {"url": 7}}}},
        [],
        "portal",
    ],
)
def test_malformed_discovery_is_logged_and_skipped(
    lab: dict[str, Any], discovery, document: object, caplog
) -> None:
    discovery.get(f"{REPERTOIRE}/discovery").mock(return_value=httpx.Response(200, json=document))

    env = prepare(lab).env

    assert "FIREFLY_URL" not in env
    assert "ABNORMAL_STARTUP" not in env
    assert any("knows no portal" in m for m in caplog.messages)


@pytest.mark.parametrize("base", ["http://[::1", "http://host:notaport"])
def test_bad_repertoire_url_is_logged_and_skipped(lab: dict[str, Any], base: str, caplog) -> None:
    env = prepare(lab, REPERTOIRE_BASE_URL=base).env

    assert "FIREFLY_URL" not in env
    assert "ABNORMAL_STARTUP" not in env
    assert any("Service discovery at" in m for m in caplog.messages)


def test_nonexistent_home_is_abnormal_and_never_created(lab: dict[str, Any]) -> None:
    home = lab["tmp"] / "home" / "nobody"

    env = prepare(lab, NUBLADO_HOME=str(home)).env

    assert env["ABNORMAL_STARTUP"] == "TRUE"
    assert env["ABNORMAL_STARTUP_ERRORCODE"] == "ENOENT"
    assert not home.exists()


def test_home_that_is_a_file_is_abnormal(lab: dict[str, Any]) -> None:
    home = lab["tmp"] / "home" / "file"
    home.write_text("not a home")

    env = prepare(lab, NUBLADO_HOME=str(home)).env

    assert env["ABNORMAL_STARTUP_ERRORCODE"] == "ENOTDIR"
    assert home.read_text() == "not a home"


def test_dangling_dircolors_symlink_is_left_alone(lab: dict[str, Any]) -> None:
    target = lab["tmp"] / "elsewhere" / "colours"
    target.parent.mkdir()
    (lab["home"] / ".dir_colors").symlink_to(target)

    env = prepare(lab).env

    assert not target.exists()  # copy2 would have written through the link
    assert (lab["home"] / ".dir_colors").is_symlink()
    assert "ABNORMAL_STARTUP" not in env


@pytest.mark.parametrize(
    ("lab_variables", "stderr"),
    [
        pytest.param(
            {},
            NOT_IN_LAB.format("variables 'JUPYTERHUB_SERVICE_PREFIX' and 'JUPYTER_IMAGE_SPEC' are"),
            id="workstation",
        ),
        pytest.param(
            {"JUPYTER_IMAGE_SPEC": LAB["JUPYTER_IMAGE_SPEC"]},
            NOT_IN_LAB.format("variable 'JUPYTERHUB_SERVICE_PREFIX' is"),
            id="no-prefix",
        ),
        pytest.param(
            {
                "JUPYTERHUB_SERVICE_PREFIX": LAB["JUPYTERHUB_SERVICE_PREFIX"],
                "JUPYTER_IMAGE_SPEC": "",
            },
            NOT_IN_LAB.format("variable 'JUPYTER_IMAGE_SPEC' is"),
            id="empty-image-spec",
        ),
    ],
)
def test_cli_refuses_to_run_outside_a_lab(
    lab: dict[str, Any], lab_variables: dict[str, str], stderr: str, run_nublado
) -> None:
    home = lab["home"]
    (home / ".bashrc").write_text("# mine\n")
    before = sorted(path.name for path in home.iterdir())
    out = lab["tmp"] / "out"
    environ = {
        **lab["environ"],
        **lab_variables,
        "NUBLADO_STARTUP_PATH": str(out),
        "NUBLADO_ETC_PATH": str(lab["paths"].etc),
        "NUBLADO_TMP_PATH": str(lab["paths"].tmp),
    }

    result = run_nublado("startup", env=environ)

    assert (result.returncode, result.stderr) == (2, stderr)
    assert not out.exists()
    assert sorted(path.name for path in home.iterdir()) == before
    assert not lab["git_log"].exists()
