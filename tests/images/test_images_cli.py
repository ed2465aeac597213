"""``nublado images list|delete|prune`` against a respx Docker registry and a fake GAR client."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx
from click.testing import CliRunner, Result
from fake_gar import FakeGAR, gar_image
from fake_registry import FakeRegistry
from google.auth.exceptions import DefaultCredentialsError, RefreshError, TransportError

from nublado.cli import main
from nublado.images import cli as images_cli
from nublado.images import gar as gar_module

REGISTRY = "lighthouse.ceres"
BASE = f"https://{REGISTRY}/v2/library/sketchbook"
PACKAGE = (
    "projects/rubin-shared-services-71ec/locations/us-central1/repositories/sciplat"
    "/packages/sciplat-lab"
)
CREDENTIALS = (
    Path(__file__).resolve().parents[1] / "data/reference/inputs/registry/docker-creds.json"
)

DOCKER_YAML = """\
prune:
  weekly:
    cutoffDate: "2021-05-31"
source:
  type: docker
  registry: lighthouse.ceres
  repository: library/sketchbook
"""
GAR_YAML = """\
prune:
  weekly:
    cutoffDate: "2077-10-25"
source:
  type: google
  location: us-central1
  projectId: rubin-shared-services-71ec
  repository: sciplat
  image: sciplat-lab
"""

# spec 4.3's Docker prune example: recommended is the digest of w_2021_22
DOCKER_TAGS = {
    "w_2021_22": "sha256:22",
    "w_2021_22-amd64": "sha256:22a",
    "w_2021_21": "sha256:21",
    "w_2021_21-arm64": "sha256:21r",
    "w_2021_21-amd64": "sha256:21a",
    "d_2021_06_15": "sha256:0615",
    "d_2021_06_14-amd64": "sha256:0614",
    "recommended": "sha256:22",
}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The commands configure the ``nublado`` logger; leave it as other tests expect."""
    logger = logging.getLogger("nublado")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    path = tmp_path / "docker.yaml"
    path.write_text(DOCKER_YAML)
    return path


@pytest.fixture
def gar_config(tmp_path: Path) -> Path:
    path = tmp_path / "gar.yaml"
    path.write_text(GAR_YAML)
    return path


@pytest.fixture
def fake_gar(monkeypatch: pytest.MonkeyPatch) -> FakeGAR:
    fake = FakeGAR(
        [
            gar_image("sha256:43", "w_2077_43", "recommended"),
            gar_image("sha256:42", "w_2077_42"),
            gar_image("sha256:41", "w_2077_41"),
            gar_image("sha256:1023", "d_2077_10_23"),
            gar_image("sha256:0000"),  # untagged
            gar_image("sha256:99", "w_2077_40", image="other-image"),
        ]
    )
    monkeypatch.setattr(images_cli, "gar_client", fake)
    return fake


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(images_cli.images, list(args), env=env)


# ---------------------------------------------------------------- list


def test_list_docker_in_priority_order(router: respx.MockRouter, docker_config: Path) -> None:
    FakeRegistry(router, DOCKER_TAGS)

    result = run("list", "-c", str(docker_config))

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "w_2021_22\nw_2021_22-amd64\nw_2021_21\nw_2021_21-arm64\nw_2021_21-amd64\n"
        "d_2021_06_15\nd_2021_06_14-amd64\nrecommended\n"
    )


def test_list_an_empty_repository(router: respx.MockRouter, docker_config: Path) -> None:
    FakeRegistry(router, {})

    result = run("list", "-c", str(docker_config))

    assert (result.exit_code, result.stdout) == (0, "\n")


def test_list_gar(fake_gar: FakeGAR, gar_config: Path) -> None:
    result = run("list", "-c", str(gar_config))

    assert result.exit_code == 0, result.output
    assert result.stdout == "w_2077_43\nw_2077_42\nw_2077_41\nd_2077_10_23\nrecommended\n"


# ---------------------------------------------------------------- prune


@pytest.mark.parametrize("flags", [[], ["-n"], ["--dry-run"]], ids=["default", "-n", "--dry-run"])
def test_prune_docker_dry_run(
    router: respx.MockRouter, docker_config: Path, flags: list[str]
) -> None:
    registry = FakeRegistry(router, DOCKER_TAGS)

    result = run("prune", "-c", str(docker_config), *flags)

    assert result.exit_code == 0, result.output
    assert (
        result.stdout == "Would delete images:\n  w_2021_21\n  w_2021_21-arm64\n  w_2021_21-amd64\n"
    )
    assert result.stderr == "Dry run: nothing deleted; give --execute to delete.\n"
    assert registry.deleted == []


def test_prune_docker_execute(router: respx.MockRouter, docker_config: Path) -> None:
    registry = FakeRegistry(router, DOCKER_TAGS)

    result = run("prune", "-c", str(docker_config), "--execute")

    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted images:\n  w_2021_21\n  w_2021_21-arm64\n  w_2021_21-amd64\n"
    assert registry.deleted == ["sha256:21", "sha256:21r", "sha256:21a"]
    listed = run("list", "-c", str(docker_config)).stdout.split()
    assert listed == [
        "w_2021_22",
        "w_2021_22-amd64",
        "d_2021_06_15",
        "d_2021_06_14-amd64",
        "recommended",
    ]


@pytest.mark.parametrize(
    ("keeper", "shared"),
    [("d_2021_06_15", "w_2021_21"), ("recommended", "w_2021_21")],
    ids=["kept-daily", "alias"],
)
def test_prune_never_deletes_a_digest_a_kept_tag_uses(
    router: respx.MockRouter, docker_config: Path, keeper: str, shared: str
) -> None:
    tags = {**DOCKER_TAGS, keeper: DOCKER_TAGS[shared]}  # two tags, one digest; keeper retained
    registry = FakeRegistry(router, tags)

    result = run("prune", "-c", str(docker_config), "--execute")

    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted images:\n  w_2021_21-arm64\n  w_2021_21-amd64\n"
    assert "sha256:21" not in registry.deleted
    assert registry.deleted == ["sha256:21r", "sha256:21a"]
    assert (
        result.stderr == f"Sparing {shared}: its image sha256:21 is also tagged {keeper} (kept)\n"
    )
    assert {shared, keeper} <= set(registry.tags)


def test_prune_deletes_a_digest_shared_by_pruned_tags_once(
    router: respx.MockRouter, docker_config: Path
) -> None:
    tags = {**DOCKER_TAGS, "w_2021_21-arm64": "sha256:21"}
    registry = FakeRegistry(router, tags)

    result = run("prune", "-c", str(docker_config), "--execute")

    assert result.exit_code == 0, result.output
    assert registry.deleted == ["sha256:21", "sha256:21a"]


def test_prune_gar_dry_run_and_execute(fake_gar: FakeGAR, gar_config: Path) -> None:
    dry = run("prune", "-c", str(gar_config))
    assert (dry.exit_code, dry.stdout) == (0, "Would delete images:\n  w_2077_42\n  w_2077_41\n")
    assert fake_gar.delete_requests == []

    real = run("prune", "-c", str(gar_config), "--execute")
    assert (real.exit_code, real.stdout) == (0, "Deleted images:\n  w_2077_42\n  w_2077_41\n")
    package = (
        "projects/rubin-shared-services-71ec/locations/us-central1/repositories/sciplat"
        "/packages/sciplat-lab"
    )
    assert fake_gar.deleted_names == [
        [f"{package}/versions/sha256:42", f"{package}/versions/sha256:41"]
    ]
    listed = run("list", "-c", str(gar_config)).stdout
    assert listed == "w_2077_43\nd_2077_10_23\nrecommended\n"


def test_prune_gar_spares_a_version_with_a_kept_tag(
    monkeypatch: pytest.MonkeyPatch, gar_config: Path
) -> None:
    fake = FakeGAR(
        [gar_image("sha256:43", "w_2077_43", "w_2077_42"), gar_image("sha256:41", "w_2077_41")]
    )
    monkeypatch.setattr(images_cli, "gar_client", fake)

    result = run("prune", "-c", str(gar_config), "--execute")

    assert result.stdout == "Deleted images:\n  w_2077_41\n"
    assert (
        result.stderr == "Sparing w_2077_42: its image sha256:43 is also tagged w_2077_43 (kept)\n"
    )
    assert [names[0].rsplit("/", 1)[-1] for names in fake.deleted_names] == ["sha256:41"]


def test_prune_policy_from_the_environment(router: respx.MockRouter, tmp_path: Path) -> None:
    FakeRegistry(router, DOCKER_TAGS)
    config = tmp_path / "docker.yaml"
    config.write_text(
        f"source: {{type: docker, registry: {REGISTRY}, repository: library/sketchbook}}\n"
    )
    policy = json.dumps({"weekly": {"number": 1}})  # keeps w_2021_22 only, arch included

    result = run("prune", "-c", str(config), env={"NUBLADO_PRUNE": policy})

    assert result.exit_code == 0, result.output
    pruned = ["w_2021_22-amd64", "w_2021_21", "w_2021_21-arm64", "w_2021_21-amd64"]
    assert result.stdout == "Would delete images:\n" + "".join(f"  {tag}\n" for tag in pruned)


# ---------------------------------------------------------------- delete


def test_delete_docker_dry_run_and_execute(router: respx.MockRouter, docker_config: Path) -> None:
    registry = FakeRegistry(router, DOCKER_TAGS)

    dry = run("delete", "-c", str(docker_config), "w_2021_22", "recommended")
    assert (dry.exit_code, dry.stdout) == (0, "Would delete images:\n  w_2021_22\n  recommended\n")
    assert registry.deleted == []

    real = run("delete", "-c", str(docker_config), "--execute", "w_2021_22", "recommended")
    assert (real.exit_code, real.stdout) == (0, "")
    assert registry.deleted == ["sha256:22"]  # one digest, deleted once
    assert "recommended" not in registry.tags


def test_delete_gar(fake_gar: FakeGAR, gar_config: Path) -> None:
    dry = run("delete", "-c", str(gar_config), "w_2077_41", "nope")
    assert (dry.exit_code, dry.stdout) == (0, "Would delete images:\n  w_2077_41\n")
    warning, note = dry.stderr.splitlines()
    assert json.loads(warning) == {
        "severity": "WARNING",
        "logger": "nublado",
        "event": "No image has the tag nope, skipped",
    }
    assert note == "Dry run: nothing deleted; give --execute to delete."

    real = run("delete", "-c", str(gar_config), "--execute", "w_2077_41", "nope")
    assert (real.exit_code, real.stdout) == (0, "")
    assert [names[0].rsplit("/", 1)[-1] for names in fake_gar.deleted_names] == ["sha256:41"]


def test_delete_refuses_an_empty_tag(router: respx.MockRouter, docker_config: Path) -> None:
    registry = FakeRegistry(router, DOCKER_TAGS)

    result = run("delete", "-c", str(docker_config), "--execute", "w_2021_21", "")

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "nublado: error: not a Docker tag: '' (an empty tag names no image)\n"
    assert (registry.heads, registry.deleted) == (0, [])


@pytest.mark.parametrize("execute", [False, True], ids=["dry-run", "execute"])
def test_delete_docker_names_the_other_tags_of_each_image(
    router: respx.MockRouter, docker_config: Path, execute: bool
) -> None:
    registry = FakeRegistry(router, {**DOCKER_TAGS, "latest": "sha256:22"})
    flags = ["--execute"] if execute else []

    result = run("delete", "-c", str(docker_config), *flags, "w_2021_22", "w_2021_21-arm64")

    assert result.exit_code == 0, result.output
    notes = [
        "w_2021_22: its image sha256:22 is also tagged recommended, latest, which go with it",
    ]
    if execute:
        assert result.stdout == ""
        assert result.stderr.splitlines() == notes
        assert registry.deleted == ["sha256:22", "sha256:21r"]
        assert not {"recommended", "latest"} & set(registry.tags)
    else:
        assert result.stdout == "Would delete images:\n  w_2021_22\n  w_2021_21-arm64\n"
        assert result.stderr.splitlines() == [*notes, DRY_RUN_NOTE]
        assert registry.deleted == []


def test_delete_names_a_companion_once_per_image_and_not_a_named_tag(
    router: respx.MockRouter, docker_config: Path
) -> None:
    FakeRegistry(router, {**DOCKER_TAGS, "latest": "sha256:22"})

    result = run("delete", "-c", str(docker_config), "recommended", "w_2021_22", "recommended")

    assert result.exit_code == 0, result.output
    assert result.stdout == "Would delete images:\n  recommended\n  w_2021_22\n"
    assert result.stderr.splitlines() == [
        "recommended: its image sha256:22 is also tagged latest, which goes with it",
        DRY_RUN_NOTE,
    ]


@pytest.mark.parametrize("execute", [False, True], ids=["dry-run", "execute"])
def test_delete_gar_names_the_other_tags_of_each_version(
    fake_gar: FakeGAR, gar_config: Path, execute: bool
) -> None:
    flags = ["--execute"] if execute else []

    result = run("delete", "-c", str(gar_config), *flags, "w_2077_43")

    assert result.exit_code == 0, result.output
    note = "w_2077_43: its image sha256:43 is also tagged recommended, which goes with it"
    assert result.stderr.splitlines()[0] == note
    assert fake_gar.deleted_names == ([[f"{PACKAGE}/versions/sha256:43"]] if execute else [])


DRY_RUN_NOTE = "Dry run: nothing deleted; give --execute to delete."


# ---------------------------------------------------------------- a delete failing part-way


@pytest.mark.parametrize(
    ("failing", "deleted"),
    [
        ("sha256:21a", ["w_2021_21", "w_2021_21-arm64"]),
        ("sha256:21r", ["w_2021_21"]),
        ("sha256:21", []),
    ],
    ids=["third", "second", "first"],
)
def test_prune_docker_failing_part_way_reports_what_was_deleted(
    router: respx.MockRouter, docker_config: Path, failing: str, deleted: list[str]
) -> None:
    router.delete(f"{BASE}/manifests/{failing}").respond(400)  # before the registry's route
    registry = FakeRegistry(router, DOCKER_TAGS)

    result = run("prune", "-c", str(docker_config), "--execute")

    assert result.exit_code == 2
    assert result.stdout == "Deleted images:\n" + "".join(f"  {tag}\n" for tag in deleted)
    assert result.stderr == f"nublado: error: DELETE {BASE}/manifests/{failing}: status 400\n"
    assert len(registry.deleted) == len(deleted)


def test_delete_docker_failing_part_way_reports_what_was_deleted(
    router: respx.MockRouter, docker_config: Path
) -> None:
    router.delete(f"{BASE}/manifests/sha256:22").respond(403)
    registry = FakeRegistry(router, DOCKER_TAGS)

    result = run("delete", "-c", str(docker_config), "--execute", "w_2021_21", "w_2021_22")

    assert result.exit_code == 2
    assert result.stdout == "Deleted images:\n  w_2021_21\n"
    assert result.stderr.splitlines()[-1] == (
        f"nublado: error: DELETE {BASE}/manifests/sha256:22: status 403"
    )
    assert registry.deleted == ["sha256:21"]


def test_a_failure_before_deleting_prints_no_report(
    router: respx.MockRouter, docker_config: Path
) -> None:
    FakeRegistry(router, DOCKER_TAGS)

    result = run("delete", "-c", str(docker_config), "--execute", "w_2021_21", "nope")

    assert (result.exit_code, result.stdout) == (2, "")


@pytest.mark.parametrize("command", [["prune"], ["delete", "w_2077_42", "w_2077_41"]])
def test_gar_failing_part_way_reports_what_was_deleted(
    fake_gar: FakeGAR, gar_config: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setattr(gar_module, "GAR_DELETE_BATCH_SIZE", 1)
    fake_gar.delete_errors = [None, RefreshError("Token has been expired or revoked.")]

    result = run(command[0], "-c", str(gar_config), "--execute", *command[1:])

    assert result.exit_code == 2
    assert result.stdout == "Deleted images:\n  w_2077_42\n"
    assert result.stderr == (
        f"nublado: error: Deleting versions in {PACKAGE} failed:"
        " Token has been expired or revoked.\n"
    )
    assert "w_2077_41" in run("list", "-c", str(gar_config)).stdout


@pytest.mark.parametrize(
    "error",
    [
        RefreshError("invalid_grant: reauth related error (invalid_rapt)"),
        TransportError("Failed to retrieve\nhttp://metadata.google.internal/token"),
        DefaultCredentialsError("Your default credentials were not found."),
    ],
    ids=["refresh", "transport", "default-credentials"],
)
def test_gar_auth_errors_are_one_line_and_exit_2(
    fake_gar: FakeGAR, gar_config: Path, error: Exception
) -> None:
    fake_gar.list_errors = [error]

    result = run("list", "-c", str(gar_config))

    assert (result.exit_code, result.stdout) == (2, "")
    parent = PACKAGE.rsplit("/packages/", 1)[0]
    assert result.stderr == (
        f"nublado: error: Listing images in {parent} failed: {' '.join(str(error).split())}\n"
    )
    assert isinstance(result.exception, SystemExit)


# ---------------------------------------------------------------- credentials, progress


def test_credentials_option(router: respx.MockRouter, docker_config: Path) -> None:
    registry = FakeRegistry(router, DOCKER_TAGS)
    registry.require_auth = "Basic " + base64.b64encode(b"bwk:/.,/.,").decode()

    refused = run("list", "-c", str(docker_config))
    assert refused.exit_code == 2
    assert refused.stderr == f"nublado: error: No Docker API credentials available for {REGISTRY}\n"

    result = run("list", "-c", str(docker_config), "-a", str(CREDENTIALS))
    assert result.exit_code == 0, result.output
    assert len(result.stdout.split()) == len(DOCKER_TAGS)


def test_credentials_path_from_the_config(router: respx.MockRouter, tmp_path: Path) -> None:
    registry = FakeRegistry(router, DOCKER_TAGS)
    registry.require_auth = "Basic " + base64.b64encode(b"bwk:/.,/.,").decode()
    config = tmp_path / "docker.yaml"
    config.write_text(DOCKER_YAML + f"dockerCredentialsPath: {CREDENTIALS}\n")

    assert run("list", "-c", str(config)).exit_code == 0


@pytest.mark.parametrize(
    ("args", "env", "level"),
    [
        ([], {}, logging.INFO),
        (["-d"], {}, logging.DEBUG),
        (["--debug"], {}, logging.DEBUG),
        ([], {"DEBUG": "1"}, logging.DEBUG),
        ([], {"DEBUG": "garbage"}, logging.DEBUG),
        ([], {"DEBUG": "True"}, logging.DEBUG),
        ([], {"DEBUG": "yes"}, logging.DEBUG),
        ([], {"DEBUG": ""}, logging.INFO),
        ([], {"DEBUG": "0"}, logging.INFO),
        ([], {"DEBUG": "FALSE"}, logging.INFO),
        ([], {"DEBUG": "No"}, logging.INFO),
        ([], {"DEBUG": " off "}, logging.INFO),
        (["-d"], {"DEBUG": "0"}, logging.DEBUG),
        ([], {"NUBLADO_LOG_LEVEL": "warning"}, logging.WARNING),
    ],
    ids=[
        "default",
        "-d",
        "--debug",
        "DEBUG=1",
        "DEBUG=garbage",
        "DEBUG=True",
        "DEBUG=yes",
        "DEBUG=",
        "DEBUG=0",
        "DEBUG=FALSE",
        "DEBUG=No",
        "DEBUG=off",
        "-d-wins-over-DEBUG=0",
        "NUBLADO_LOG_LEVEL",
    ],
)
def test_log_level(
    fake_gar: FakeGAR, gar_config: Path, args: list[str], env: dict[str, str], level: int
) -> None:
    result = run("list", "-c", str(gar_config), *args, env=env)

    assert result.exit_code == 0, result.output
    assert logging.getLogger("nublado").level == level


def test_development_log_profile(fake_gar: FakeGAR, tmp_path: Path) -> None:
    config = tmp_path / "gar.yaml"
    config.write_text(GAR_YAML + "logProfile: development\n")

    result = run("delete", "-c", str(config), "nope")

    assert result.stderr.splitlines()[0] == "WARNING nublado: No image has the tag nope, skipped"


def test_mounted_pull_secret_is_the_default(
    router: respx.MockRouter, docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = FakeRegistry(router, DOCKER_TAGS)
    registry.require_auth = "Basic " + base64.b64encode(b"bwk:/.,/.,").decode()
    monkeypatch.setattr(images_cli, "default_credentials_path", CREDENTIALS)

    assert run("list", "-c", str(docker_config)).exit_code == 0


@pytest.mark.parametrize(("tty", "shown"), [(True, True), (False, False)])
def test_progress_bar_only_on_a_terminal(
    router: respx.MockRouter,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    tty: bool,
    shown: bool,
) -> None:
    FakeRegistry(router, DOCKER_TAGS)
    monkeypatch.setattr(images_cli, "PROGRESS_THRESHOLD", 5)
    monkeypatch.setattr(images_cli, "_stderr_is_tty", lambda: tty)

    result = run("prune", "-c", str(docker_config))

    assert result.exit_code == 0
    assert ("Resolving digests" in result.stderr) is shown
    assert result.stdout.startswith("Would delete images:\n")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "{path}: configuration file not found"),
        (
            "source: [",
            "{path}: invalid YAML at line 2, column 1: did not find expected node content",
        ),
        (DOCKER_YAML + "extra: 1\n", "{path}: extra: unknown key"),
        ("source: {type: docker, repository: a/b}\n", "No image prune filter defined in config"),
    ],
    ids=["missing", "bad-yaml", "unknown-key", "no-prune-policy"],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)

    result = run("prune", "-c", str(path))

    assert result.exit_code == 2
    assert result.stderr == f"nublado: error: {message.format(path=path)}\n"
    assert result.stdout == ""
    assert isinstance(result.exception, SystemExit)  # not a traceback


def test_registry_errors_are_one_line(router: respx.MockRouter, docker_config: Path) -> None:
    FakeRegistry(router, DOCKER_TAGS)

    result = run("delete", "-c", str(docker_config), "nope")

    assert result.exit_code == 2
    assert result.stderr == f"nublado: error: HEAD {BASE}/manifests/nope: status 404\n"


def test_missing_credentials_file(docker_config: Path, tmp_path: Path) -> None:
    result = run("list", "-c", str(docker_config), "-a", str(tmp_path / "none.json"))

    assert result.exit_code == 2
    assert (
        result.stderr
        == f"nublado: error: {tmp_path / 'none.json'}: Docker credentials file not found\n"
    )


def test_through_the_nublado_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("source: {type: docker, repository: a/b}\n")

    with pytest.raises(SystemExit) as info:
        main(["images", "prune", "-c", str(path)])
    assert info.value.code == 2
    assert capsys.readouterr().err == "nublado: error: No image prune filter defined in config\n"


def test_parse_stays_cheap_to_start() -> None:
    code = (
        "import sys, nublado.images.cli; "
        "print(sorted(m for m in ('httpx', 'tqdm', 'google.cloud', 'nublado.images.docker')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


def test_a_static_source_lists_its_tags_and_refuses_to_delete(tmp_path: Path) -> None:
    config = tmp_path / "static.yaml"
    config.write_text(
        "prune: {weekly: {number: 1}}\n"
        "source:\n  type: static\n  registry: lighthouse.ceres\n"
        "  repository: library/sketchbook\n"
        "  tags: {w_2077_43: 'sha256:5678', d_2077_10_23: 'sha256:1234', w_2077_44: 'sha256:44'}\n"
    )

    listed = run("list", "-c", str(config))
    pruned = run("prune", "-c", str(config))

    assert listed.exit_code == 0, listed.output
    assert listed.output == "w_2077_44\nw_2077_43\nd_2077_10_23\n"
    assert pruned.exit_code == 2
    assert "static image source has no registry to delete from" in pruned.output
