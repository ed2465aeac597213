"""The controller's Starlette application, built from its configuration and services.

`create_app` wires everything explicitly: no module-level app, no global
state, so tests build as many apps as they like. Routes live under the
configured ``pathPrefix`` (api.md 3), except the in-cluster health check at
``/``. Later route sets (labs, forms, file servers) are passed in as
`Route` lists built with `prefixed`, and their background work as lifespan
contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from .. import __version__
from ..config import Config
from ..services.images import ImageService
from .errors import Alert, exception_handlers
from .forwarded import XForwardedMiddleware

__all__ = [
    "DESCRIPTION",
    "DOCUMENTATION_URL",
    "REPOSITORY_URL",
    "Lifespan",
    "api_route",
    "create_app",
    "image_routes",
    "images_lifespan",
    "metadata",
    "prefixed",
]

_log = logging.getLogger(__name__)

DESCRIPTION = "Nublado Jupyter service for the Rubin Science Platform."
REPOSITORY_URL = "https://github.com/lsst-sqre/nublado"
DOCUMENTATION_URL = "https://nublado.lsst.io"

Lifespan = Callable[[], AbstractAsyncContextManager[Any]]
"""Background work tied to the app's life: entered at start-up, exited at shutdown."""


def prefixed(config: Config, path: str = "") -> str:
    """``path`` under the configured prefix: ``/nublado/spawner/v1/images``; ``/nublado`` alone."""
    return config.path_prefix.rstrip("/") + path or "/"


def api_route(
    path: str, endpoint: Callable[..., Any], *, methods: Sequence[str] = ("GET",), name: str
) -> Route:
    """A route answering exactly ``methods``, as FastAPI's do.

    Starlette adds HEAD to every GET route; upstream (FastAPI) does not, so a
    HEAD is a 405 there and the ``Allow`` header of a 405 names only ``GET``.
    """
    route = Route(path, endpoint, methods=list(methods), name=name)
    route.methods = {method.upper() for method in methods}
    return route


def metadata(config: Config) -> dict[str, str]:
    """The service metadata of ``GET /`` (api.md 4.1), nulls omitted."""
    return {
        "name": config.name,
        "version": __version__,
        "description": DESCRIPTION,
        "repository_url": REPOSITORY_URL,
        "documentation_url": DOCUMENTATION_URL,
    }


def _index_routes(config: Config) -> list[BaseRoute]:
    body = metadata(config)

    async def internal_index(request: Request) -> JSONResponse:
        """``GET /``: the in-cluster health check, not behind any ingress."""
        return JSONResponse(body)

    async def external_index(request: Request) -> JSONResponse:
        """``GET PREFIX``: the same metadata, wrapped (api.md 4.2)."""
        return JSONResponse({"metadata": body})

    return [
        api_route("/", internal_index, name="internal_index"),
        api_route(prefixed(config), external_index, name="external_index"),
    ]


def image_routes(config: Config, images: ImageService) -> list[BaseRoute]:
    """``GET PREFIX/spawner/v1/images`` and ``.../prepulls`` (api.md 4.10, 4.11): no auth."""

    async def get_images(request: Request) -> JSONResponse:
        """Every known image, nulls omitted at every level."""
        return JSONResponse(images.spawner_images().to_json())

    async def get_prepulls(request: Request) -> JSONResponse:
        """The prepuller's configuration, images and nodes, nulls kept."""
        return JSONResponse(images.prepuller_status().to_json())

    return [
        api_route(prefixed(config, "/spawner/v1/images"), get_images, name="images"),
        api_route(prefixed(config, "/spawner/v1/prepulls"), get_prepulls, name="prepulls"),
    ]


async def _prepull_then_loop(images: ImageService, first_refresh_ok: bool) -> None:
    """The prepull that follows the start-up refresh, then the periodic refresh loop."""
    if first_refresh_ok:
        try:
            await images.prepull()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("Prepull after the start-up image refresh failed")
    await images.run_periodically()


@contextlib.asynccontextmanager
async def images_lifespan(images: ImageService) -> AsyncIterator[None]:
    """Refresh images before serving, then keep them fresh in the background (spec 3.8).

    The first refresh runs in the foreground so that the lab form and the
    image routes answer from real data; a failed one is logged by the service
    and the loop retries on its interval. The prepuller runs right after each
    successful refresh; the loop sleeps first. The task is cancelled and
    awaited at shutdown.
    """
    ok = await images.refresh()
    task = asyncio.create_task(_prepull_then_loop(images, ok), name="image-refresh")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(
    config: Config,
    *,
    images: ImageService,
    routes: Sequence[BaseRoute] = (),
    lifespans: Sequence[Lifespan] = (),
    refresh_images: bool = True,
    alert: Alert | None = None,
) -> Starlette:
    """The controller's ASGI application.

    ``routes`` are further routes with absolute paths (build them with
    `prefixed`); they are matched after the index and image routes, and
    before ``PREFIX/openapi.json``, ``/docs`` and ``/redoc``, whose document
    describes them all.
    ``lifespans`` are entered in order after the image refresh has started
    and exited in reverse order before it is stopped. ``refresh_images=False``
    skips the start-up refresh and the loop (tests that refresh by hand).
    ``alert`` is told of every uncaught error after it is logged (Slack).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if refresh_images:
                await stack.enter_async_context(images_lifespan(images))
            for context in lifespans:
                await stack.enter_async_context(context())
            yield

    # openapi builds its document from this app's route table, so it imports this module.
    from .openapi import openapi_routes

    return Starlette(
        routes=[
            *_index_routes(config),
            *image_routes(config, images),
            *routes,
            *openapi_routes(config),
        ],
        middleware=[Middleware(XForwardedMiddleware)],
        exception_handlers=exception_handlers(alert=alert),
        lifespan=lifespan,
    )
