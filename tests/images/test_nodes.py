"""Node inventory: cached images, taints against tolerations, listing (images-tools.md 3.1-3.3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from nublado.config.scheduling import Toleration
from nublado.images.nodes import CachedImage, NodeData, cached_images, node_data, toleration_verdict
from nublado.kube.client import KubernetesClient
from nublado.sandbox.server import Sandbox
from nublado.services.images import NodeListError, list_nodes

REPO = "lighthouse.ceres/library/sketchbook"


def _tolerations(*items: dict[str, Any]) -> list[Toleration]:
    return [Toleration.model_validate(item) for item in items]


def _taint(effect: str, key: str, value: str | None = None) -> dict[str, Any]:
    taint = {"effect": effect, "key": key}
    if value is not None:
        taint["value"] = value
    return taint


NS_FOO = [_taint("NoSchedule", "foo")]
NS_FOO_BAR = [_taint("NoSchedule", "foo", "bar")]
TWO = [_taint("NoSchedule", "foo", "bar"), _taint("NoExecute", "foo", "other")]
EXISTS_FOO = {"operator": "Exists", "key": "foo"}
FOO_BAR = {"key": "foo", "value": "bar"}

# Every row of the upstream node_test table (spec 3.3), with the exact comment.
TOLERATION_CASES = [
    pytest.param(None, [], True, None, id="no taints"),
    pytest.param([], [], True, None, id="empty taints"),
    pytest.param([_taint("PreferNoSchedule", "foo")], [], True, None, id="prefer-no-schedule"),
    pytest.param(NS_FOO, [], False, "Node is tainted (NoSchedule, foo)", id="untolerated"),
    pytest.param(NS_FOO, [{"operator": "Exists"}], True, None, id="exists without key"),
    pytest.param(NS_FOO, [EXISTS_FOO], True, None, id="exists with key"),
    pytest.param(
        NS_FOO,
        [{"operator": "Exists", "key": "bar"}],
        False,
        "Node is tainted (NoSchedule, foo)",
        id="exists other key",
    ),
    pytest.param(NS_FOO, [{**EXISTS_FOO, "effect": "NoSchedule"}], True, None, id="same effect"),
    pytest.param(
        NS_FOO,
        [{**EXISTS_FOO, "effect": "NoExecute"}],
        False,
        "Node is tainted (NoSchedule, foo)",
        id="other effect",
    ),
    pytest.param(NS_FOO_BAR, [FOO_BAR], True, None, id="equal"),
    pytest.param(
        NS_FOO_BAR,
        [{"key": "bar", "value": "bar"}],
        False,
        "Node is tainted (NoSchedule, foo = bar)",
        id="equal other key",
    ),
    pytest.param(
        NS_FOO_BAR,
        [{"key": "foo", "value": "barbar"}],
        False,
        "Node is tainted (NoSchedule, foo = bar)",
        id="equal other value",
    ),
    pytest.param(
        [_taint("NoExecute", "foo", "bar")],
        [{**FOO_BAR, "tolerationSeconds": 5}],
        False,
        "Node is tainted (NoExecute, foo = bar)",
        id="temporary toleration of NoExecute",
    ),
    pytest.param(
        NS_FOO_BAR, [{**FOO_BAR, "tolerationSeconds": 5}], True, None, id="seconds on NoSchedule"
    ),
    pytest.param(
        TWO, [FOO_BAR], False, "Node is tainted (NoExecute, foo = other)", id="second untolerated"
    ),
    pytest.param(TWO, [FOO_BAR, {"key": "foo", "value": "other"}], True, None, id="both"),
    pytest.param(
        TWO,
        [FOO_BAR, {"key": "foo", "value": "baz"}],
        False,
        "Node is tainted (NoExecute, foo = other)",
        id="one of two",
    ),
    pytest.param(TWO, [EXISTS_FOO], True, None, id="exists covers both"),
    pytest.param(
        TWO,
        [{**EXISTS_FOO, "effect": "NoSchedule"}],
        False,
        "Node is tainted (NoExecute, foo = other)",
        id="exists one effect",
    ),
    pytest.param(
        TWO,
        [{**EXISTS_FOO, "effect": "NoSchedule"}, {**EXISTS_FOO, "effect": "NoExecute"}],
        True,
        None,
        id="exists both effects",
    ),
]


@pytest.mark.parametrize(("taints", "tolerations", "eligible", "comment"), TOLERATION_CASES)
def test_toleration_verdict(
    taints: list[dict[str, Any]] | None,
    tolerations: list[dict[str, Any]],
    eligible: bool,
    comment: str | None,
) -> None:
    assert toleration_verdict(taints, _tolerations(*tolerations)) == (eligible, comment)


@pytest.mark.parametrize(("taints", "tolerations", "eligible", "comment"), TOLERATION_CASES)
def test_node_data_eligibility_comes_from_the_node_spec_taints(
    taints: list[dict[str, Any]] | None,
    tolerations: list[dict[str, Any]],
    eligible: bool,
    comment: str | None,
) -> None:
    node: dict[str, Any] = {"metadata": {"name": "node1"}}
    if taints is not None:
        node["spec"] = {"taints": taints}

    data = node_data(node, _tolerations(*tolerations))

    assert (data.name, data.eligible, data.comment) == ("node1", eligible, comment)


def test_a_node_without_spec_is_eligible() -> None:
    assert node_data({"metadata": {"name": "n"}}, []).eligible is True


def test_cached_images_keep_named_entries_with_size_and_first_digest() -> None:
    node = {
        "metadata": {"name": "node1"},
        "status": {
            "images": [
                {
                    "names": [
                        f"{REPO}:d_2077_10_23",
                        "not a reference",
                        f"{REPO}@sha256:1234",
                        f"{REPO}@sha256:9999",
                    ],
                    "sizeBytes": 69105,
                },
                {"names": [], "sizeBytes": 1},
                {"sizeBytes": 2},
                {"names": [f"{REPO}:w_2077_43"], "sizeBytes": 65537},
                {"names": ["sha256:abcd", f"{REPO}:r21_0_1@sha256:5678"]},
            ]
        },
    }

    assert cached_images(node) == (
        CachedImage(
            references=(
                f"{REPO}:d_2077_10_23",
                "not a reference",
                f"{REPO}@sha256:1234",
                f"{REPO}@sha256:9999",
            ),
            size=69105,
            digest="sha256:1234",
        ),
        CachedImage(references=(f"{REPO}:w_2077_43",), size=65537, digest=None),
        CachedImage(
            references=("sha256:abcd", f"{REPO}:r21_0_1@sha256:5678"),
            size=None,
            digest="sha256:5678",
        ),
    )


@pytest.mark.parametrize(
    "node",
    [
        pytest.param({"metadata": {"name": "n"}}, id="no status"),
        pytest.param({"metadata": {"name": "n"}, "status": {}}, id="no images"),
        pytest.param({"metadata": {"name": "n"}, "status": {"images": None}}, id="null images"),
    ],
)
def test_a_node_without_images_has_none(node: dict[str, Any]) -> None:
    assert node_data(node, []) == NodeData(name="n", cached=(), eligible=True, comment=None)


def test_digest_sizes_skip_images_without_digest_and_keep_the_first_size() -> None:
    data = NodeData(
        name="n",
        cached=(
            CachedImage(references=("a/b:x",), size=10, digest=None),
            CachedImage(references=("a/b@sha256:1",), size=None, digest="sha256:1"),
            CachedImage(references=("a/b:y@sha256:2",), size=20, digest="sha256:2"),
            CachedImage(references=("a/b:z@sha256:2",), size=30, digest="sha256:2"),
        ),
        eligible=True,
        comment=None,
    )

    assert data.digest_sizes() == {"sha256:1": None, "sha256:2": 20}


def test_reference_nodes_inventory(sandbox: Sandbox) -> None:
    """The reference nodes: node1 holds both digests, node2 only the weekly."""
    nodes = sandbox.objects(kind="Node")
    tolerations = _tolerations({"key": "some-toleration", "value": "some-value"})

    inventory = {n["metadata"]["name"]: node_data(n, tolerations) for n in nodes}

    assert {name: d.digest_sizes() for name, d in inventory.items()} == {
        "node1": {"sha256:1234": 69105, "sha256:5678": 65537},
        "node2": {"sha256:5678": 65537},
    }
    assert all(d.eligible for d in inventory.values())
    # Without the toleration, node2's taint (examples/nodes.json) excludes it.
    assert node_data(next(n for n in nodes if n["metadata"]["name"] == "node2"), []).comment == (
        "Node is tainted (NoSchedule, some-toleration = some-value)"
    )


def _add_nodes(sandbox: Sandbox) -> None:
    sandbox.load_nodes(
        {
            "alpha": {"labels": {"status": "online", "nublado": "eligible"}},
            "beta": {"labels": {"status": "online"}},
            "gamma": {"labels": {"nublado": "eligible", "status": "online"}},
        }
    )


async def test_list_nodes_sends_the_selector_in_mapping_order(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    _add_nodes(sandbox)

    nodes = await list_nodes(client, {"status": "online", "nublado": "eligible"})

    assert [n["metadata"]["name"] for n in nodes] == ["alpha", "gamma"]
    targets = [r.target for r in sandbox.requests if r.target.startswith("/api/v1/nodes")]
    selectors = [parse_qs(urlsplit(t).query).get("labelSelector") for t in targets]
    assert selectors == [["status=online,nublado=eligible"]]


async def test_list_nodes_with_an_empty_selector_lists_all(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    _add_nodes(sandbox)

    nodes = await list_nodes(client, {})

    assert [n["metadata"]["name"] for n in nodes] == ["alpha", "beta", "gamma", "node1", "node2"]
    targets = [r.target for r in sandbox.requests if r.target.startswith("/api/v1/nodes")]
    assert ["labelSelector" in parse_qs(urlsplit(t).query) for t in targets] == [False]


async def test_list_nodes_error_is_a_node_list_error(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    sandbox.inject_fault("GET", "/api/v1/nodes", status=403, message="nodes is forbidden")

    with pytest.raises(NodeListError) as caught:
        await list_nodes(client, {})

    assert str(caught.value) == (
        "Error reading node information: nodes is forbidden (403 Forbidden)"
    )
    assert (caught.value.kind, caught.value.status) == ("Node", 403)


async def test_list_nodes_timeout_is_a_node_list_error(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    sandbox.add_latency(2.0, "GET", "/api/v1/nodes")

    with pytest.raises(NodeListError) as caught:
        await list_nodes(client, {}, timeout=0.1)

    assert str(caught.value) == "Error reading node information: timed out after 0.1s"
