"""``nublado render``: the dry-run command, its outputs and its one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from reference_cases import INPUTS, REFERENCE_ENVIRON

from nublado.cli import main
from nublado.sandbox import Sandbox

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
    assert json.loads(as_json) == {
        "apiVersion": "v1",
        "kind": "List",
        "items": list(yaml.safe_load_all(as_yaml)),
    }


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_json_output_is_applied_by_kubectl_as_is(
    capsys: pytest.CaptureFixture[str], sandbox: Sandbox, tmp_path: Path
) -> None:
    _, out, _ = run(
        capsys, "lab", "--config", str(CONFIG / "standard.yaml"), *LAB_ARGS, "-o", "json"
    )
    (tmp_path / "lab.json").write_text(out)
    assert sandbox.url is not None

    result = subprocess.run(
        [
            "kubectl",
            "--server",
            sandbox.url,
            "--cache-dir",
            str(tmp_path / "cache"),
            "apply",
            "--server-side",
            "--field-manager=nublado",
            # kubectl checks a List against /openapi/v2, which the sandbox does not serve;
            # the server validates every object as it applies it.
            "--validate=false",
            "-f",
            str(tmp_path / "lab.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "no-kubeconfig")},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("serverside-applied") == 12
    assert "pod/rachel-nb serverside-applied" in result.stdout


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


IMAGE = "lighthouse.ceres/library/sketchbook:d_2077_10_23@sha256:1234"
LAB = ["lab", "--config", "CONFIG", "--user", "USER", "--spec", "SPEC", "--image", IMAGE]
PREPULL = ["prepuller", "--config", "CONFIG", "--metadata-dir", "META", "--node", "n", "--image"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["lab", "--config", "CONFIG"],
            "nublado: error: render lab needs --user, --spec, --image and --secrets"
            " (the configuration's lab.secrets or lab.pullSecret)\n",
        ),
        (
            ["prepuller", "--config", "CONFIG", "--node", ""],
            "nublado: error: render prepuller needs --image and --node\n",
        ),
        (
            [*PREPULL, "x:y@z"],
            "nublado: error: --image x:y@z: the digest is not algorithm:hex"
            " (like sha256:0123abcd)\n",
        ),
        (
            [*PREPULL, "a.b/c:d"],
            "nublado: error: --image a.b/c:d: needs both a tag and a digest (repo:tag@digest)\n",
        ),
        (
            [*PREPULL, "UPPER/Repo:tag@sha256:1234"],
            "nublado: error: --image UPPER/Repo:tag@sha256:1234: not a Docker image name (an"
            " optional registry host, then lower-case letters and digits separated by '.', '_',"
            " '__' or '-', in components joined by '/')\n",
        ),
        (
            [*PREPULL, IMAGE.replace("1234", "5678;rm")],
            f"nublado: error: --image {IMAGE.replace('1234', '5678;rm')}: the digest is not"
            " algorithm:hex (like sha256:0123abcd)\n",
        ),
        (
            [*PREPULL, "a.b/c:d\n@sha256:12"],
            "nublado: error: --image a.b/c:d\\n@sha256:12: the tag is not a Docker tag (up to 128"
            " letters, digits, '_', '.' and '-', not starting with '.' or '-')\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "MISSING"],
            "nublado: error: --user MISSING: No such file or directory\n",
        ),
        (
            ["lab", "--config", "BAD"],
            "nublado: error: lab.sizes[1].resources.limits.memory: ",
        ),
        (["lab", "--config", "NOPE"], "nublado: error: NOPE: configuration file not found\n"),
        (
            [*LAB, "--secrets", "BADSECRETS"],
            "nublado: error: --secrets BADSECRETS: nublado-secret: must map keys to strings\n",
        ),
        (
            [*LAB, "--secrets", "EMPTY"],
            "nublado: error: --secrets EMPTY: no secret nublado-secret (lab.secrets[0] copies"
            " from it); no secret extra-secret (lab.secrets[1] copies from it); no secret"
            " pull-secret (lab.pullSecret)\n",
        ),
        (
            [*LAB, "--secrets", "NOKEY"],
            "nublado: error: --secrets NOKEY: secret nublado-secret has no key butler-secret"
            " (lab.secrets[0].secretKey)\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--discovery", "BADDISCOVERY"],
            "nublado: error: --discovery BADDISCOVERY: not a discovery document (wrong shape)\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "INFINITEUSER"],
            "nublado: error: --user INFINITEUSER: invalid JSON: NaN is not a JSON number\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "LISTUSER"],
            "nublado: error: --user LISTUSER: must be a mapping, got a list\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "NEGATIVEUID"],
            "nublado: error: --user NEGATIVEUID: uid: must be a positive number (a lab does not"
            " run as root), got -1\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "NEGATIVEGID"],
            "nublado: error: --user NEGATIVEGID: gid: must be a positive number (a lab does not"
            " run as root), got -5\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "NEGATIVEGROUP"],
            "nublado: error: --user NEGATIVEGROUP: groups[1].id: must be between 0 and"
            " 2147483647, got -3\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "NEGATIVEQUOTA"],
            "nublado: error: --user NEGATIVEQUOTA: quota.notebook.memory: must be at least 0,"
            " got -1\n",
        ),
        (
            ["lab", "--config", "BADAPP"],
            "nublado: error: lab.application: 'Nublado Users!' is not a label value (letters,"
            " digits, '-', '_' and '.', starting and ending alphanumeric); it becomes the"
            " argocd.argoproj.io/instance label\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "HUGEUID"],
            "nublado: error: --user HUGEUID: uid: must be at most 2147483647 (the largest id"
            " Kubernetes accepts), got 2147483648\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "HUGEGROUP"],
            "nublado: error: --user HUGEGROUP: groups[0].id: must be between 0 and 2147483647,"
            " got 4294967295\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "BOOLUID"],
            "nublado: error: --user BOOLUID: uid: must be a whole number, got True\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "BOOLGROUP"],
            "nublado: error: --user BOOLGROUP: groups[0].id: must be a whole number, got True\n",
        ),
        (
            [*LAB[:5], "--spec", "BADSPECENV", *LAB[7:], "--secrets", "SECRETS"],
            "nublado: error: --spec BADSPECENV: env[\"1 X\"]: '1 X' is not a valid config"
            " key: at most 253 letters, digits, '-', '_' and '.' (it becomes a key of the lab's"
            " env ConfigMap)\n",
        ),
        (
            ["fileserver", "--config", "FILESERVER", "--user", "NEGATIVEUID"],
            "nublado: error: --user NEGATIVEUID: uid: must be a positive number (a fileserver"
            " does not run as root), got -1\n",
        ),
        (
            [*LAB, "--secrets", "SECRETS", "--user", "LONGUSER"],
            f"nublado: error: --user LONGUSER: username '{'a' * 80}' (80 characters) makes an"
            " object Kubernetes refuses: Namespace"
            f" userlabs-{'a' * 41}...{'a' * 12}: metadata.name: 'userlabs-{'a' * 41}...{'a' * 12}'"
            " is 89 characters, Kubernetes allows at most 63\n",
        ),
        (
            ["fsadmin", "--config", "CONFIG", "--metadata-dir", "EMPTYDIR"],
            "nublado: error: --metadata-dir EMPTYDIR: no name, namespace, uid files (the"
            " controller pod's name, namespace and uid, one file each)\n",
        ),
        (
            ["fsadmin", "--config", "NOMETADATA"],
            "nublado: error: metadataPath (or give --metadata-dir) EMPTYDIR: no name, namespace,"
            " uid files (the controller pod's name, namespace and uid, one file each)\n",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    user = json.loads((INPUTS / "users" / "rachel.json").read_text())
    (tmp_path / "empty").mkdir()
    replace = {
        "CONFIG": str(CONFIG / "standard.yaml"),
        "FILESERVER": str(CONFIG / "fileserver.yaml"),
        "BAD": str(_bad_config(tmp_path)),
        "NOPE": str(tmp_path / "nope.yaml"),
        "NOMETADATA": _write(
            tmp_path,
            "nometadata.yaml",
            (CONFIG / "fsadmin.yaml").read_text() + f"metadataPath: {tmp_path / 'empty'}\n",
        ),
        "EMPTYDIR": str(tmp_path / "empty"),
        "MISSING": str(tmp_path / "missing.json"),
        "META": str(INPUTS / "metadata"),
        "USER": str(INPUTS / "users" / "rachel.json"),
        "SPEC": str(INPUTS / "lab-specification.json"),
        "SECRETS": str(INPUTS / "secrets.json"),
        "EMPTY": _write(tmp_path, "empty.json", "{}"),
        "NOKEY": _write(
            tmp_path,
            "nokey.json",
            json.dumps(
                {"nublado-secret": {}, "extra-secret": {"db-password": "p"}, "pull-secret": {}}
            ),
        ),
        "BADSECRETS": _write(tmp_path, "secrets.json", '{"nublado-secret": {"k": 1}}'),
        "BADDISCOVERY": _write(tmp_path, "discovery.json", '{"datasets": {"x": 1}}'),
        "INFINITEUSER": _write(
            tmp_path, "user.json", '{"username": "rachel", "quota": {"notebook": {"cpu": NaN}}}'
        ),
        "LISTUSER": _write(tmp_path, "list.json", "[]"),
        "NEGATIVEUID": _write(tmp_path, "uid.json", json.dumps({**user, "uid": -1})),
        "NEGATIVEGID": _write(tmp_path, "gid.json", json.dumps({**user, "gid": -5})),
        "NEGATIVEGROUP": _write(
            tmp_path,
            "group.json",
            json.dumps({**user, "groups": [{"name": "a", "id": 1101}, {"name": "b", "id": -3}]}),
        ),
        "LONGUSER": _write(tmp_path, "long.json", json.dumps({**user, "username": "a" * 80})),
        "NEGATIVEQUOTA": _write(
            tmp_path,
            "quota.json",
            json.dumps({**user, "quota": {"notebook": {"cpu": 1, "memory": -1}}}),
        ),
        "BADAPP": _write(
            tmp_path,
            "badapp.yaml",
            (CONFIG / "standard.yaml")
            .read_text()
            .replace('application: "nublado-users"', 'application: "Nublado Users!"'),
        ),
        "HUGEUID": _write(tmp_path, "hugeuid.json", json.dumps({**user, "uid": 2**31})),
        "BOOLUID": _write(tmp_path, "booluid.json", json.dumps({**user, "uid": True})),
        "HUGEGROUP": _write(
            tmp_path,
            "hugegroup.json",
            json.dumps({**user, "groups": [{"name": "a", "id": 2**32 - 1}]}),
        ),
        "BOOLGROUP": _write(
            tmp_path, "boolgroup.json", json.dumps({**user, "groups": [{"name": "a", "id": True}]})
        ),
        "BADSPECENV": _write(
            tmp_path,
            "badspec.json",
            json.dumps(
                {
                    **json.loads((INPUTS / "lab-specification.json").read_text()),
                    "env": {"JUPYTERHUB_SERVICE_PREFIX": "/user/rachel", "1 X": "x"},
                }
            ),
        ),
    }
    code, out, err = run(capsys, *[replace.get(a, a) for a in args])

    expected = message
    for name, value in sorted(replace.items(), key=lambda item: -len(item[0])):
        expected = expected.replace(name, value)
    assert (code, out) == (2, "")
    assert err.startswith(expected)
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
    assert err == (
        f"nublado: error: --spec {tmp_path / 'spec.json'}: options: No image to spawn specified\n"
        f"nublado: error: --spec {tmp_path / 'spec.json'}: env: required but missing\n"
    )


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


def _entry_point(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nublado", "render", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **REFERENCE_ENVIRON},
    )


def test_ignored_keys_are_warned_once_each_with_the_prefix() -> None:
    result = _entry_point(
        "fsadmin",
        "--config",
        str(CONFIG / "standard.yaml"),
        "--metadata-dir",
        str(INPUTS / "metadata"),
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "nublado: warning: Ignoring configuration key fsadmin.command",
        "nublado: warning: Ignoring configuration key fsadmin.image",
        "nublado: warning: Ignoring configuration key lab.tolerations[0].tolerationSeconds:"
        " Kubernetes allows it only with effect NoExecute",
    ]


def test_an_ignored_key_close_to_a_known_one_gets_a_suggestion(tmp_path: Path) -> None:
    text = (CONFIG / "fsadmin.yaml").read_text() + "  podname: admin\n"
    (tmp_path / "config.yaml").write_text(text)

    result = _entry_point(
        "fsadmin",
        "--config",
        str(tmp_path / "config.yaml"),
        "--metadata-dir",
        str(INPUTS / "metadata"),
    )

    assert result.returncode == 0, result.stderr
    assert (
        "nublado: warning: Ignoring configuration key fsadmin.podname (did you mean podName?)"
        in result.stderr.splitlines()
    )


def test_an_error_through_the_entry_point_is_one_line(tmp_path: Path) -> None:
    user = json.loads((INPUTS / "users" / "rachel.json").read_text())
    (tmp_path / "user.json").write_text(json.dumps({**user, "username": "b" * 80}))

    result = _entry_point(
        "fileserver",
        "--config",
        str(CONFIG / "fileserver.yaml"),
        "--user",
        str(tmp_path / "user.json"),
    )

    errors = [
        line for line in result.stderr.splitlines() if not line.startswith("nublado: warning:")
    ]
    assert (result.returncode, result.stdout) == (2, "")
    assert len(errors) == 1
    assert errors[0].startswith(
        f"nublado: error: --user {tmp_path / 'user.json'}: username '{'b' * 80}' (80 characters)"
        " makes an object Kubernetes refuses: "
    )
    assert errors[0].endswith("Kubernetes allows at most 63")


SITE_CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: site
  namespace: {{ lab.namespace | q }}
  labels: {route: {{ lab.env.API_ROUTE | q }}}
"""


def test_a_refused_value_is_blamed_on_the_input_key_that_holds_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A site template labels with a configured value: the error names that key."""
    (tmp_path / "site" / "lab").mkdir(parents=True)
    (tmp_path / "site" / "lab" / "set.yaml").write_text("- cm.yaml\n")
    (tmp_path / "site" / "lab" / "cm.yaml").write_text(SITE_CONFIG_MAP)
    config = str(CONFIG / "standard.yaml")
    args = [
        *LAB,
        "--secrets",
        str(INPUTS / "secrets.json"),
        "--template-dir",
        str(tmp_path / "site"),
    ]
    replace = {
        "CONFIG": config,
        "USER": str(INPUTS / "users" / "rachel.json"),
        "SPEC": str(INPUTS / "lab-specification.json"),
    }

    code, out, err = run(capsys, *[replace.get(a, a) for a in args])

    assert (code, out) == (2, "")
    assert err == (
        f"nublado: error: --config {config}: lab.env.API_ROUTE: '/api' makes an object"
        " Kubernetes refuses: ConfigMap site: metadata.labels[route]: '/api' is not a label"
        " value (letters, digits, '-', '_' and '.', starting and ending alphanumeric)\n"
    )
