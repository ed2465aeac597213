"""The example lab of examples/ runs on the example nodes and storage classes.

examples/config.yaml asks a cluster for a zone (required node affinity), a
``some-label`` node selector, tolerations and the ``sdf-home`` storage class;
examples/nodes.json and examples/storage-classes.json must provide them, or
the README's walk-through ends with a Pending pod.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nublado.cli import main
from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def example_sandbox(served_sandbox: Sandbox) -> Sandbox:
    """The module's server, loaded as the README loads it for the example."""
    served_sandbox.reset(
        nodes=EXAMPLES / "nodes.json", storage_classes=EXAMPLES / "storage-classes.json"
    )
    return served_sandbox


async def test_rendered_example_lab_is_scheduled_and_runs(
    example_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "render",
            "lab",
            "--config",
            str(EXAMPLES / "config.yaml"),
            "--user",
            str(EXAMPLES / "user.json"),
            "--spec",
            str(EXAMPLES / "lab-specification.json"),
            "--secrets",
            str(EXAMPLES / "secrets.json"),
            "--discovery",
            str(EXAMPLES / "discovery.json"),
            "--metadata-dir",
            str(EXAMPLES / "metadata"),
            "--image",
            "lighthouse.ceres/library/sketchbook:w_2077_43@sha256:5678",
        ]
    )
    assert status in (0, None)
    manifests = [m for m in yaml.safe_load_all(capsys.readouterr().out) if m]
    assert example_sandbox.url is not None

    async with KubernetesClient.from_url(example_sandbox.url) as kube:
        await kube.apply(manifests)
        pod = next(m for m in manifests if m["kind"] == "Pod")
        meta = pod["metadata"]
        running = await kube.wait_for(
            "Pod",
            meta["name"],
            meta["namespace"],
            lambda p: p is not None and p["status"]["phase"] == "Running",
            timeout=5,
        )
        claims = await kube.list("PersistentVolumeClaim", meta["namespace"])

    assert running is not None
    assert running["spec"]["nodeName"] in ("node1", "node2")
    assert {c["status"]["phase"] for c in claims} == {"Bound"}
    assert {c["spec"]["storageClassName"] for c in claims} == {"sdf-home"}
