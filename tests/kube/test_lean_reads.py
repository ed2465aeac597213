"""Reads that cost less for thousands of objects: metadata-only LISTs, page by page, and
watches that remember less of what they saw."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypedDict

import msgspec
import pytest

from nublado.kube.client import KubernetesClient, WatchEvent
from nublado.kube.errors import KubernetesError
from nublado.sandbox.server import Sandbox

NS = "lean"


def _cm(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "x"}},
        "data": {"v": "1" * 100},
    }


async def _seed(client: KubernetesClient, count: int) -> None:
    await client.apply_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    for i in range(count):
        await client.apply_one(_cm(f"cm-{i:02}"))


async def test_metadata_only_list_has_each_objects_metadata(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await _seed(client, 3)
    full = await client.list("ConfigMap", NS, label_selector="app=x")

    partial = await client.list("ConfigMap", NS, label_selector="app=x", metadata_only=True)

    assert partial == [
        {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
        for o in full
    ]


async def test_list_pages_yields_one_page_at_a_time(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await _seed(client, 12)
    mark = len(sandbox.requests)
    pages: list[tuple[list[str], str]] = []
    requests_at_each_page: list[int] = []

    async for page, version in client.list_pages("ConfigMap", NS, page_size=5):
        assert page is not None
        pages.append(([o["metadata"]["name"] for o in page], version))
        requests_at_each_page.append(len(sandbox.requests) - mark)

    assert [names for names, _ in pages] == [
        [f"cm-{i:02}" for i in range(0, 5)],
        [f"cm-{i:02}" for i in range(5, 10)],
        ["cm-10", "cm-11"],
    ]
    assert len({version for _, version in pages}) == 1  # the first page's version throughout
    assert requests_at_each_page == [1, 2, 3]  # each page read when the caller asks for it


class _Meta(TypedDict, total=False):
    name: str


class _Item(TypedDict, total=False):
    metadata: _Meta


class _List(TypedDict, total=False):
    metadata: dict[str, Any]
    items: list[_Item]


async def test_list_pages_decodes_with_the_callers_decoder(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await _seed(client, 2)

    pages = [
        page
        async for page, _ in client.list_pages(
            "ConfigMap", NS, metadata_only=True, decode=msgspec.json.Decoder(_List).decode
        )
    ]

    assert pages == [[{"metadata": {"name": "cm-00"}}, {"metadata": {"name": "cm-01"}}]]


async def test_watch_remembers_what_keep_keeps_for_a_relists_deletions(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await _seed(client, 2)
    seen: list[WatchEvent] = []

    def keep(obj: dict[str, Any]) -> dict[str, Any]:
        # The uid and resourceVersion are what a relist compares with.
        fields = ("name", "uid", "resourceVersion")
        return {"kind": obj["kind"], "metadata": {k: obj["metadata"][k] for k in fields}}

    async def collect() -> None:
        async for event in client.watch("ConfigMap", NS, timeout=5, keep=keep):
            seen.append(event)

    task = asyncio.create_task(collect())
    await sandbox.wait_for_async(lambda: len(seen) == 2 and sandbox.watch_count() == 1)
    # The stream drops; while it is down, cm-01 goes and history is compacted.
    sandbox.inject_fault("GET", f"/api/v1/namespaces/{NS}/configmaps", status=None, delay=0.2)
    sandbox.cut_watches()
    sandbox.delete("ConfigMap", "cm-01", NS)
    sandbox.compact()
    await sandbox.wait_for_async(lambda: len(seen) == 3, timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert seen[1].object["data"]  # events themselves are whole
    assert [(e.type, e.name) for e in seen] == [
        ("ADDED", "cm-00"),
        ("ADDED", "cm-01"),
        ("DELETED", "cm-01"),
    ]
    assert seen[2].object == keep(seen[1].object)


class _Strict(TypedDict):
    unexpected: int


async def test_an_answer_the_decoder_refuses_is_a_kubernetes_error(
    client: KubernetesClient, sandbox: Sandbox
) -> None:
    await _seed(client, 1)

    with pytest.raises(KubernetesError, match="the answer is not what was expected: "):
        async for _ in client.list_pages(
            "ConfigMap", NS, decode=msgspec.json.Decoder(_Strict).decode
        ):
            pass
