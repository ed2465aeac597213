"""apps/v1 Deployments in the sandbox: defaults, validation and the immutable selector.

The controller's own set (templates/controller/) has a Deployment; the
sandbox stores it as kube-apiserver does (no ReplicaSets are made: there is
no deployment controller), and refuses what kube-apiserver refuses.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

NS = "d"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
LABELS = {"app": "web"}


def _deployment(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
            },
        },
    }
    body["spec"].update(spec)
    return body


def _template(**pod_spec: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "c", "image": "busybox:1.36"}], **pod_spec}
    return {"metadata": {"labels": dict(LABELS)}, "spec": spec}


def test_a_deployment_is_stored_with_its_defaults(http: httpx.Client) -> None:
    response = http.post(DEPLOYMENTS, json=_deployment(), params={"fieldValidation": "Strict"})

    assert response.status_code == 201, response.text
    stored = response.json()
    spec = stored["spec"]
    assert stored["metadata"]["generation"] == 1
    assert (spec["replicas"], spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (
        1,
        10,
        600,
    )
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    pod_spec = spec["template"]["spec"]
    assert (pod_spec["restartPolicy"], pod_spec["dnsPolicy"]) == ("Always", "ClusterFirst")
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    listed = http.get("/apis/apps/v1/deployments").json()
    assert [d["metadata"]["name"] for d in listed["items"]] == ["web"]


def test_a_recreate_strategy_gets_no_rolling_update_block(http: httpx.Client) -> None:
    response = http.post(DEPLOYMENTS, json=_deployment(strategy={"type": "Recreate"}))

    assert response.status_code == 201, response.text
    assert response.json()["spec"]["strategy"] == {"type": "Recreate"}


def _no_selector() -> dict[str, Any]:
    body = _deployment()
    del body["spec"]["selector"]
    return body


REFUSED: dict[str, tuple[dict[str, Any], list[tuple[str, str, str]]]] = {
    "no-selector": (
        _no_selector(),
        [("FieldValueRequired", "spec.selector", "Required value")],
    ),
    "selector-not-matching": (
        _deployment(selector={"matchLabels": {"app": "other"}}),
        [
            (
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                'Invalid value: map[string]string{"app":"web"}:'
                " `selector` does not match template `labels`",
            )
        ],
    ),
    "restart-policy": (
        _deployment(template=_template(restartPolicy="Never")),
        [
            (
                "FieldValueNotSupported",
                "spec.template.spec.restartPolicy",
                'Unsupported value: "Never": supported values: "Always"',
            )
        ],
    ),
    "recreate-with-rolling-update": (
        _deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
        [
            (
                "FieldValueForbidden",
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )
        ],
    ),
    "nothing-may-roll": (
        _deployment(
            strategy={
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0},
            }
        ),
        [
            (
                "FieldValueInvalid",
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: 0: may not be 0 when `maxSurge` is 0",
            )
        ],
    ),
    "more-than-everything-unavailable": (
        _deployment(strategy={"rollingUpdate": {"maxUnavailable": "101%"}}),
        [
            (
                "FieldValueInvalid",
                "spec.strategy.rollingUpdate.maxUnavailable",
                'Invalid value: "101%": must not be greater than 100%',
            )
        ],
    ),
    "negative-replicas": (
        _deployment(replicas=-1),
        [
            (
                "FieldValueInvalid",
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            )
        ],
    ),
    "deadline-not-after-min-ready": (
        _deployment(minReadySeconds=30, progressDeadlineSeconds=30),
        [
            (
                "FieldValueInvalid",
                "spec.progressDeadlineSeconds",
                "Invalid value: 30: must be greater than minReadySeconds",
            )
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_as_kube_apiserver_refuses_it(http: httpx.Client, case: str) -> None:
    body, causes = REFUSED[case]

    response = http.post(DEPLOYMENTS, json=body)

    answer = response.json()
    assert (response.status_code, answer["reason"]) == (422, "Invalid")
    assert [(c["reason"], c["field"], c["message"]) for c in answer["details"]["causes"]] == causes
    assert http.get(f"{DEPLOYMENTS}/web").status_code == 404


def test_an_unknown_field_is_refused_under_strict_validation(http: httpx.Client) -> None:
    body = _deployment()
    body["spec"]["replica"] = 2

    response = http.post(DEPLOYMENTS, json=body, params={"fieldValidation": "Strict"})

    assert response.status_code == 400
    assert 'unknown field "spec.replica"' in response.json()["message"]


def test_the_selector_is_immutable(http: httpx.Client) -> None:
    assert http.post(DEPLOYMENTS, json=_deployment()).status_code == 201
    changed = copy.deepcopy(_deployment())
    changed["spec"]["selector"]["matchLabels"]["tier"] = "front"
    changed["spec"]["template"]["metadata"]["labels"]["tier"] = "front"

    response = http.put(f"{DEPLOYMENTS}/web", json=changed)

    assert response.status_code == 422
    causes = response.json()["details"]["causes"]
    assert [(c["field"], c["message"]) for c in causes] == [
        ("spec.selector", "Invalid value: field is immutable")
    ]


def test_a_template_change_counts_a_generation(http: httpx.Client) -> None:
    assert http.post(DEPLOYMENTS, json=_deployment()).status_code == 201
    changed = _deployment(template=_template(terminationGracePeriodSeconds=5))

    response = http.put(f"{DEPLOYMENTS}/web", json=changed)

    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["generation"] == 2


def test_discovery_and_openapi_serve_apps_v1(http: httpx.Client) -> None:
    resources = http.get("/apis/apps/v1").json()["resources"]
    schemas = http.get("/openapi/v3/apis/apps/v1").json()["components"]["schemas"]

    assert [(r["name"], r["kind"], r["namespaced"]) for r in resources if "/" not in r["name"]] == [
        ("deployments", "Deployment", True)
    ]
    assert "strategy" in schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]
