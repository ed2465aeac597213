"""What the file-server tests share: the reference comparison and a controller to serve.

The reference file server read back from the sandbox is compared with
upstream's expected/objects/fileserver.json under the reference
normalisation of tests/data/reference README 3, with the lab comparison's
helpers. Two differences come from running on a cluster rather than
upstream's mock, and are normalised here: the Job's pod gets a generated name
(``rachel-fs-xxxxx``; the mock named it ``rachel-fs``), and the Job
controller labels the Job template and the pod with the Job's uid and name
under ``batch.kubernetes.io/`` and ``controller-uid``. The base URL is https, as
the GafaelfawrIngress CRD requires (`BASE_URL`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from lab_api_support import _drop_nulls, _normalise_cluster, object_list_differences
from reference_cases import EXPECTED, reference_config
from sandbox_fixtures import drop_refused_toleration_seconds

from nublado.config import Config
from nublado.sandbox.server import Sandbox

__all__ = [
    "BASE_URL",
    "FS_NAMESPACE",
    "fileserver_config",
    "fileserver_objects",
    "reference_fileserver_differences",
]

FS_NAMESPACE = "fileservers"

BASE_URL = "https://data.example.com"
"""The tests' ``EXTERNAL_INSTANCE_URL``: the GafaelfawrIngress CRD requires https (the reference
configuration's is ``http://127.0.0.1:8080``; sandbox_fixtures.deployable makes the same change)."""

_JOB_LABELS = ("batch.kubernetes.io/", "controller-uid")


def fileserver_config(
    creation: float = 30.0, delete: float = 10.0, idle: float | None = None, **changes: Any
) -> Config:
    """fileserver.yaml (reference), its timeouts set for tests (its own creation is 1 s)."""
    from image_fixtures import CREDENTIALS

    config = reference_config("fileserver")
    update: dict[str, Any] = {
        "creation_timeout": timedelta(seconds=creation),
        "delete_timeout": timedelta(seconds=delete),
        **changes,
    }
    if idle is not None:
        update["idle_timeout"] = timedelta(seconds=idle)
    fileserver = config.fileserver.model_copy(update=update)
    images = config.images.model_copy(update={"docker_credentials_path": CREDENTIALS})
    return config.model_copy(
        update={"fileserver": fileserver, "images": images, "base_url": BASE_URL}
    )


def fileserver_objects(sandbox: Sandbox, username: str) -> list[tuple[str, str]]:
    """(kind, name) of every object of the user's file server in the sandbox."""
    return [
        (o["kind"], o["metadata"]["name"])
        for o in sandbox.objects(FS_NAMESPACE)
        if (o["metadata"].get("labels") or {}).get("nublado.lsst.io/user") == username
    ]


def _strip_job_labels(labels: dict[str, str]) -> None:
    for key in [k for k in labels if k.startswith(_JOB_LABELS)]:
        del labels[key]


def reference_fileserver_differences(sandbox: Sandbox, username: str = "rachel") -> list[str]:
    """How the file-server namespace differs from objects/fileserver.json (empty: equal)."""
    expected = json.loads((EXPECTED / "objects" / "fileserver.json").read_text())
    drop_refused_toleration_seconds(expected)
    for obj in expected:
        if obj["kind"] == "GafaelfawrIngress":
            obj["config"]["baseUrl"] = BASE_URL
            obj["template"]["spec"]["rules"][0]["host"] = "data.example.com"
    expected = sorted(
        (_drop_nulls(o) for o in expected), key=lambda o: (o["kind"], o["metadata"]["name"])
    )
    namespace = sandbox.get("Namespace", FS_NAMESPACE)
    if namespace is None:
        return [f"Namespace {FS_NAMESPACE}: missing"]
    objects = []
    for obj in [namespace, *sandbox.objects(FS_NAMESPACE)]:
        if obj["kind"] == "Pod" and obj["metadata"].get("generateName") == f"{username}-fs-":
            obj["metadata"]["name"] = f"{username}-fs"
            _strip_job_labels(obj["metadata"].setdefault("labels", {}))
        if obj["kind"] == "Job":
            template = obj["spec"]["template"]["metadata"]
            _strip_job_labels(template.setdefault("labels", {}))
            template["labels"].pop("job-name", None)
        objects.append(obj)
    statuses = {
        (o["kind"], o["metadata"]["name"]): o.get("status")
        for o in objects
        if o["kind"] in ("Job", "Ingress")
    }
    actual = _drop_nulls(_normalise_cluster(objects))
    for obj in actual:
        status = statuses.get((obj["kind"], obj["metadata"]["name"]))
        if status is not None:
            # README 3: kept, but for status.startTime.
            obj["status"] = {k: v for k, v in status.items() if k != "startTime"}
    return object_list_differences(expected, actual)
