"""``nublado diff`` against the served sandbox: labs and file servers made by the real
services from examples/config.yaml, then the command run as a user runs it (with a
kubeconfig pointing at the sandbox), its output and exit status checked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing
import yaml

from nublado.cli import main
from nublado.config import Config, load_config
from nublado.diff import Finding, render_json
from nublado.kube.client import KubernetesClient
from nublado.models.lab import LabSpecification
from nublado.models.user import UserInfo
from nublado.render.cli import read_secrets
from nublado.render.engine import Renderer
from nublado.sandbox.server import Sandbox, SandboxSettings, write_kubeconfig
from nublado.services.drift import FieldDrift, ObjectDrift, Remedy
from nublado.services.fileservers import FileServerService
from nublado.services.images import ImageService, build_image_source
from nublado.services.labs import LabService
from nublado.services.labstate import format_time

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CONFIG = EXAMPLES / "config.yaml"
CONTROLLER_NAMESPACE = "nublado"
BASE_URL = "https://rsp.example.com"
USERS = {u["username"]: u for u in json.loads((EXAMPLES / "users.json").read_text())}


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(pod_grace_scale=0.0)


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> Config:
    """examples/config.yaml as the command loads it (file servers need an https base URL)."""
    monkeypatch.setenv("EXTERNAL_INSTANCE_URL", BASE_URL)
    return load_config(CONFIG)


@pytest.fixture
def kubeconfig(sandbox: Sandbox, tmp_path: Path) -> Path:
    assert sandbox.url is not None
    return write_kubeconfig(tmp_path / "kubeconfig", sandbox.url)


@dataclass
class Controller:
    labs: LabService
    fileservers: FileServerService

    async def spawn(self, username: str, env: dict[str, str] | None = None) -> None:
        """The user's lab, spawned as the REST API does (with ``env`` added), to its end."""
        spec = json.loads((EXAMPLES / "lab-specification.json").read_text())
        spec["env"]["JUPYTERHUB_SERVICE_PREFIX"] = f"/nb/user/{username}/"
        spec["env"].update(env or {})
        user = UserInfo.model_validate(USERS[username])
        await self.labs.create(user, f"token-of-{username}", LabSpecification.model_validate(spec))
        async with asyncio.timeout(10):
            events = [e async for e in await self.labs.events(username)]
        assert events[-1].event == "complete", events

    async def fileserver(self, username: str) -> None:
        await self.fileservers.ensure(UserInfo.model_validate(USERS[username]))


@pytest.fixture
async def controller(
    config: Config, client: KubernetesClient, sandbox: Sandbox
) -> AsyncIterator[Controller]:
    """The lab and file-server services on the sandbox, seeded as ``serve --sandbox`` seeds it."""
    await client.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONTROLLER_NAMESPACE}}
    )
    for name, secret in read_secrets(EXAMPLES / "secrets.json").items():
        manifest: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": CONTROLLER_NAMESPACE},
            "data": secret.data,
        }
        if secret.type is not None:
            manifest["type"] = secret.type
        await client.create(manifest)
    discovery = json.loads((EXAMPLES / "discovery.json").read_text())

    async def read_discovery() -> dict[str, Any]:
        return dict(discovery)

    renderer = Renderer(config.template_dirs)
    async with httpx.AsyncClient() as http:
        images = ImageService(config, build_image_source(config.images, http), client)
        await images.refresh()
        labs = LabService(
            config,
            client,
            images,
            renderer,
            namespace=CONTROLLER_NAMESPACE,
            identity="replica-a",
            discovery=read_discovery,
        )
        fileservers = FileServerService(
            config, client, renderer, namespace=CONTROLLER_NAMESPACE, identity="replica-a"
        )
        # The services' log lines would land in the command's captured stdout.
        with structlog.testing.capture_logs():
            await labs.start()
            await fileservers.start()
            try:
                yield Controller(labs, fileservers)
            finally:
                await fileservers.stop()
                await labs.stop()


@dataclass
class Run:
    status: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def diff(kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """Runs ``nublado diff ARGS --config examples/config.yaml --kubeconfig K`` in a thread.

    The command runs its own event loop (asyncio.run), so not on the test's;
    the services keep running on the test's loop meanwhile.
    """

    async def run(*args: str, config: Path = CONFIG, kube: Path | None = None) -> Run:
        argv = ["diff", *args, "--config", str(config), "--kubeconfig", str(kube or kubeconfig)]

        def call() -> int:
            try:
                return main(argv)
            except SystemExit as exc:
                return int(exc.code or 0)

        status = await asyncio.to_thread(call)
        captured = capsys.readouterr()
        return Run(status, captured.out, captured.err)

    return run


def titles(run: Run) -> list[tuple[str, str, str, bool, str]]:
    return [
        (d["set"], d["user"], f"{d['kind']}/{d['name']}", d["missing"], d["remedy"])
        for d in run.json()
    ]


# No drift


async def test_a_just_spawned_lab_and_file_server_show_no_drift(
    controller: Controller, diff: Any
) -> None:
    await controller.spawn("rachel")
    await controller.fileserver("rachel")
    for args in (["lab", "rachel"], ["fileserver", "rachel"], ["--all"]):
        run = await diff(*args)
        assert (run.status, run.out, run.err) == (0, "", ""), args
        run = await diff(*args, "-o", "json")
        assert (run.status, run.json(), run.err) == (0, [], ""), args


# Missing objects


@pytest.mark.parametrize(
    ("kind", "name"),
    [("NetworkPolicy", "rachel-nb"), ("ConfigMap", "rachel-nb-nss"), ("Service", "lab")],
)
async def test_a_deleted_object_shows_missing(
    controller: Controller, diff: Any, sandbox: Sandbox, kind: str, name: str
) -> None:
    await controller.spawn("rachel")
    sandbox.delete(kind, name, "userlabs-rachel")
    run = await diff("lab", "rachel", "-o", "json")
    assert run.status == 1
    assert titles(run) == [("lab", "rachel", f"{kind}/{name}", True, "create")]
    assert run.json()[0]["fields"] == []

    run = await diff("lab", "rachel")
    assert run.status == 1
    lines = run.out.splitlines()
    title = f"{kind}/userlabs-rachel/{name}"
    assert lines[0] == f"# {title} (lab of rachel): missing, create: missing: apply creates it"
    assert lines[1:3] == [f"--- live/{title}", f"+++ desired/{title}"]
    assert lines[3].startswith("@@ -0,0 +1,")
    assert all(line.startswith("+") for line in lines[4:])
    assert f"+kind: {kind}" in lines


async def test_a_deleted_file_server_service_shows_missing(
    controller: Controller, diff: Any, sandbox: Sandbox
) -> None:
    await controller.fileserver("rachel")
    sandbox.delete("Service", "rachel-fs", "fileservers")
    run = await diff("fileserver", "rachel", "-o", "json")
    assert run.status == 1
    assert titles(run) == [("fileserver", "rachel", "Service/rachel-fs", True, "create")]


# Changed objects


async def test_an_edited_label_shows_the_field(
    controller: Controller, diff: Any, client: KubernetesClient
) -> None:
    await controller.spawn("rachel")
    service = await client.get("Service", "lab", "userlabs-rachel")
    service["metadata"]["labels"]["nublado.lsst.io/category"] = "edited"
    await client.replace(service)

    run = await diff("lab", "rachel", "-o", "json")
    assert run.status == 1
    assert titles(run) == [("lab", "rachel", "Service/lab", False, "apply")]
    assert run.json()[0]["fields"] == [
        {"path": 'metadata.labels["nublado.lsst.io/category"]', "live": "edited", "desired": "lab"}
    ]
    run = await diff("lab", "rachel")
    assert run.out.splitlines() == [
        "# Service/userlabs-rachel/lab (lab of rachel): apply: apply fixes it in place",
        "--- live/Service/userlabs-rachel/lab",
        "+++ desired/Service/userlabs-rachel/lab",
        "@@ -6,7 +6,7 @@",
        "     argocd.argoproj.io/sync-options: Prune=false",
        "   labels:",
        "     argocd.argoproj.io/instance: nublado-users",
        "-    nublado.lsst.io/category: edited",
        "+    nublado.lsst.io/category: lab",
        "     nublado.lsst.io/user: rachel",
        "   name: lab",
        "   namespace: userlabs-rachel",
    ]


async def recreate(
    client: KubernetesClient, sandbox: Sandbox, kind: str, name: str, **data: str
) -> None:
    """Delete an immutable object and create it again with some values changed."""
    obj = await client.get(kind, name, "userlabs-rachel")
    sandbox.delete(kind, name, "userlabs-rachel")
    metadata = {k: obj["metadata"][k] for k in ("name", "namespace", "labels", "annotations")}
    await client.create({**obj, "metadata": metadata, "data": {**obj["data"], **data}})


async def test_a_changed_configmap_value_shows_the_field(
    controller: Controller, diff: Any, client: KubernetesClient, sandbox: Sandbox
) -> None:
    await controller.spawn("rachel")
    await recreate(client, sandbox, "ConfigMap", "rachel-nb-env", CPU_LIMIT="9.0")
    run = await diff("lab", "rachel", "-o", "json")
    assert run.status == 1
    assert titles(run) == [("lab", "rachel", "ConfigMap/rachel-nb-env", False, "replace")]
    [found] = run.json()
    assert found["fields"] == [{"path": "data.CPU_LIMIT", "live": "9.0", "desired": "1.0"}]
    assert "immutable" in found["refused"]
    run = await diff("lab", "rachel")
    assert "-  CPU_LIMIT: '9.0'\n+  CPU_LIMIT: '1.0'\n" in run.out


async def test_secret_values_are_masked(
    controller: Controller, diff: Any, client: KubernetesClient, sandbox: Sandbox
) -> None:
    """A lab Secret gone took the user's token with it: reported, its values never shown."""
    await controller.spawn("rachel")
    secret = await client.get("Secret", "rachel-nb", "userlabs-rachel")
    sandbox.delete("Secret", "rachel-nb", "userlabs-rachel")
    run = await diff("lab", "rachel", "-o", "json")
    assert run.status == 1
    assert titles(run) == [("lab", "rachel", "Secret/rachel-nb", True, "report")]
    assert run.json()[0]["reason"] == "the lab Secret is gone with the user's token: reported"
    run = await diff("lab", "rachel")
    assert "+  butler-secret: '***'\n" in run.out
    assert "+  token: '***'\n" in run.out
    for value in secret["data"].values():
        assert value not in run.out


async def test_changed_secret_metadata_shows_masked_values(
    controller: Controller, diff: Any, client: KubernetesClient
) -> None:
    await controller.spawn("rachel")
    secret = await client.get("Secret", "rachel-nb", "userlabs-rachel")
    secret["metadata"]["labels"]["nublado.lsst.io/category"] = "edited"
    await client.replace(secret)
    run = await diff("lab", "rachel")
    assert run.status == 1
    assert "-    nublado.lsst.io/category: edited\n+    nublado.lsst.io/category: lab\n" in run.out
    for value in secret["data"].values():
        assert value not in run.out


async def test_a_changed_pod_image_is_report_only(
    controller: Controller, diff: Any, client: KubernetesClient
) -> None:
    await controller.spawn("rachel")
    pod = await client.get("Pod", "rachel-nb", "userlabs-rachel")
    desired = pod["spec"]["containers"][0]["image"]
    pod["spec"]["containers"][0]["image"] = "lighthouse.ceres/library/sketchbook:other"
    await client.replace(pod)
    run = await diff("lab", "rachel", "-o", "json")
    assert run.status == 1
    assert titles(run) == [("lab", "rachel", "Pod/rachel-nb", False, "report")]
    [found] = run.json()
    assert found["reason"] == "the pod's spec changed: reported, never fixed by deleting it"
    assert found["fields"] == [
        {
            "path": "spec.containers[name=notebook].image",
            "live": "lighthouse.ceres/library/sketchbook:other",
            "desired": desired,
        }
    ]


async def test_a_changed_pod_env_is_report_only(
    controller: Controller, diff: Any, sandbox: Sandbox
) -> None:
    """An env change apply cannot make (pods refuse it) is compared locally and reported."""
    await controller.spawn("rachel")

    def mutate(pod: dict[str, Any]) -> None:
        pod["spec"]["containers"][0]["env"][0]["name"] = "EDITED_TOKEN"

    with sandbox.cluster.store.lock:
        sandbox.cluster.update_internal("Pod", "userlabs-rachel", "rachel-nb", mutate, "editor")
    run = await diff("lab", "rachel", "-o", "json")
    assert run.status == 1
    assert titles(run) == [("lab", "rachel", "Pod/rachel-nb", False, "report")]
    [found] = run.json()
    assert "pod updates may not change fields" in found["refused"]
    assert found["fields"] == [
        {
            "path": "spec.containers[name=notebook].env[0].name",
            "live": "EDITED_TOKEN",
            "desired": "ACCESS_TOKEN",
        }
    ]
    run = await diff("lab", "rachel")
    assert '# the dry-run apply was refused: Pod "rachel-nb" is invalid' in run.out
    assert "-    - name: EDITED_TOKEN\n" in run.out
    assert "+    - name: ACCESS_TOKEN\n" in run.out


# --all


async def test_all_covers_every_lab_and_file_server(
    controller: Controller, diff: Any, client: KubernetesClient, sandbox: Sandbox
) -> None:
    for username in ("rachel", "hypatia", "ada"):
        await controller.spawn(username)
    await controller.fileserver("rachel")
    await controller.fileserver("hypatia")
    run = await diff("--all")
    assert (run.status, run.out) == (0, "")

    sandbox.delete("NetworkPolicy", "ada-nb", "userlabs-ada")
    sandbox.delete("ConfigMap", "hypatia-nb-files", "userlabs-hypatia")
    sandbox.delete("Service", "hypatia-fs", "fileservers")
    ingress = await client.get("GafaelfawrIngress", "rachel-fs", "fileservers")
    ingress["metadata"]["labels"]["nublado.lsst.io/category"] = "edited"  # out of the LIST
    await client.replace(ingress)

    run = await diff("--all", "-o", "json")
    assert run.status == 1
    assert titles(run) == [
        ("lab", "ada", "NetworkPolicy/ada-nb", True, "create"),
        ("lab", "hypatia", "ConfigMap/hypatia-nb-files", True, "create"),
        ("fileserver", "hypatia", "Service/hypatia-fs", True, "create"),
        ("fileserver", "rachel", "GafaelfawrIngress/rachel-fs", False, "apply"),
    ]
    assert run.json()[3]["fields"] == [
        {
            "path": 'metadata.labels["nublado.lsst.io/category"]',
            "live": "edited",
            "desired": "fileserver",
        }
    ]


# Errors


async def test_errors_are_one_line_and_status_2(
    controller: Controller, diff: Any, tmp_path: Path
) -> None:
    await controller.spawn("rachel")
    missing = tmp_path / "absent.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("lab: [\n")
    dead = write_kubeconfig(tmp_path / "dead", "http://127.0.0.1:9")
    cases: list[tuple[tuple[str, ...], dict[str, Any], str]] = [
        (("lab", "nobody"), {}, "nublado: error: no lab found for user nobody"),
        (("fileserver", "rachel"), {}, "nublado: error: no file server found for user rachel"),
        ((), {}, "nublado: error: give lab USER, fileserver USER or --all"),
        (("lab",), {}, "nublado: error: give lab USER, fileserver USER or --all"),
        (
            ("lab", "rachel", "--all"),
            {},
            "nublado: error: give either --all or lab|fileserver USER, not both",
        ),
        (
            ("lab", "rachel"),
            {"kube": missing},
            f"nublado: error: cannot load kubeconfig {missing}: the file does not exist\n",
        ),
        (
            ("lab", "rachel"),
            {"kube": bad},
            f"nublado: error: cannot load kubeconfig {bad}: not valid YAML (line 2)\n",
        ),
        (("lab", "rachel"), {"kube": dead}, "nublado: error: "),
        (("lab", "rachel"), {"config": missing}, "nublado: error: "),
        (("lab", "rachel"), {"config": bad}, "nublado: error: "),
    ]
    for args, options, start in cases:
        run = await diff(*args, **options)
        assert run.status == 2, (args, options, run)
        assert run.out == ""
        assert run.err.startswith(start), (args, options, run.err)
        assert run.err.count("\n") == 1, (args, options, run.err)


async def test_a_vanished_pod_is_reported_from_the_lab_record(
    controller: Controller, diff: Any, sandbox: Sandbox
) -> None:
    """The record (Lease) in the controller's namespace (examples/metadata) stands in for it."""
    await controller.spawn("rachel")
    await controller.spawn("ada")
    sandbox.delete("NetworkPolicy", "rachel-nb", "userlabs-rachel")
    sandbox.delete("Pod", "ada-nb", "userlabs-ada")
    run = await diff("--all", "-o", "json")
    assert (run.status, run.err) == (1, "")
    assert titles(run) == [
        ("lab", "ada", "Pod/ada-nb", True, "report"),
        ("lab", "rachel", "NetworkPolicy/rachel-nb", True, "create"),
    ]


async def test_a_lab_that_cannot_be_rebuilt_is_an_error_and_the_others_are_shown(
    controller: Controller, diff: Any, sandbox: Sandbox
) -> None:
    await controller.spawn("rachel")
    await controller.spawn("ada")
    await controller.labs.stop()
    sandbox.delete("NetworkPolicy", "rachel-nb", "userlabs-rachel")
    sandbox.delete("Pod", "ada-nb", "userlabs-ada")
    sandbox.delete("Lease", "lab-ada", CONTROLLER_NAMESPACE)
    run = await diff("--all", "-o", "json")
    assert run.status == 2
    assert titles(run) == [("lab", "rachel", "NetworkPolicy/rachel-nb", True, "create")]
    assert run.err == (
        "nublado: error: lab of ada: cannot rebuild the lab of ada: no pod and no lab record\n"
    )


async def test_a_lab_whose_dry_run_is_refused_is_an_error_and_the_others_are_shown(
    controller: Controller, diff: Any, sandbox: Sandbox
) -> None:
    """A Forbidden dry run (the controller's rights lack a kind) is that lab's problem only."""
    await controller.spawn("rachel")
    await controller.spawn("ada")
    sandbox.delete("NetworkPolicy", "rachel-nb", "userlabs-rachel")
    sandbox.inject_fault("PATCH", "/api/v1/namespaces/userlabs-ada/*", status=403, count=None)
    run = await diff("--all", "-o", "json")
    assert run.status == 2
    assert titles(run) == [("lab", "rachel", "NetworkPolicy/rachel-nb", True, "create")]
    assert run.err == "nublado: error: lab of ada: injected fault: 403 Forbidden (403 Forbidden)\n"


async def test_a_lab_mid_operation_is_not_compared(
    controller: Controller, diff: Any, client: KubernetesClient, sandbox: Sandbox
) -> None:
    await controller.spawn("rachel")
    await controller.labs.stop()
    sandbox.delete("NetworkPolicy", "rachel-nb", "userlabs-rachel")
    lease = await client.get("Lease", "lab-rachel", CONTROLLER_NAMESPACE)
    lease["metadata"]["annotations"]["nublado.lsst.io/operation"] = "delete"
    lease["metadata"]["annotations"]["nublado.lsst.io/result"] = ""
    lease["spec"] = {
        "holderIdentity": "replica-b",
        "leaseDurationSeconds": 3600,
        "renewTime": format_time(datetime.now(UTC)),
    }
    await client.replace(lease)
    run = await diff("lab", "rachel")
    assert (run.status, run.out, run.err) == (
        2,
        "",
        "nublado: error: lab of rachel: a delete is in progress\n",
    )
    run = await diff("--all")
    assert (run.status, run.out, run.err) == (0, "", "")


# The installed command


def run_process(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nublado", "diff", *args, "--config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "PYTHONPATH": str(ROOT),
            "EXTERNAL_INSTANCE_URL": BASE_URL,
        },
    )


def test_the_command_runs_as_a_process(kubeconfig: Path, tmp_path: Path) -> None:
    """``python -m nublado diff`` in its own process: registered, lazy, exit status 2 on error."""
    result = run_process("lab", "nobody", "--kubeconfig", str(kubeconfig), home=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "nublado: error: no lab found for user nobody\n"


def test_without_a_kubeconfig_it_is_the_in_cluster_configuration(tmp_path: Path) -> None:
    """No --kubeconfig, $KUBECONFIG or ~/.kube/config: the pod's service account, as serve."""
    result = run_process("--all", home=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("nublado: error: cannot load in-cluster configuration: ")
    assert result.stderr.count("\n") == 1


# Secrets in the env ConfigMap (the hub sends its API token in the spawn env)

HUB_ENV = {"JUPYTERHUB_API_TOKEN": "hub-secret-1", "FAVOURITE_COLOUR": "teal"}


def desired_yaml(run: Run) -> Any:
    """The desired object of a one-object unified diff whose live object is missing."""
    lines = run.out.splitlines()
    body = [line[1:] for line in lines if line.startswith("+") and not line.startswith("+++")]
    return yaml.safe_load("\n".join(body))


async def test_a_deleted_env_is_rebuilt_from_the_record_which_holds_no_secret(
    controller: Controller, diff: Any, sandbox: Sandbox
) -> None:
    """diff renders a deleted env as the reconcile recreates it: the spawner's keys from the
    record, whose Lease never held the hub's token (its key only)."""
    await controller.spawn("rachel", HUB_ENV)
    env = sandbox.get("ConfigMap", "rachel-nb-env", "userlabs-rachel")
    assert env is not None
    assert env["data"]["JUPYTERHUB_API_TOKEN"] == "hub-secret-1"
    lease = sandbox.get("Lease", "lab-rachel", CONTROLLER_NAMESPACE)
    assert lease is not None
    assert "hub-secret-1" not in json.dumps(lease)
    recorded = json.loads(lease["metadata"]["annotations"]["nublado.lsst.io/spawn-env"])
    assert recorded["JUPYTERHUB_API_TOKEN"] is None
    assert recorded["FAVOURITE_COLOUR"] == "teal"

    sandbox.delete("ConfigMap", "rachel-nb-env", "userlabs-rachel")
    run = await diff("lab", "rachel")

    assert (run.status, run.err) == (1, "")
    desired = desired_yaml(run)
    assert desired["kind"] == "ConfigMap"
    expected = {k: v for k, v in env["data"].items() if k != "JUPYTERHUB_API_TOKEN"}
    assert desired["data"] == expected


async def test_secret_named_configmap_values_are_masked_in_the_diff(
    controller: Controller, diff: Any, sandbox: Sandbox
) -> None:
    await controller.spawn("rachel", {"API_TOKEN": "secret-2"})  # next to API_ROUTE
    env = sandbox.get("ConfigMap", "rachel-nb-env", "userlabs-rachel")
    assert env is not None
    sandbox.delete("ConfigMap", "rachel-nb-env", "userlabs-rachel")  # immutable: made again
    sandbox.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "rachel-nb-env", "namespace": "userlabs-rachel"},
            "data": {**env["data"], "API_ROUTE": "/elsewhere"},
            "immutable": True,
        },
        field_manager="kubectl",
    )
    run = await diff("lab", "rachel")
    assert run.status == 1
    assert "secret-2" not in run.out
    assert "-  API_ROUTE: /elsewhere\n+  API_ROUTE: /api\n   API_TOKEN: '***'\n" in run.out


@pytest.mark.parametrize(
    ("kind", "path", "live", "desired", "shown"),
    [
        ("ConfigMap", "data.JUPYTERHUB_API_TOKEN", "a", "b", ("*** (before)", "*** (after)")),
        ("ConfigMap", 'data["db-password"]', "a", None, ("***", None)),
        ("ConfigMap", "data.AWS_SECRET_ACCESS_KEY", "a", "a", ("***", "***")),
        ("ConfigMap", "data.KEYCLOAK_URL", "a", "b", ("a", "b")),
        (
            "ConfigMap",
            "data",
            {"MY_TOKEN": "a", "X": "1"},
            None,
            ({"MY_TOKEN": "***", "X": "1"}, None),
        ),
        ("Secret", "data.token", "a", "b", ("*** (before)", "*** (after)")),
        ("Secret", "data", {"k": "a"}, {"k": "b"}, ({"k": "*** (before)"}, {"k": "*** (after)"})),
        ("ConfigMap", "metadata.labels.TOKEN", "a", "b", ("a", "b")),
    ],
)
def test_json_masks_secret_values(
    kind: str, path: str, live: Any, desired: Any, shown: tuple[Any, Any]
) -> None:
    drift = ObjectDrift(
        kind=kind,
        namespace="userlabs-rachel",
        name="rachel-nb-env",
        missing=False,
        fields=[FieldDrift(path, live, desired)],
        remedy=Remedy.APPLY,
        reason="apply fixes it in place",
        live={},
        desired={},
        manifest={},
    )
    document = json.loads(render_json([Finding("lab", "rachel", drift)]))
    field = document[0]["fields"][0]
    assert (field["live"], field["desired"]) == shown
