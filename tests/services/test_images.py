"""The image service against the sandbox and a respx registry: payloads, prepull cycles, refresh.

The reference case (standard.yaml, the reference registry and nodes) must
give upstream's images payload and prepull pod; the cycle behaviour the
issue names (new nodes and images next cycle, failed pulls retried next
cycle and not before, a failing refresh keeping the last data) is checked
with the real prepuller, scheduler and kubelet.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from fake_registry import FakeRegistry
from image_fixtures import REFERENCE_TAGS, pod_posts, prepull_pods
from reference_cases import DATA, EXPECTED, reference_config

from nublado.config import Config, ImagesConfig
from nublado.images.docker import DockerRegistryClient
from nublado.images.retry import RetryPolicy
from nublado.images.source import DockerImageSource, GARImageSource, UnknownImageError
from nublado.kube.client import KubernetesClient
from nublado.models.lab import LabRequestOptions
from nublado.models.metadata import ControllerMetadata
from nublado.sandbox.server import Sandbox
from nublado.services.images import ImageService, build_image_source
from nublado.services.prepuller import Prepuller, PrepullResult

NAMESPACE = "nublado"
REPOSITORY = "lighthouse.ceres/library/sketchbook"

PREPULLS = json.loads((DATA / "prepuller" / "prepulls.json").read_text())
"""api.md 4.11's example: standard.yaml with the reference registry and nodes."""


@pytest.fixture
async def service(
    config: Config,
    registry: FakeRegistry,
    client: KubernetesClient,
    controller_metadata: ControllerMetadata,
) -> AsyncIterator[ImageService]:
    async with httpx.AsyncClient() as http:
        source = build_image_source(config.images, http)
        prepuller = Prepuller(client, config, controller_metadata, timeout=20.0)
        yield ImageService(config, source, client, prepuller)


def _pod_posts(sandbox: Sandbox) -> int:
    """How many prepull pods were created (less the controller pod)."""
    return pod_posts(sandbox) - 1


def _add_node(sandbox: Sandbox, name: str, **spec: Any) -> None:
    sandbox.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"some-label": "some-value"}},
            "spec": spec,
            "status": {"images": []},
        }
    )


async def test_images_payload_equals_upstreams_reference(service: ImageService) -> None:
    assert await service.refresh()

    expected = json.loads((EXPECTED / "images" / "standard.json").read_text())
    assert service.spawner_images().to_json() == expected


async def test_prepuller_status_equals_the_api_example(service: ImageService) -> None:
    assert await service.refresh()

    assert service.prepuller_status().to_json() == PREPULLS


async def test_menu_and_dropdown_of_the_reference_case(service: ImageService) -> None:
    await service.refresh()

    assert [(m.name, m.reference) for m in service.menu()] == [
        ("Recommended (Weekly 2077_43)", f"{REPOSITORY}:recommended@sha256:5678")
    ]
    assert [m.name for m in service.dropdown()] == [
        "Recommended (Weekly 2077_43)",
        "Weekly 2077_43",
        "Daily 2077_10_23",
        "latest_weekly",
        "latest_daily",
    ]


async def test_reference_prepull_run_creates_exactly_the_reference_pod(
    service: ImageService, sandbox: Sandbox
) -> None:
    report = await service.run_cycle()

    assert report is not None
    assert [(o.node, o.tag, o.result) for o in report.outcomes] == [
        ("node2", "d_2077_10_23", PrepullResult.SUCCEEDED)
    ]
    assert _pod_posts(sandbox) == 1
    assert prepull_pods(sandbox) == []
    # Marked at once, before the node's next inventory: nothing is pending any more.
    status = service.prepuller_status()
    assert [i.tag for i in status.images.prepulled] == ["w_2077_43", "d_2077_10_23"]
    assert status.images.pending == []


async def test_a_second_cycle_prepulls_nothing(service: ImageService, sandbox: Sandbox) -> None:
    await service.run_cycle()
    report = await service.run_cycle()

    # The kubelet reported the pulled image on node2's status: the plan is empty.
    assert report is not None
    assert report.outcomes == ()
    assert _pod_posts(sandbox) == 1
    assert service.spawner_images().to_json()["latest_daily"]["prepulled"] is True


async def test_an_existing_pod_of_the_same_name_is_replaced(
    service: ImageService, sandbox: Sandbox, client: KubernetesClient
) -> None:
    await client.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "prepull-d-2077-10-23-node2", "namespace": NAMESPACE},
            "spec": {"containers": [{"name": "other", "image": "example.com/other:1"}]},
        }
    )

    report = await service.run_cycle()

    assert report is not None
    assert [o.result for o in report.outcomes] == [PrepullResult.SUCCEEDED]
    assert prepull_pods(sandbox) == []
    assert sandbox.get("Pod", "prepull-d-2077-10-23-node2", NAMESPACE) is None


async def test_a_new_node_and_a_new_image_are_picked_up_next_cycle(
    service: ImageService, sandbox: Sandbox, registry: FakeRegistry
) -> None:
    await service.run_cycle()
    _add_node(sandbox, "node3")
    registry.tags["d_2077_10_24"] = "sha256:2410"

    report = await service.run_cycle()

    assert report is not None
    planned = sorted((o.node, o.tag) for o in report.outcomes)
    assert planned == [
        ("node1", "d_2077_10_24"),
        ("node2", "d_2077_10_24"),
        ("node3", "d_2077_10_23"),
        ("node3", "d_2077_10_24"),
        ("node3", "w_2077_43"),
    ]
    assert all(o.succeeded for o in report.outcomes)
    assert service.prepuller_status().images.pending == []


async def test_a_failed_pull_is_reported_and_retried_next_cycle_not_before(
    service: ImageService, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.set_pod_failure("ErrImagePull", name="prepull-*")

    first = await service.run_cycle()

    assert first is not None
    (outcome,) = first.outcomes
    assert outcome.result is PrepullResult.FAILED
    assert outcome.reason is not None
    assert outcome.reason.startswith("ErrImagePull: ")
    assert "Failed to prepull image" in caplog.text
    assert _pod_posts(sandbox) == 1  # one attempt, no retry loop
    assert prepull_pods(sandbox) == []
    assert [i.tag for i in service.prepuller_status().images.pending] == ["d_2077_10_23"]

    second = await service.run_cycle()

    assert second is not None
    assert [o.result for o in second.outcomes] == [PrepullResult.FAILED]
    assert _pod_posts(sandbox) == 2

    sandbox.clear_pod_failures()
    third = await service.run_cycle()

    assert third is not None
    assert [o.result for o in third.outcomes] == [PrepullResult.SUCCEEDED]
    assert service.prepuller_status().images.pending == []


async def test_no_prepull_on_a_node_whose_taint_labs_do_not_tolerate(
    service: ImageService, sandbox: Sandbox
) -> None:
    _add_node(sandbox, "node3", taints=[{"key": "gpu", "value": "only", "effect": "NoSchedule"}])

    report = await service.run_cycle()

    assert report is not None
    assert [o.node for o in report.outcomes] == ["node2"]
    node3 = service.prepuller_status().to_json()["nodes"][2]
    assert node3 == {
        "name": "node3",
        "eligible": False,
        "comment": "Node is tainted (NoSchedule, gpu = only)",
        "cached": [],
    }
    # The menu counts eligible nodes only: node3 lacks everything, yet it changes nothing.
    assert [m.name for m in service.menu()] == [
        "Recommended (Weekly 2077_43)",
        "Daily 2077_10_23",
    ]


async def test_a_failing_refresh_keeps_the_last_good_data(
    config: Config,
    router: respx.MockRouter,
    client: KubernetesClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = FakeRegistry(router, REFERENCE_TAGS)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with httpx.AsyncClient() as http:
        docker = DockerRegistryClient(http, retry=RetryPolicy(attempts=3, sleep=sleep))
        service = ImageService(config, DockerImageSource(config.images, docker), client)
        assert await service.refresh()
        before = service.spawner_images().to_json()
        router.routes.clear()
        router.get(url__startswith="https://lighthouse.ceres/").respond(503)

        assert not await service.refresh()

    assert registry.heads == 3
    assert len(sleeps) == 2  # bounded: three tries, two waits
    assert service.refresh_failures == 1
    assert service.last_error is not None
    assert "status 503" in service.last_error
    assert service.spawner_images().to_json() == before
    assert "keeping the previous image data" in caplog.text


async def test_a_registry_that_never_finishes_does_not_hold_the_refresh(
    config: Config, router: respx.MockRouter, client: KubernetesClient
) -> None:
    async def endless(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        return httpx.Response(200, json={"tags": []})

    router.get(url__startswith="https://lighthouse.ceres/").mock(side_effect=endless)
    async with httpx.AsyncClient() as http:
        source = build_image_source(config.images, http)
        service = ImageService(config, source, client, registry_timeout=0.2)

        assert not await service.refresh()

    assert service.last_error == ("RegistryError: reading the image registry took more than 0.2s")


async def test_a_refresh_without_nodes_access_keeps_the_last_good_data(
    service: ImageService, sandbox: Sandbox
) -> None:
    assert await service.refresh()
    sandbox.inject_fault("GET", "/api/v1/nodes*", status=403, count=None)

    assert not await service.refresh()

    assert "Error reading node information" in (service.last_error or "")
    assert [n.name for n in service.prepuller_status().nodes] == ["node1", "node2"]


async def test_lab_images_resolve_by_reference_class_and_tag(service: ImageService) -> None:
    await service.refresh()

    def options(**image: str) -> LabRequestOptions:
        return LabRequestOptions.model_validate({"size": "small", **image})

    by_dropdown = await service.resolve(
        options(image_list="use_image_from_dropdown", image_dropdown=f"{REPOSITORY}:latest_daily")
    )
    by_class = await service.resolve(options(image_class="latest-weekly"))
    by_tag = await service.resolve(options(image_tag="recommended"))

    assert (by_dropdown.tag, by_dropdown.digest) == ("latest_daily", "sha256:1234")
    assert (by_class.tag, by_class.digest) == ("w_2077_43", "sha256:5678")
    assert (by_tag.tag, by_tag.display_name) == ("recommended", "Recommended (Weekly 2077_43)")
    with pytest.raises(UnknownImageError, match='Docker tag "w_1999_01" not found'):
        await service.resolve(options(image_tag="w_1999_01"))
    with pytest.raises(UnknownImageError, match="No latest-release image found"):
        await service.resolve(options(image_class="latest-release"))


@pytest.mark.parametrize("config", [{"refresh_interval": timedelta(seconds=0.05)}], indirect=True)
async def test_the_periodic_loop_refreshes_on_the_interval(
    service: ImageService, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nublado.services.images")
    sandbox.add_latency(0.1, "POST", f"/api/v1/namespaces/{NAMESPACE}/pods")

    task = asyncio.create_task(service.run_periodically())
    for _ in range(400):
        if service.refresh_count >= 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert service.refresh_count >= 2
    # The first cycle's prepull takes longer than the 50 ms interval: the loop says so, goes on.
    assert "running continuously" in caplog.text


async def test_the_static_source_needs_no_registry(client: KubernetesClient) -> None:
    config = reference_config("standard")
    source = {
        "type": "static",
        "registry": "lighthouse.ceres",
        "repository": "library/sketchbook",
        "tags": REFERENCE_TAGS,
    }
    images = ImagesConfig.model_validate({"source": source})

    async with httpx.AsyncClient() as http:
        service = ImageService(config, build_image_source(images, http), client)
        assert await service.refresh()

    # With every digest known, both unknown tags resolve as aliases.
    assert [(i.tag, i.aliases) for i in service.spawner_images().all] == [
        ("recommended", ["latest_weekly", "w_2077_43"]),
        ("latest_weekly", ["recommended", "w_2077_43"]),
        ("latest_daily", ["d_2077_10_23"]),
        ("w_2077_43", ["latest_weekly", "recommended"]),
        ("d_2077_10_23", ["latest_daily"]),
    ]


async def test_a_prepull_cycle_keeps_the_alias_names_of_the_static_source(
    client: KubernetesClient, controller_metadata: ControllerMetadata
) -> None:
    """A weekly, a release and ``recommended`` on one digest, both versions prepulled.

    The prepull list is a subset of the full listing sharing its images: it
    must not rename ``recommended`` after the release (the listing's first
    image, the weekly, is its target), and the marks of the prepull run must
    show in both.
    """
    digest = "sha256:" + "7" * 64
    config = reference_config("standard")
    source = {
        "type": "static",
        "registry": "lighthouse.ceres",
        "repository": "library/sketchbook",
        "tags": {"w_2077_43": digest, "r23_0_0": digest, "recommended": digest},
    }
    images = ImagesConfig.model_validate(
        {"source": source, "numReleases": 1, "numWeeklies": 1, "numDailies": 0}
    )
    config = config.model_copy(update={"images": images})
    prepuller = Prepuller(client, config, controller_metadata, timeout=20.0)
    async with httpx.AsyncClient() as http:
        service = ImageService(config, build_image_source(images, http), client, prepuller)
        report = await service.run_cycle()

    assert report is not None
    assert sorted((o.node, o.tag, o.result) for o in report.outcomes) == [
        ("node1", "w_2077_43", PrepullResult.SUCCEEDED),
        ("node2", "w_2077_43", PrepullResult.SUCCEEDED),
    ]
    named = [
        ("Recommended (Weekly 2077_43)", f"{REPOSITORY}:recommended@{digest}"),
        ("Release r23.0.0", f"{REPOSITORY}:r23_0_0@{digest}"),
    ]
    assert [(m.name, m.reference) for m in service.menu()] == named
    assert [m.name for m in service.dropdown()] == [
        "Recommended (Weekly 2077_43)",
        "Release r23.0.0",
        "Weekly 2077_43",
    ]
    listed = service.spawner_images().all
    assert [(i.tag, i.prepulled) for i in listed] == [
        ("recommended", True),
        ("r23_0_0", True),
        ("w_2077_43", True),
    ]


async def test_a_google_source_gets_the_artifact_registry_client() -> None:
    source = {
        "type": "google",
        "location": "us-central1",
        "projectId": "rubin-shared-services-71ec",
        "repository": "sciplat",
        "image": "sciplat-lab",
    }
    images = ImagesConfig.model_validate({"source": source})

    async with httpx.AsyncClient() as http:
        built = build_image_source(images, http)

    assert isinstance(built, GARImageSource)
    assert (built.registry, built.repository) == (
        "us-central1-docker.pkg.dev",
        "rubin-shared-services-71ec/sciplat/sciplat-lab",
    )
