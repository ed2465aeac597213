"""A LIST's answer is built from each object's kept JSON: the same bytes as encoding it whole.

The sandbox keeps the JSON it made of each stored object a LIST showed (whole,
or as PartialObjectMetadata), until the object is written again; these tests
hold the answers to what encoding the whole collection makes, byte for byte,
through writes, deletes and later pages.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from nublado.sandbox.server import Sandbox

PATH = "/api/v1/namespaces/p/configmaps"
META = "meta.k8s.io/v1"
LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def _cm(name: str, value: str = "value") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "p", "labels": {"app": "lab"}},
        "data": {"key": value},
    }


def _stored(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.objects("p", "ConfigMap")


def _whole(sandbox: Sandbox, items: list[dict[str, Any]], metadata: dict[str, Any]) -> bytes:
    """What the answer was before each object's JSON was kept: the whole body encoded."""
    return orjson.dumps(
        {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": metadata, "items": items}
    )


def _partial(items: list[dict[str, Any]], metadata: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "kind": "PartialObjectMetadataList",
            "apiVersion": META,
            "metadata": metadata,
            "items": [
                {"kind": "PartialObjectMetadata", "apiVersion": META, "metadata": o["metadata"]}
                for o in items
            ],
        }
    )


def test_lists_are_byte_for_byte_the_whole_encoding_through_writes(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    for name in ("a", "b", "c"):
        assert http.post(PATH, json=_cm(name)).status_code == 201
    for step in ("first", "again", "after a write", "after a delete", "after a create"):
        if step == "after a write":
            assert http.put(f"{PATH}/b", json=_cm("b", "changed")).status_code == 200
        elif step == "after a delete":
            assert http.delete(f"{PATH}/a").status_code == 200
        elif step == "after a create":
            assert http.post(PATH, json=_cm("a", "new")).status_code == 201

        whole = http.get(PATH)
        partial = http.get(PATH, headers={"accept": LIST_ACCEPT})

        version = {"resourceVersion": str(sandbox.revision)}
        stored = _stored(sandbox)
        assert whole.content == _whole(sandbox, stored, version), step
        assert partial.content == _partial(stored, version), step
    assert [o["data"]["key"] for o in orjson.loads(whole.content)["items"]] == [
        "new",
        "changed",
        "value",
    ]


def test_a_later_page_shows_the_objects_as_of_the_first(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    """A later page serves older versions of written objects: those, not the kept newer JSON."""
    for name in ("a", "b", "c"):
        http.post(PATH, json=_cm(name))
    http.get(PATH)  # every object's JSON kept
    first = http.get(PATH, params={"limit": "1"}).json()
    before = _stored(sandbox)
    http.put(f"{PATH}/b", json=_cm("b", "changed"))
    http.get(PATH)  # the new version's JSON kept

    for accept, encode in (
        ("application/json", lambda items, meta: _whole(sandbox, items, meta)),
        (LIST_ACCEPT, _partial),
    ):
        second = http.get(
            PATH,
            params={"limit": "1", "continue": first["metadata"]["continue"]},
            headers={"accept": accept},
        )
        metadata = orjson.loads(second.content)["metadata"]
        assert second.content == encode(before[1:2], metadata)
        assert metadata["resourceVersion"] == first["metadata"]["resourceVersion"]
