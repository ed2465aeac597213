"""Server-side apply through the real client over HTTP: create, update, no-op, conflicts, errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sandbox_fixtures import reference_manifests

from nublado.kube.client import KubernetesClient
from nublado.kube.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    UnknownKindError,
)
from nublado.sandbox.server import Sandbox

NS = "userlabs-rachel"


def _lab_cm(data: dict[str, str]) -> dict[str, Any]:
    """ConfigMap ``cm`` in namespace ``lab`` holding ``data``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "lab"},
        "data": data,
    }


def _find(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    )


async def test_first_apply_creates_every_object_of_the_lab_set(
    client: KubernetesClient, sandbox: Sandbox, lab_manifests: list[dict[str, Any]]
) -> None:
    results = await client.apply(lab_manifests)

    assert [r.kind for r in results] == [m["kind"] for m in lab_manifests]
    # The default ServiceAccount already exists (the cluster makes it): that apply updates it.
    assert [r.action for r in results if r.kind != "ServiceAccount"] == ["created"] * (
        len(results) - 1
    )
    assert _find_result(results, "ServiceAccount").action == "updated"
    stored = {(o["kind"], o["metadata"]["name"]) for o in sandbox.objects(namespace=NS)}
    expected = {
        (m["kind"], m["metadata"]["name"]) for m in lab_manifests if m["kind"] != "Namespace"
    }
    assert expected <= stored
    env = sandbox.get("ConfigMap", "rachel-nb-env", NS)
    assert env is not None
    assert env["data"] == _find(lab_manifests, "ConfigMap", "rachel-nb-env")["data"]
    assert env["metadata"]["managedFields"][0]["manager"] == "nublado"
    assert env["metadata"]["managedFields"][0]["operation"] == "Apply"


def _find_result(results: list[Any], kind: str) -> Any:
    return next(r for r in results if r.kind == kind)


async def test_second_identical_apply_changes_nothing(
    client: KubernetesClient, sandbox: Sandbox, lab_manifests: list[dict[str, Any]]
) -> None:
    await client.apply(lab_manifests)
    await sandbox.wait_for_async(
        lambda: (
            (sandbox.get("Pod", "rachel-nb", NS) or {}).get("status", {}).get("phase") == "Running"
        )
    )
    before = {
        (o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
        for o in sandbox.objects(namespace=NS)
    }

    results = await client.apply(lab_manifests)

    assert all(not r.created for r in results)
    for result in results:
        key = (result.kind, result.name)
        if key in before:
            assert result.resource_version == before[key], key


async def test_changed_manifest_updates_and_removes_dropped_fields(
    client: KubernetesClient, sandbox: Sandbox, lab_manifests: list[dict[str, Any]]
) -> None:
    await client.apply(lab_manifests)
    quota = copy.deepcopy(_find(lab_manifests, "ResourceQuota"))
    before = sandbox.get("ResourceQuota", "rachel-nb", NS)
    assert before is not None
    quota["spec"]["hard"] = {"limits.cpu": "4.0"}
    quota["metadata"]["labels"]["extra"] = "yes"

    result = await client.apply_one(quota)

    assert result.action == "updated"
    # Stored canonical, as kube-apiserver's decoder writes a quantity.
    assert result.object["spec"]["hard"] == {"limits.cpu": "4"}
    assert result.object["metadata"]["labels"]["extra"] == "yes"
    assert int(result.resource_version) > int(before["metadata"]["resourceVersion"])


async def test_apply_of_a_custom_resource_returns_the_created_object(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    manifests = reference_manifests("fileserver")
    ingress = _find(manifests, "GafaelfawrIngress")
    await client.apply([_find(manifests, "Namespace")])

    created = await client.apply_one(ingress)
    again = await client.apply_one(ingress)

    assert created.created
    assert created.object["kind"] == "GafaelfawrIngress"
    assert created.object["config"]["service"] == "nublado-files"
    assert not again.created
    assert again.resource_version == created.resource_version
    listed = await client.list(
        "GafaelfawrIngress", "fileservers", label_selector={"nublado.lsst.io/user": "rachel"}
    )
    assert [o["metadata"]["name"] for o in listed] == ["rachel-fs"]


async def test_apply_without_force_conflicts_with_another_manager(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}})
    sandbox.apply(_lab_cm({"A": "1", "B": "2"}), field_manager="kubectl")
    mine = _lab_cm({"A": "changed"})

    with pytest.raises(ConflictError) as caught:
        await client.apply_one(mine, force=False)

    assert caught.value.status == 409
    assert caught.value.reason == "Conflict"
    assert caught.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl": .data.A'
    )
    assert caught.value.details["causes"][0]["field"] == ".data.A"
    unchanged = sandbox.get("ConfigMap", "cm", "lab")
    assert unchanged is not None and unchanged["data"]["A"] == "1"


async def test_forced_apply_takes_ownership_and_same_values_are_shared(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}})
    sandbox.apply(_lab_cm({"A": "1", "B": "2"}), field_manager="kubectl")
    # Same value: no conflict, even without force.
    shared = await client.apply_one(_lab_cm({"B": "2"}), force=False)
    assert {e["manager"] for e in shared.object["metadata"]["managedFields"]} == {
        "kubectl",
        "nublado",
    }

    forced = await client.apply_one(_lab_cm({"A": "9", "B": "2"}))

    assert forced.object["data"] == {"A": "9", "B": "2"}
    owners = {e["manager"]: e["fieldsV1"] for e in forced.object["metadata"]["managedFields"]}
    assert "f:A" in owners["nublado"]["f:data"]
    assert "f:A" not in owners.get("kubectl", {}).get("f:data", {})


async def test_immutable_config_map_refuses_new_data(
    client: KubernetesClient, lab_manifests: list[dict[str, Any]]
) -> None:
    await client.apply(lab_manifests)
    env = copy.deepcopy(_find(lab_manifests, "ConfigMap", "rachel-nb-env"))
    env["data"]["CPU_LIMIT"] = "2.0"

    with pytest.raises(InvalidError) as caught:
        await client.apply_one(env)

    assert caught.value.status == 422
    assert caught.value.message == (
        'ConfigMap "rachel-nb-env" is invalid: data: Forbidden: field is immutable when '
        "`immutable` is set"
    )


async def test_immutable_secret_refuses_new_data(
    client: KubernetesClient, lab_manifests: list[dict[str, Any]]
) -> None:
    await client.apply(lab_manifests)
    secret = copy.deepcopy(_find(lab_manifests, "Secret", "rachel-nb"))
    secret["data"]["token"] = "bmV3"

    with pytest.raises(InvalidError, match=r'^Secret "rachel-nb" is invalid: data: Forbidden'):
        await client.apply_one(secret)


async def test_pod_spec_change_is_refused_with_the_real_message(
    client: KubernetesClient, lab_manifests: list[dict[str, Any]]
) -> None:
    await client.apply(lab_manifests)
    pod = copy.deepcopy(_find(lab_manifests, "Pod"))
    pod["spec"]["containers"][0]["env"] = [{"name": "NEW", "value": "1"}]

    with pytest.raises(InvalidError) as caught:
        await client.apply_one(pod)

    assert caught.value.message.startswith(
        'Pod "rachel-nb" is invalid: spec: Forbidden: pod updates may not change fields other '
        "than `spec.containers[*].image`,`spec.initContainers[*].image`,"
        "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
        "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)"
    )


async def test_pod_image_change_is_allowed(
    client: KubernetesClient, lab_manifests: list[dict[str, Any]]
) -> None:
    await client.apply(lab_manifests)
    pod = copy.deepcopy(_find(lab_manifests, "Pod"))
    pod["spec"]["containers"][0]["image"] = "lighthouse.ceres/library/sketchbook:w_2077_43"

    result = await client.apply_one(pod)

    assert result.object["spec"]["containers"][0]["image"].endswith(":w_2077_43")


async def test_apply_into_missing_namespace_is_not_found(client: KubernetesClient) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "nowhere"},
        "data": {},
    }

    with pytest.raises(NotFoundError) as caught:
        await client.apply_one(manifest)

    assert caught.value.message == 'namespaces "nowhere" not found'
    assert caught.value.reason == "NotFound"


async def test_apply_into_terminating_namespace_is_forbidden(
    sandbox: Sandbox, client: KubernetesClient
) -> None:
    sandbox.settings.namespace_termination_delay = None
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}})
    await client.delete("Namespace", "lab", wait=False)

    with pytest.raises(ForbiddenError) as caught:
        await client.apply_one(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cm", "namespace": "lab"},
            }
        )

    assert caught.value.message == (
        'configmaps "cm" is forbidden: unable to create new content in namespace lab because '
        "it is being terminated"
    )


async def test_unknown_kind_is_refused_before_any_request(client: KubernetesClient) -> None:
    with pytest.raises(UnknownKindError):
        await client.apply_one(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "x", "namespace": "y"},
            }
        )
    with pytest.raises(UnknownKindError, match="apiVersion"):
        await client.apply_one(
            {"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "y"}}
        )


async def test_dry_run_apply_stores_nothing(client: KubernetesClient, sandbox: Sandbox) -> None:
    result = await client.apply_one(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dry"}}, dry_run=True
    )

    assert result.created
    assert sandbox.get("Namespace", "dry") is None
