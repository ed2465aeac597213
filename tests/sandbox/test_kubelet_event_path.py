"""The kubelet's Events take a cheaper create path that stores the very same objects."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from nublado.sandbox import cluster as cluster_module
from nublado.sandbox.cluster import Cluster


def _event(name: str, *, field_path: str | None = None, host: str = "node1") -> dict[str, Any]:
    involved: dict[str, Any] = {
        "kind": "Pod",
        "namespace": "u",
        "name": "p",
        "uid": "abc",
        "apiVersion": "v1",
        "resourceVersion": "5",
    }
    if field_path:
        involved["fieldPath"] = field_path
    source = {"component": "kubelet", "host": host} if host else {"component": "kubelet"}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "u"},
        "involvedObject": involved,
        "reason": "Pulled",
        "message": "Successfully pulled image",
        "source": source,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
        "type": "Normal",
        "eventTime": None,
        "reportingComponent": "kubelet",
        "reportingInstance": host,
    }


def _comparable(obj: dict[str, Any]) -> bytes:
    obj = orjson.loads(orjson.dumps(obj))
    meta = obj["metadata"]
    for key in ("name", "uid", "resourceVersion", "creationTimestamp"):
        meta[key] = "-"
    for entry in meta["managedFields"]:
        entry["time"] = "-"
    return orjson.dumps(obj)


@pytest.mark.parametrize("options", [{}, {"field_path": "spec.containers{notebook}"}, {"host": ""}])
def test_a_kubelet_event_is_stored_as_the_full_create_path_stores_it(
    options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = Cluster()
    cluster.create_internal("Namespace", {"metadata": {"name": "u"}}, "test")
    full = cluster.create_internal("Event", _event("full", **options), "kubelet")
    decoded = []
    real_decode = cluster_module.decode_object
    monkeypatch.setattr(
        cluster_module, "decode_object", lambda *a: decoded.append(1) or real_decode(*a)
    )

    first = cluster.create_event_internal(_event("first", **options), "kubelet")
    learned = len(decoded)
    second = cluster.create_event_internal(_event("second", **options), "kubelet")

    assert full is not None and first is not None and second is not None
    assert _comparable(first) == _comparable(full) == _comparable(second)
    assert learned == 1 and len(decoded) == 1  # the second took the direct path
    assert cluster.get("Event", "u", "second") == second


def test_a_kubelet_event_is_refused_where_a_create_is() -> None:
    cluster = Cluster()
    cluster.create_internal("Namespace", {"metadata": {"name": "u"}}, "test")
    assert cluster.create_event_internal(_event("a"), "kubelet") is not None
    assert cluster.create_event_internal(_event("a"), "kubelet") is None  # exists
    event = _event("b")
    event["metadata"]["namespace"] = event["involvedObject"]["namespace"] = "gone"
    assert cluster.create_event_internal(event, "kubelet") is None  # no such namespace


def test_a_given_event_is_stored_as_a_copied_one_is() -> None:
    cluster = Cluster()
    cluster.create_internal("Namespace", {"metadata": {"name": "u"}}, "test")
    kept = _event("kept")
    copied = cluster.create_event_internal(kept, "kubelet")
    handed = _event("handed")
    given = cluster.create_event_internal(handed, "kubelet", given=True)
    learned = cluster.create_event_internal(_event("after"), "kubelet", given=True)

    assert copied is not None and given is not None and learned is not None
    assert _comparable(copied) == _comparable(given) == _comparable(learned)
    assert kept == _event("kept")  # a caller's own event is left as it was
    assert given is handed  # a given one is stored without a copy
    assert cluster.get("Event", "u", "handed") is given


def test_an_events_shape_is_its_keys_and_leaf_types() -> None:
    shape = cluster_module._shape
    assert shape(_event("a")) == shape(_event("b"))  # names differ, shape does not
    assert shape(_event("a")) != shape(_event("a", field_path="spec.containers{x}"))
    other = _event("a")
    other["count"] = "1"  # a string where an integer was
    assert shape(other) != shape(_event("a"))
    reordered = _event("a")
    reordered["reason"] = reordered.pop("reason")  # the order of keys is part of it
    assert shape(reordered) != shape(_event("a"))
