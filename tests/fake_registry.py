"""A Docker Registry v2 behind respx, shared by the images CLI and image service tests."""

from __future__ import annotations

import re

import httpx
import respx

__all__ = ["FakeRegistry"]

REGISTRY = "lighthouse.ceres"
BASE = f"https://{REGISTRY}/v2/library/sketchbook"


class FakeRegistry:
    """A Docker registry behind respx: two tag pages, HEAD by tag, DELETE by digest (202)."""

    def __init__(self, router: respx.MockRouter, tags: dict[str, str]) -> None:
        self.tags = dict(tags)
        self.deleted: list[str] = []
        self.heads = 0
        self.require_auth: str | None = None
        manifest = rf"^{re.escape(BASE)}/manifests/(?P<reference>[^/?]+)$"
        router.get(url__regex=rf"^{re.escape(BASE)}/tags/list").mock(side_effect=self._list)
        router.head(url__regex=manifest).mock(side_effect=self._head)
        router.delete(url__regex=manifest).mock(side_effect=self._delete)

    def _denied(self, request: httpx.Request) -> httpx.Response | None:
        if self.require_auth and request.headers.get("Authorization") != self.require_auth:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        return None

    def _list(self, request: httpx.Request) -> httpx.Response:
        if denied := self._denied(request):
            return denied
        names = list(self.tags)
        half = len(names) // 2
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json={"tags": names[half:] or None})
        link = {"Link": '</v2/library/sketchbook/tags/list?page=2>; rel="next"'}
        return httpx.Response(200, json={"tags": names[:half] or None}, headers=link)

    def _head(self, request: httpx.Request, reference: str) -> httpx.Response:
        if denied := self._denied(request):
            return denied
        self.heads += 1
        accept = request.headers["Accept"]
        assert accept.startswith("application/vnd.docker.distribution.manifest.v2+json")
        if reference not in self.tags:
            return httpx.Response(404)
        return httpx.Response(200, headers={"Docker-Content-Digest": self.tags[reference]})

    def _delete(self, request: httpx.Request, reference: str) -> httpx.Response:
        if denied := self._denied(request):
            return denied
        self.deleted.append(reference)
        self.tags = {tag: digest for tag, digest in self.tags.items() if digest != reference}
        return httpx.Response(202)
