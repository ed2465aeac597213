"""The prepuller against the sandbox: pods made, watched, timed out and cleaned up (spec 3.6)."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from image_fixtures import pod_posts, prepull_pods
from reference_cases import (
    EXPECTED,
    REFERENCE_IMAGE,
    reference_config,
    reference_metadata,
)
from sandbox_fixtures import deployable, strip_server_fields

from nublado.config.scheduling import Toleration
from nublado.kube.client import KubernetesClient
from nublado.kube.kinds import kind_named
from nublado.models.image import ResolvedImage
from nublado.models.metadata import ControllerMetadata
from nublado.sandbox.rules import admission_defaults, apply_defaults
from nublado.sandbox.server import Sandbox
from nublado.services.prepuller import Prepuller, PrepullOutcome, PrepullReport, PrepullResult

NAMESPACE = "nublado"
POD_NAME = "prepull-d-2077-10-23-node2"
CATEGORY = "nublado.lsst.io/category=prepuller"


def _image(tag: str, digest: str) -> ResolvedImage:
    return replace(REFERENCE_IMAGE, tag=tag, digest=digest, display_name=tag)


@pytest.fixture
def metadata(controller_metadata: ControllerMetadata) -> ControllerMetadata:
    return controller_metadata


class PodRecorder:
    """Every change to prepull pods, in order, as a watch reports it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def names(self, event_type: str) -> list[str]:
        return [o["metadata"]["name"] for t, o in self.events if t == event_type]

    def index(self, event_type: str, name: str) -> int:
        return next(
            i
            for i, (t, o) in enumerate(self.events)
            if t == event_type and o["metadata"]["name"] == name
        )

    def first(self, event_type: str, name: str) -> dict[str, Any]:
        return self.events[self.index(event_type, name)][1]

    def phases(self, name: str) -> list[str]:
        phases = []
        for t, obj in self.events:
            phase = obj.get("status", {}).get("phase")
            if t != "DELETED" and obj["metadata"]["name"] == name and phase not in phases[-1:]:
                phases.append(phase)
        return phases


@pytest.fixture
async def recorder(
    client: KubernetesClient, metadata: ControllerMetadata
) -> AsyncIterator[PodRecorder]:
    """A watch of prepull pods from now on (from the current resourceVersion, so none is missed)."""
    result = PodRecorder()
    _, version = await client.list_with_version("Pod", NAMESPACE, label_selector=CATEGORY)

    async def follow() -> None:
        async for event in client.watch(
            "Pod", NAMESPACE, label_selector=CATEGORY, resource_version=version
        ):
            result.events.append((event.type, event.object))

    task = asyncio.create_task(follow())
    yield result
    task.cancel()


async def _settle(recorder: PodRecorder, count: int) -> None:
    """Wait until the watch has delivered ``count`` DELETED events."""
    for _ in range(200):
        if len(recorder.names("DELETED")) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {recorder.names('DELETED')} deleted")


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _expected_pod(owner_uid: str) -> dict[str, Any]:
    """prepull.json's pod as an API server stores it (README normalisation, then defaults).

    Upstream's mock stores objects as sent; a real API server (and the
    sandbox) fills the scheme and admission defaults, so the expected side
    gets them too, from the sandbox's own rules. The status is compared apart.
    """
    (pod,) = json.loads((EXPECTED / "objects" / "prepull.json").read_text())
    pod.pop("status")
    (pod,) = deployable([pod])
    pod["metadata"]["ownerReferences"][0]["uid"] = owner_uid
    kind = kind_named("Pod")
    apply_defaults(kind, pod)
    admission_defaults(kind, pod)
    return _drop_nulls(pod)


def _as_stored(pod: dict[str, Any]) -> dict[str, Any]:
    manifest = strip_server_fields(copy.deepcopy(pod))
    manifest["metadata"].pop("generation", None)
    return _drop_nulls(manifest)


def _node_images(sandbox: Sandbox, node: str) -> set[str]:
    obj = sandbox.get("Node", node)
    assert obj is not None
    return {name for image in obj["status"]["images"] for name in image["names"]}


def _messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "nublado.services.prepuller" and r.levelno >= level
    ]


async def test_reference_prepull_creates_exactly_the_reference_pod(
    client: KubernetesClient,
    sandbox: Sandbox,
    metadata: ControllerMetadata,
    recorder: PodRecorder,
) -> None:
    done: list[tuple[str, str, bool]] = []
    prepuller = Prepuller(client, reference_config("standard"), metadata)

    report = await prepuller.run(
        {"node2": [REFERENCE_IMAGE]}, lambda image, node, ok: done.append((image.tag, node, ok))
    )

    assert [(o.node, o.tag, o.result, o.reason) for o in report.outcomes] == [
        ("node2", "d_2077_10_23", PrepullResult.SUCCEEDED, None)
    ]
    assert done == [("d_2077_10_23", "node2", True)]
    await _settle(recorder, 1)
    assert recorder.names("ADDED") == [POD_NAME]
    assert _as_stored(recorder.first("ADDED", POD_NAME)) == _expected_pod(metadata.uid)
    # Upstream's mock shows every pod Running; /bin/true on a kubelet ends Succeeded.
    assert recorder.phases(POD_NAME) == ["Pending", "Succeeded"]
    assert prepull_pods(sandbox) == []
    assert REFERENCE_IMAGE.reference_with_digest in _node_images(sandbox, "node2")


async def test_an_existing_pod_of_that_name_is_replaced(
    client: KubernetesClient,
    sandbox: Sandbox,
    metadata: ControllerMetadata,
    recorder: PodRecorder,
) -> None:
    old = sandbox.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": POD_NAME,
                "namespace": NAMESPACE,
                "labels": {"nublado.lsst.io/category": "prepuller"},
            },
            "spec": {
                "containers": [{"name": "other", "image": "busybox:1", "command": ["sleep", "1d"]}],
                "nodeName": "node1",
                "restartPolicy": "Never",
            },
        }
    )
    await sandbox.wait_for_async(
        lambda: (sandbox.get("Pod", POD_NAME, NAMESPACE) or {})["status"].get("phase") == "Running"
    )
    prepuller = Prepuller(client, reference_config("standard"), metadata)

    report = await prepuller.run({"node2": [REFERENCE_IMAGE]})

    assert report.outcome("node2", "d_2077_10_23").result is PrepullResult.SUCCEEDED
    await _settle(recorder, 2)
    old_uid = old["metadata"]["uid"]
    uids = [(t, o["metadata"]["uid"]) for t, o in recorder.events if t != "MODIFIED"]
    assert uids[0] == ("ADDED", old_uid)
    assert uids[1] == ("DELETED", old_uid)
    assert [t for t, _ in uids[2:]] == ["ADDED", "DELETED"]
    replacement = next(o for t, o in recorder.events if o["metadata"]["uid"] == uids[2][1])
    assert _as_stored(replacement) == _expected_pod(metadata.uid)
    assert prepull_pods(sandbox) == []


async def test_a_pull_failure_is_reported_at_once_and_cleaned_up(
    client: KubernetesClient,
    sandbox: Sandbox,
    metadata: ControllerMetadata,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox.set_pod_failure("ErrImagePull", name="prepull-*")
    done: list[bool] = []
    prepuller = Prepuller(client, reference_config("standard"), metadata, timeout=30)

    with caplog.at_level(logging.WARNING, logger="nublado.services.prepuller"):
        report = await prepuller.run({"node2": [REFERENCE_IMAGE]}, lambda i, n, ok: done.append(ok))

    outcome = report.outcome("node2", "d_2077_10_23")
    reference = REFERENCE_IMAGE.reference_with_digest
    assert outcome.result is PrepullResult.FAILED
    assert outcome.reason == (
        "ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image"
        f' "{reference}": failed to resolve reference "{reference}": not found'
    )
    assert outcome.elapsed < 5
    assert done == [False]
    assert prepull_pods(sandbox) == []
    assert reference not in _node_images(sandbox, "node2")
    assert _messages(caplog) == [
        f"Failed to prepull image {reference} on node node2: {outcome.reason}"
    ]

    sandbox.clear_pod_failures()
    again = await prepuller.run({"node2": [REFERENCE_IMAGE]})

    assert [o.result for o in again.outcomes] == [PrepullResult.SUCCEEDED]
    assert reference in _node_images(sandbox, "node2")


async def test_image_pull_back_off_is_a_failure_too(
    client: KubernetesClient, sandbox: Sandbox, metadata: ControllerMetadata
) -> None:
    sandbox.set_pod_failure("ImagePullBackOff", name="prepull-*")
    prepuller = Prepuller(client, reference_config("standard"), metadata, timeout=30)

    report = await prepuller.run({"node2": [REFERENCE_IMAGE]})

    (outcome,) = report.outcomes
    assert outcome.result is PrepullResult.FAILED
    assert outcome.reason is not None
    assert outcome.reason.startswith("ImagePullBackOff: Back-off pulling image")
    assert prepull_pods(sandbox) == []


async def test_a_failed_pod_is_a_failure(
    client: KubernetesClient, sandbox: Sandbox, metadata: ControllerMetadata
) -> None:
    sandbox.set_pod_failure("Failed", name="prepull-*")
    prepuller = Prepuller(client, reference_config("standard"), metadata, timeout=30)

    report = await prepuller.run({"node2": [REFERENCE_IMAGE]})

    assert [(o.result, o.reason) for o in report.outcomes] == [
        (PrepullResult.FAILED, "pod ended in phase Failed (exit code 1, Error)")
    ]
    assert prepull_pods(sandbox) == []


async def test_a_timeout_is_reported_and_cleaned_up(
    client: KubernetesClient, sandbox: Sandbox, metadata: ControllerMetadata
) -> None:
    sandbox.settings.pull_delay = 60  # the pod stays Pending, pulling
    done: list[bool] = []
    prepuller = Prepuller(client, reference_config("standard"), metadata, timeout=0.5)

    report = await prepuller.run({"node2": [REFERENCE_IMAGE]}, lambda i, n, ok: done.append(ok))

    (outcome,) = report.outcomes
    assert (outcome.result, outcome.reason) == (
        PrepullResult.TIMED_OUT,
        "timed out after 0.5s waiting for the pod to finish",
    )
    assert 0.5 <= outcome.elapsed < 5
    assert done == [False]
    assert prepull_pods(sandbox) == []


async def test_a_node_removed_mid_run_fails_its_remaining_images_at_once(
    client: KubernetesClient, sandbox: Sandbox, metadata: ControllerMetadata
) -> None:
    sandbox.settings.pull_delay = 60  # the first pod stays Pending, pulling
    images = [_image(f"d_2077_10_{day}", f"sha256:{day}") for day in (21, 22, 23)]
    prepuller = Prepuller(client, reference_config("standard"), metadata, timeout=0.5)

    async def remove_node_once_pulling() -> None:
        while not prepull_pods(sandbox):
            await asyncio.sleep(0.01)
        await client.delete("Node", "node2")

    remover = asyncio.create_task(remove_node_once_pulling())
    report = await prepuller.run({"node2": images})
    await remover

    assert [(o.result, o.reason) for o in report.outcomes] == [
        (PrepullResult.TIMED_OUT, "timed out after 0.5s waiting for the pod to finish"),
        (PrepullResult.FAILED, "node not found"),
        (PrepullResult.FAILED, "node not found"),
    ]
    assert report.elapsed < 2.5  # one timeout, not three


async def test_a_pod_deleted_while_waiting_ends_the_wait(
    client: KubernetesClient, sandbox: Sandbox, metadata: ControllerMetadata
) -> None:
    sandbox.settings.pull_delay = 60
    prepuller = Prepuller(client, reference_config("standard"), metadata, timeout=30)

    async def delete_when_created() -> None:
        await sandbox.wait_for_async(lambda: sandbox.get("Pod", POD_NAME, NAMESPACE))
        sandbox.delete("Pod", POD_NAME, NAMESPACE)

    deleter = asyncio.create_task(delete_when_created())
    report = await prepuller.run({"node2": [REFERENCE_IMAGE]})
    await deleter

    (outcome,) = report.outcomes
    assert (outcome.result, outcome.reason) == (
        PrepullResult.FAILED,
        "pod was deleted before it finished",
    )
    assert outcome.elapsed < 5
    await sandbox.wait_for_async(lambda: prepull_pods(sandbox) == [])


async def test_a_cancelled_run_deletes_its_pod(
    client: KubernetesClient, sandbox: Sandbox, metadata: ControllerMetadata
) -> None:
    sandbox.settings.pull_delay = 60
    prepuller = Prepuller(client, reference_config("standard"), metadata, timeout=30)
    run = asyncio.create_task(prepuller.run({"node2": [REFERENCE_IMAGE]}))
    await sandbox.wait_for_async(lambda: sandbox.get("Pod", POD_NAME, NAMESPACE))

    run.cancel()

    with pytest.raises(asyncio.CancelledError):
        await run
    assert prepull_pods(sandbox) == []


async def test_a_broken_template_is_a_failure_naming_it(
    client: KubernetesClient, sandbox: Sandbox, metadata: ControllerMetadata, tmp_path: Path
) -> None:
    (tmp_path / "prepuller").mkdir()
    (tmp_path / "prepuller" / "pod.yaml").write_text("metadata:\n  name: {{ prepull.nope | q }}\n")
    config = reference_config("standard").model_copy(update={"template_dirs": [tmp_path]})
    prepuller = Prepuller(client, config, metadata)

    report = await prepuller.run({"node2": [REFERENCE_IMAGE]})

    assert [(o.result, o.reason) for o in report.outcomes] == [
        (
            PrepullResult.FAILED,
            "error rendering the pod: template prepuller/pod.yaml line 2:"
            " 'nublado.render.prepuller.PrepullContext object' has no attribute 'nope'",
        )
    ]


async def test_nodes_run_concurrently_and_each_node_one_image_at_a_time(
    client: KubernetesClient,
    sandbox: Sandbox,
    metadata: ControllerMetadata,
    recorder: PodRecorder,
) -> None:
    sandbox.settings.pull_delay = 0.2
    a, b = _image("w_2077_40", "sha256:aaaa"), _image("w_2077_41", "sha256:bbbb")
    c, d = _image("w_2077_42", "sha256:cccc"), _image("w_2077_44", "sha256:dddd")
    done: list[tuple[str, str]] = []
    prepuller = Prepuller(client, reference_config("standard"), metadata)

    report = await prepuller.run(
        {"node1": [a, b], "node2": [c, d]}, lambda image, node, ok: done.append((node, image.tag))
    )

    assert [(o.node, o.tag, o.result) for o in report.outcomes] == [
        ("node1", "w_2077_40", PrepullResult.SUCCEEDED),
        ("node1", "w_2077_41", PrepullResult.SUCCEEDED),
        ("node2", "w_2077_42", PrepullResult.SUCCEEDED),
        ("node2", "w_2077_44", PrepullResult.SUCCEEDED),
    ]
    assert [tag for node, tag in done if node == "node1"] == ["w_2077_40", "w_2077_41"]
    assert [tag for node, tag in done if node == "node2"] == ["w_2077_42", "w_2077_44"]
    await _settle(recorder, 4)
    at = recorder.index
    # One node: the second pod is created only once the first is gone.
    assert at("DELETED", "prepull-w-2077-40-node1") < at("ADDED", "prepull-w-2077-41-node1")
    assert at("DELETED", "prepull-w-2077-42-node2") < at("ADDED", "prepull-w-2077-44-node2")
    # Two nodes: their first pods exist at the same time.
    assert at("ADDED", "prepull-w-2077-42-node2") < at("DELETED", "prepull-w-2077-40-node1")
    assert at("ADDED", "prepull-w-2077-40-node1") < at("DELETED", "prepull-w-2077-42-node2")
    assert {"lighthouse.ceres/library/sketchbook:w_2077_41@sha256:bbbb"} <= _node_images(
        sandbox, "node1"
    )


@pytest.mark.parametrize(
    ("node", "tolerations", "reason"),
    [
        pytest.param("node9", None, "node not found", id="missing node"),
        pytest.param(
            "node2",
            [],
            "Node is tainted (NoSchedule, some-toleration = some-value)",
            id="untolerated taint",
        ),
    ],
)
async def test_no_pod_on_a_missing_or_ineligible_node(
    client: KubernetesClient,
    sandbox: Sandbox,
    metadata: ControllerMetadata,
    node: str,
    tolerations: list[Toleration] | None,
    reason: str,
) -> None:
    config = reference_config("standard")
    if tolerations is not None:
        config = config.model_copy(
            update={"lab": config.lab.model_copy(update={"tolerations": tolerations})}
        )
    other = _image("w_2077_43", "sha256:5678")
    done: list[tuple[str, bool]] = []
    prepuller = Prepuller(client, config, metadata)
    posts = pod_posts(sandbox)  # the controller's pod

    report = await prepuller.run(
        {node: [REFERENCE_IMAGE, other]}, lambda image, n, ok: done.append((image.tag, ok))
    )

    assert [(o.tag, o.result, o.reason) for o in report.outcomes] == [
        ("d_2077_10_23", PrepullResult.FAILED, reason),
        ("w_2077_43", PrepullResult.FAILED, reason),
    ]
    assert done == [("d_2077_10_23", False), ("w_2077_43", False)]
    assert pod_posts(sandbox) == posts


async def test_a_refused_pod_is_a_failure_naming_the_error(
    client: KubernetesClient, sandbox: Sandbox, metadata: ControllerMetadata
) -> None:
    """A toleration key Kubernetes refuses (our config does not check its syntax)."""
    config = reference_config("standard")
    bad = Toleration.model_validate({"key": "bad key", "operator": "Exists"})
    lab = config.lab.model_copy(update={"tolerations": [bad]})
    prepuller = Prepuller(client, config.model_copy(update={"lab": lab}), metadata)

    report = await prepuller.run({"node1": [REFERENCE_IMAGE]})

    (outcome,) = report.outcomes
    assert outcome.result is PrepullResult.FAILED
    assert outcome.reason == (
        'error creating the pod: Pod "prepull-d-2077-10-23-node1" is invalid:'
        ' spec.tolerations[0].key: Invalid value: "bad key": name part must consist of'
        " alphanumeric characters, '-', '_' or '.', and must start and end with an"
        " alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used"
        " for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') (422 Invalid)"
    )
    assert prepull_pods(sandbox) == []


async def test_a_failing_callback_does_not_stop_the_node(
    client: KubernetesClient,
    sandbox: Sandbox,
    metadata: ControllerMetadata,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(image: ResolvedImage, node: str, succeeded: bool) -> None:
        raise RuntimeError("boom")

    prepuller = Prepuller(client, reference_config("standard"), metadata)
    other = _image("w_2077_40", "sha256:aaaa")

    report = await prepuller.run({"node2": [REFERENCE_IMAGE, other]}, explode)

    assert [o.result for o in report.outcomes] == [PrepullResult.SUCCEEDED] * 2
    assert _messages(caplog, logging.ERROR) == [
        "Prepull callback failed for d_2077_10_23 on node2",
        "Prepull callback failed for w_2077_40 on node2",
    ]


def test_the_timeout_defaults_to_the_configured_prepull_timeout() -> None:
    config = reference_config("standard")
    metadata = reference_metadata()

    assert Prepuller(None, config, metadata).timeout == 600.0  # type: ignore[arg-type]
    assert Prepuller(None, config, metadata, timeout=5).timeout == 5  # type: ignore[arg-type]


def test_report_lookups() -> None:
    ok = PrepullOutcome("node1", REFERENCE_IMAGE, PrepullResult.SUCCEEDED, 1.0)
    bad = PrepullOutcome("node2", REFERENCE_IMAGE, PrepullResult.TIMED_OUT, 2.0, "timed out")
    report = PrepullReport(outcomes=(ok, bad), elapsed=2.0)

    assert report.outcome("node2", "d_2077_10_23") is bad
    assert (report.succeeded, report.failed) == ((ok,), (bad,))
    with pytest.raises(KeyError):
        report.outcome("node3", "d_2077_10_23")
