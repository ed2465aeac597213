"""``nublado render``: the dry-run command, its outputs and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from reference_cases import INPUTS, REFERENCE_ENVIRON

from nublado.cli import main

CONFIG = INPUTS / "config"
LAB_ARGS = [
    "--user",
    str(INPUTS / "users" / "rachel.json"),
    "--spec",
    str(INPUTS / "lab-specification.json"),
    "--image",
    "lighthouse.ceres/library/sketchbook:d_2077_10_23@sha256:1234",
    "--secrets",
    str(INPUTS / "secrets.json"),
    "--discovery",
    str(INPUTS / "discovery.json"),
    "--metadata-dir",
    str(INPUTS / "metadata"),
    "--node",
    "node2",
]


@pytest.fixture(autouse=True)
def _reference_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in REFERENCE_ENVIRON.items():
        monkeypatch.setenv(key, value)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["render", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_lab_yaml_is_every_object_in_apply_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lab", "--config", str(CONFIG / "standard.yaml"), *LAB_ARGS)

    documents = list(yaml.safe_load_all(out))
    assert code == 0
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Namespace", "userlabs-rachel"),
        ("PersistentVolumeClaim", "rachel-nb-pvc-scratch"),
        ("PersistentVolumeClaim", "rachel-nb-pvc-temporary"),
        ("ConfigMap", "rachel-nb-env"),
        ("ConfigMap", "rachel-nb-nss"),
        ("ConfigMap", "rachel-nb-files"),
        ("Secret", "rachel-nb"),
        ("Secret", "pull-secret"),
        ("ResourceQuota", "rachel-nb"),
        ("NetworkPolicy", "rachel-nb"),
        ("Service", "lab"),
        ("Pod", "rachel-nb"),
    ]


def test_json_output_equals_yaml_output(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", str(CONFIG / "standard.yaml"), *LAB_ARGS, "--token", "t"]
    _, as_yaml, _ = run(capsys, "lab", *args)
    code, as_json, _ = run(capsys, "lab", *args, "-o", "json")

    assert code == 0
    assert json.loads(as_json) == list(yaml.safe_load_all(as_yaml))


@pytest.mark.parametrize(
    ("set_name", "config", "kinds"),
    [
        (
            "fileserver",
            "fileserver",
            ["PersistentVolumeClaim", "GafaelfawrIngress", "Service", "Job"],
        ),
        ("fsadmin", "fsadmin", ["PersistentVolumeClaim", "Pod"]),
        ("prepuller", "standard", ["Pod"]),
    ],
)
def test_other_sets_ignore_inputs_they_do_not_need(
    capsys: pytest.CaptureFixture[str], set_name: str, config: str, kinds: list[str]
) -> None:
    code, out, _ = run(capsys, set_name, "--config", str(CONFIG / f"{config}.yaml"), *LAB_ARGS)

    assert code == 0
    assert [d["kind"] for d in yaml.safe_load_all(out)] == kinds


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _bad_config(tmp_path: Path) -> Path:
    text = (CONFIG / "standard.yaml").read_text().replace("memory: 6Gi", "memory: 3Gx")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lab", "--config", "CONFIG"], "nublado: error: render lab needs --user\n"),
        (
            ["prepuller", "--config", "CONFIG", "--metadata-dir", "META", "--image", "x:y@z"],
            "nublado: error: --image x:y@z: ",
        ),
        (
            ["prepuller", "--config", "CONFIG", "--metadata-dir", "META", "--image", "a.b/c:d"],
            "nublado: error: --image a.b/c:d: needs both a tag and a digest",
        ),
        (["lab", "--config", "CONFIG", "--user", "MISSING"], "nublado: error: --user "),
        (["lab", "--config", "BAD"], "nublado: error: lab.sizes[1].resources.limits.memory: "),
        (["lab", "--config", "NOPE"], "nublado: error: "),
        (
            [
                "prepuller",
                "--config",
                "CONFIG",
                "--metadata-dir",
                "META",
                "--image",
                "a.b/c:d@e",
                "--node",
                "",
            ],
            "nublado: error: render prepuller needs --node",
        ),
        (
            [
                "lab",
                "--config",
                "CONFIG",
                "--user",
                "USER",
                "--spec",
                "SPEC",
                "--image",
                "a.b/c:d@e",
                "--secrets",
                "BADSECRETS",
            ],
            "nublado: error: --secrets ",
        ),
        (
            [
                "lab",
                "--config",
                "CONFIG",
                "--user",
                "USER",
                "--spec",
                "SPEC",
                "--image",
                "a.b/c:d@e",
                "--discovery",
                "BADDISCOVERY",
            ],
            "nublado: error: --discovery ",
        ),
        (
            [
                "lab",
                "--config",
                "CONFIG",
                "--user",
                "INFINITEUSER",
                "--spec",
                "SPEC",
                "--image",
                "a.b/c:d@e",
            ],
            "nublado: error: --user ",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    replace = {
        "CONFIG": str(CONFIG / "standard.yaml"),
        "BAD": str(_bad_config(tmp_path)),
        "NOPE": str(tmp_path / "nope.yaml"),
        "MISSING": str(tmp_path / "missing.json"),
        "META": str(INPUTS / "metadata"),
        "USER": str(INPUTS / "users" / "rachel.json"),
        "SPEC": str(INPUTS / "lab-specification.json"),
        "BADSECRETS": _write(tmp_path, "secrets.json", '{"nublado-secret": {"k": 1}}'),
        "BADDISCOVERY": _write(tmp_path, "discovery.json", '{"datasets": {"x": 1}}'),
        "INFINITEUSER": _write(
            tmp_path, "user.json", '{"username": "rachel", "quota": {"notebook": {"cpu": NaN}}}'
        ),
    }
    code, out, err = run(capsys, *[replace.get(a, a) for a in args])

    assert (code, out) == (2, "")
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_unknown_size_names_the_configured_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"options": {"image_class": "recommended", "size": "huge"}, "env": {}}
    spec["env"] = {"JUPYTERHUB_SERVICE_PREFIX": "/nb/user/rachel/"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    args = [
        a if a != str(INPUTS / "lab-specification.json") else str(tmp_path / "spec.json")
        for a in LAB_ARGS
    ]

    code, _, err = run(capsys, "lab", "--config", str(CONFIG / "fsadmin.yaml"), *args)

    assert code == 2
    assert err == (
        "nublado: error: --spec: options.size: huge is not a configured size (configured: small)\n"
    )


def test_invalid_spec_lists_each_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "spec.json").write_text(json.dumps({"options": {"size": "small"}}))
    args = [
        a if a != str(INPUTS / "lab-specification.json") else str(tmp_path / "spec.json")
        for a in LAB_ARGS
    ]

    code, _, err = run(capsys, "lab", "--config", str(CONFIG / "standard.yaml"), *args)

    assert code == 2
    assert "options: Value error, No image to spawn specified" in err
    assert "env: Field required" in err


def test_cold_start_does_not_import_kubernetes_or_web_stack() -> None:
    code = (
        "import sys; from nublado.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = ('kubernetes', 'starlette', 'httpx', 'aiohttp', 'uvicorn')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "print('IMPORTED', bad, file=sys.stderr)\n"
    )
    args = ["render", "lab", "--config", str(CONFIG / "standard.yaml"), *LAB_ARGS]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )

    assert "IMPORTED []" in result.stderr
    assert result.stdout.startswith("---\napiVersion: v1\nkind: Namespace\n")


def test_entry_point_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nublado",
            "render",
            "fsadmin",
            "--config",
            str(CONFIG / "fsadmin.yaml"),
            "--metadata-dir",
            str(INPUTS / "metadata"),
        ],
        capture_output=True,
        text=True,
    )
    documents: list[Any] = list(yaml.safe_load_all(result.stdout))

    assert result.returncode == 0, result.stderr
    assert documents[-1]["metadata"]["name"] == "fsadmin"
