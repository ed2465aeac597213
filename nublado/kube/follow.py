"""Keeping a cache of one kind current: watch from a LIST, and LIST again when the watch ends.

The lab and file-server services and the spawn inputs each keep caches this way
(a small informer): the first LIST is theirs (they fill the cache before they
serve), then `follow` watches from its resourceVersion. When the watch fails
or ends, it waits ``retry_delay`` seconds and calls ``relist``, which LISTs
again, replaces the cache and returns the items and version to watch from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .client import KubernetesClient, WatchEvent

__all__ = ["follow"]

Object = dict[str, Any]


async def follow(
    kube: KubernetesClient,
    kind: str,
    namespace: str | None,
    *,
    version: str,
    items: list[Object],
    on_event: Callable[[WatchEvent], Awaitable[None]],
    relist: Callable[[], Awaitable[tuple[list[Object], str]]],
    log: Any,
    label_selector: str | None = None,
    field_selector: str | None = None,
    retry_delay: float = 1.0,
    on_broken: Callable[[], None] | None = None,
    keep: Callable[[Object], Object] | None = None,
    decode: Callable[[bytes], Object] | None = None,
) -> None:
    """Feed every event of ``kind`` to ``on_event``; runs until cancelled.

    ``items`` are the objects of the LIST ``version`` comes from (the client's
    watch uses them to resume after a 410 without losing deletions). A failed
    ``relist`` is retried after the same delay. ``on_broken`` is told when the
    watch has ended, before the first LIST again: from then until a ``relist``
    succeeds, the cache may miss changes. ``keep``: what the watch remembers of
    each object and ``decode`` how each event is decoded (`KubernetesClient.watch`).
    """
    while True:
        try:
            async for event in kube.watch(
                kind,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=version,
                known=items,
                keep=keep,
                decode=decode,
            ):
                await on_event(event)
        except Exception as exc:
            log.warning("Watch failed, listing again", kind=kind, error=str(exc))
        if on_broken is not None:
            on_broken()
        while True:
            await asyncio.sleep(retry_delay)
            try:
                items, version = await relist()
            except Exception as exc:
                log.warning("Listing again failed", kind=kind, error=str(exc))
                continue
            break
