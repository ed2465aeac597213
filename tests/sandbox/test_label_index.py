"""The store's label index answers a LIST exactly as testing every object's labels would."""

from __future__ import annotations

from typing import Any

import pytest

from nublado.sandbox.cluster import Cluster
from nublado.sandbox.selectors import FieldSelector, LabelSelector
from nublado.sandbox.store import Store

SELECTORS = [
    "app=lab",
    "app==lab",
    "app=",
    "app!=lab",
    "app in (lab,files)",
    "app in (lab,)",
    "app in ()",
    "app notin (lab)",
    "app",
    "!app",
    "app=lab,user=rachel",
    "app=lab,user!=rachel",
    "app in (lab,files),!tier",
    "user=rachel,app=lab",
    "user in (rachel,wei),app",
    "tier,app=lab",
    "size>2",
    "size<3,app=lab",
    "app=files,size>1",
    "user=nobody",
    "app=lab,app=files",
    "app=lab,app in (lab)",
    "",
]


def _put(store: Store, namespace: str, name: str, labels: dict[str, str] | None) -> None:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = labels
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    previous = store.get("ConfigMap", namespace, name)
    store.put("ConfigMap", obj, "MODIFIED" if previous else "ADDED", previous)


def _plain(store: Store, namespace: str | None, selector: str) -> list[tuple[str, str]]:
    labels = LabelSelector.parse(selector)
    return [
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in store.iter_objects("ConfigMap", namespace)
        if labels.matches(o["metadata"].get("labels"))
    ]


def _listed(cluster: Cluster, namespace: str | None, selector: str) -> list[tuple[str, str]]:
    items, _ = cluster.list("ConfigMap", namespace, selector or None)
    return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items]


def _fill(store: Store) -> None:
    users = ["rachel", "wei", "bot", "zed"]
    for index, user in enumerate(users):
        namespace = f"userlabs-{user}"
        _put(store, namespace, "env", {"app": "lab", "user": user, "size": str(index)})
        _put(store, namespace, "files", {"app": "files", "user": user, "tier": "x"})
        _put(store, namespace, "bare", None)
        _put(store, namespace, "empty-app", {"app": "", "user": user})
    _put(store, "userlabs-rachel2", "env", {"app": "lab", "user": "rachel2"})  # a longer name
    _put(store, "userlabs-rache", "env", {"app": "lab", "user": "rache"})  # a shorter one
    _put(store, "other", "a", {"app": "lab"})
    _put(store, "other", "b", {"application": "lab", "app-x": "lab"})


@pytest.mark.parametrize("selector", SELECTORS)
def test_a_labelled_list_is_the_plain_filter(selector: str) -> None:
    cluster = Cluster()
    _fill(cluster.store)
    for namespace in (None, "userlabs-rachel", "userlabs-rachel2", "other", "missing", ""):
        assert _listed(cluster, namespace, selector) == _plain(cluster.store, namespace, selector)


@pytest.mark.parametrize("selector", SELECTORS)
def test_the_index_follows_relabels_and_deletes(selector: str) -> None:
    cluster = Cluster()
    store = cluster.store
    _fill(store)
    assert _listed(cluster, None, selector) == _plain(store, None, selector)  # sorted, kept
    _put(store, "userlabs-rachel", "env", {"app": "files", "user": "rachel"})  # value changed
    _put(store, "userlabs-wei", "env", {"user": "wei"})  # label dropped
    _put(store, "userlabs-wei", "env", {"user": "wei"})  # written again, labels unchanged
    _put(store, "userlabs-bot", "bare", {"app": "lab"})  # label added
    _put(store, "userlabs-zed", "files", None)  # every label dropped
    store.remove("ConfigMap", "userlabs-bot", "env")
    store.remove("ConfigMap", "other", "a")
    _put(store, "other", "a", {"app": "lab", "user": "rachel"})  # made again
    _put(store, "userlabs-new", "env", {"app": "lab", "user": "new"})  # added after a LIST
    for namespace in (None, "userlabs-rachel", "userlabs-wei", "userlabs-new", "other"):
        assert _listed(cluster, namespace, selector) == _plain(store, namespace, selector)


def test_the_index_forgets_what_no_object_holds() -> None:
    store = Store()
    _put(store, "n", "a", {"app": "lab"})
    _put(store, "n", "a", {"app": "files"})
    store.remove("ConfigMap", "n", "a")

    assert store.labelled("ConfigMap", None, "app", ["lab", "files"]) == []
    assert store._by_label["ConfigMap"] == {}
    assert store.labelled("Pod", None, "app", ["lab"]) == []


def test_indexable_takes_the_first_equality_or_set_clause() -> None:
    assert (
        LabelSelector.parse("!a,b!=1,c in (x,y),d=2").indexable()
        == (LabelSelector.parse("c in (x,y)").requirements[0])
    )
    assert LabelSelector.parse("a==1").indexable() == LabelSelector.parse("a=1").requirements[0]
    assert LabelSelector.parse("a notin (x),b,!c,d>1").indexable() is None
    assert LabelSelector.parse("").indexable() is None


def test_a_field_selector_still_filters_an_indexed_list() -> None:
    cluster = Cluster()
    _fill(cluster.store)

    items, _ = cluster.list("ConfigMap", None, "app=lab", "metadata.namespace=other")

    assert [o["metadata"]["name"] for o in items] == ["a"]
    fields = FieldSelector.parse("metadata.name!=env", "ConfigMap")
    items, _ = cluster.list("ConfigMap", None, "app=lab", "metadata.name!=env")
    assert [o["metadata"]["name"] for o in items] == ["a"]
    assert all(fields.matches(o, "ConfigMap") for o in items)
