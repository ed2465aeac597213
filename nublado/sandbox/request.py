"""What one write request asked for beyond its body, and what it answers besides the object.

The HTTP layer opens a `WriteContext` around each request; the code that
merges, validates and admits an object reads the request's
``fieldValidation`` from it and adds the warnings the answer carries in
``Warning`` headers, without every call in between passing them along.

`ApiRequest` is the request itself as the resource handlers read it: parsed
from the ASGI scope once, without Starlette's routing and URL objects, which
were a tenth of the sandbox's CPU per spawn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect

__all__ = [
    "ApiRequest",
    "FieldValidation",
    "QueryParams",
    "WriteContext",
    "current_write",
    "writing",
]

FieldValidation = Literal["Ignore", "Warn", "Strict"]


@dataclass
class WriteContext:
    """The options of a write that reach past the verb, and the warnings it collects.

    ``field_validation`` defaults to ``Warn``, as kube-apiserver's does when
    the query does not say.
    """

    field_validation: FieldValidation = "Warn"
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Add a warning for the answer's ``Warning`` header (each once)."""
        if message not in self.warnings:
            self.warnings.append(message)


_CURRENT: ContextVar[WriteContext | None] = ContextVar("sandbox_write", default=None)


def current_write() -> WriteContext:
    """The context of the write being served (defaults outside a request)."""
    return _CURRENT.get() or WriteContext()


@contextmanager
def writing(field_validation: FieldValidation = "Warn") -> Iterator[WriteContext]:
    """Serve one write with these options; the context collects its warnings."""
    context = WriteContext(field_validation)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


class QueryParams(Mapping[str, str]):
    """A request's query, parsed once, read as kube-apiserver reads it.

    ``get`` and ``[]`` give a key's *first* value, as apimachinery's query
    decoding does for a single-valued option (``watch``, ``fieldSelector``,
    ``limit``...) and as the RBAC authorizer's request attributes do, so the
    authorizer and the handlers never judge different values; `getlist`
    gives all of them in order (``dryRun`` is a list). Blank values are kept.
    """

    __slots__ = ("_dict", "_list")

    def __init__(self, query_string: str) -> None:
        if "%" in query_string or "+" in query_string:
            self._list = parse_qsl(query_string, keep_blank_values=True)
        else:
            # Nothing to unquote (nearly every query): parse_qsl's split, without its cost.
            self._list = [
                (name, value)
                for name, _, value in (p.partition("=") for p in query_string.split("&") if p)
            ]
        first: dict[str, str] = {}
        for name, value in self._list:
            first.setdefault(name, value)
        self._dict = first

    def getlist(self, key: str) -> list[str]:
        """Every value given for ``key``, in order."""
        return [v for k, v in self._list if k == key]

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)


# Characters after which Starlette's URL no longer gives the scope's path unchanged.
_URL_SPECIAL = frozenset("?#\\\t\r\n")


class ApiRequest:
    """One HTTP request to the resource API, read from its ASGI scope once and lazily.

    What the handlers read of Starlette's ``Request``, without its URL and
    multi-dict machinery: the method, the path as ``request.url.path`` gives
    it, the query, the headers (lower-case names, first value of each) and
    the body (read once, kept).
    """

    __slots__ = ("_body", "_headers", "_query", "_receive", "method", "path", "scope")

    def __init__(
        self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]]
    ) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        path: str = scope["path"]
        if not _URL_SPECIAL.isdisjoint(path):
            # Rare: let Starlette escape or drop what it does, so the path is the same.
            from starlette.datastructures import URL

            path = URL(scope=scope).path
        self.path = path
        self._query: QueryParams | None = None
        self._headers: dict[str, str] | None = None
        self._body: bytes | None = None

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.scope.get("query_string", b"").decode("latin-1"))
        return self._query

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            headers: dict[str, str] = {}
            for key, value in self.scope["headers"]:
                name = key.decode("latin-1")
                if name not in headers:
                    headers[name] = value.decode("latin-1")
            self._headers = headers
        return self._headers

    async def body(self) -> bytes:
        if self._body is None:
            chunks: list[bytes] = []
            while True:
                message = await self._receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
                elif message["type"] == "http.disconnect":
                    raise ClientDisconnect  # as Starlette's Request does
            self._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._body
