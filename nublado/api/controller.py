"""The whole controller: its services built from the configuration and wired into one app.

`build_controller` is the one place that knows how the pieces fit: the
renderer, the image service (its source and prepuller), the lab service,
the user source (Gafaelfawr, or the sandbox's trusted users), metrics and
alerts. ``nublado serve`` calls it for production and for the sandbox; tests
call it with their own clients. It creates no connection of its own: the
Kubernetes and HTTP clients are the caller's, who closes them after the app
has shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..alerts import Alerts, alerts_from_config, route_alert
from ..config import Config
from ..daemon import Daemon, Job, follow_images, standard_jobs
from ..gafaelfawr import GafaelfawrClient, UserInfoSource
from ..kube.client import KubernetesClient
from ..metrics import Metrics
from ..models.metadata import ControllerMetadata
from ..render.engine import Renderer
from ..services.fileservers import FileServerService
from ..services.fsadmin import FSAdminService
from ..services.images import ImageService, build_image_source
from ..services.labs import LabService
from ..services.prepuller import Prepuller
from .app import Lifespan, api_route, create_app
from .files import fileserver_routes
from .forms import form_routes
from .fsadmin import fsadmin_routes
from .labs import lab_routes

__all__ = [
    "DISCOVERY_TTL",
    "Discovery",
    "build_controller",
    "file_discovery",
    "metrics_routes",
    "repertoire_discovery",
]

_log = logging.getLogger(__name__)

Discovery = Callable[[], Awaitable[Mapping[str, Any] | None]]
"""Returns the current Repertoire discovery document for a new lab, or None."""

DISCOVERY_TTL = 300.0
"""Seconds a fetched discovery document is reused before Repertoire is asked again."""


def repertoire_discovery(
    http: httpx.AsyncClient, base_url: str, *, ttl: float = DISCOVERY_TTL, timeout: float = 20.0
) -> Discovery:
    """Repertoire's ``/discovery`` document, fetched at most once per ``ttl`` seconds.

    A spawn must not fail because Repertoire is briefly away: a failed fetch
    is logged and answers the last good document (None before the first),
    and the next spawn tries again.
    """
    url = f"{base_url.rstrip('/')}/discovery"
    cached: dict[str, Any] = {}
    expires = 0.0
    lock = asyncio.Lock()

    async def discovery() -> Mapping[str, Any] | None:
        nonlocal cached, expires
        async with lock:
            if time.monotonic() < expires:
                return cached
            try:
                async with asyncio.timeout(timeout):
                    response = await http.get(url, timeout=timeout)
                response.raise_for_status()
                document = response.json()
                if not isinstance(document, dict):
                    raise ValueError("not a JSON object")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("Service discovery at %s failed: %s: %s", url, type(exc).__name__, exc)
                return cached or None
            cached, expires = document, time.monotonic() + ttl
            return cached

    return discovery


def file_discovery(path: Path) -> Discovery:
    """A fixed discovery document read once from a file (the sandbox's examples/discovery.json)."""
    document: Mapping[str, Any] = json.loads(path.read_text(encoding="utf-8"))

    async def discovery() -> Mapping[str, Any] | None:
        return document

    return discovery


def metrics_routes(metrics: Metrics) -> list[BaseRoute]:
    """``GET /metrics``: the app's registry in Prometheus' text format.

    Exactly ``/metrics``, not a mount (a mount answers ``/metrics`` with a
    redirect to ``/metrics/``, which some scrapers do not follow), and not
    under the path prefix: it is scraped inside the cluster, never through
    the ingress.
    """

    async def get_metrics(request: Request) -> Response:
        """Every metric of this replica."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [api_route("/metrics", get_metrics, name="metrics")]


def _labs_lifespan(labs: LabService, fileservers: FileServerService | None = None) -> Lifespan:
    """The lab service's (and the file servers') watches, running while the app serves."""

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await labs.start()
        try:
            if fileservers is not None:
                await fileservers.start()
            try:
                yield
            finally:
                if fileservers is not None:
                    await fileservers.stop()
        finally:
            await labs.stop()

    return lifespan


def _daemon_lifespan(daemon: Daemon, images: ImageService | None) -> Lifespan:
    """The daemon (leader election, and the jobs while leading), and non-leaders' image refresh.

    Every replica refreshes its images once before serving (menus answer from
    real data); afterwards the leader's image-refresh job keeps its own fresh
    and `follow_images` the others'.
    """

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        follower: asyncio.Task[None] | None = None
        if images is not None:
            await images.refresh()
            interval = daemon.config.images.refresh_interval.total_seconds()
            follower = asyncio.create_task(
                follow_images(images, interval, lambda: daemon.leading), name="follow-images"
            )
        try:
            async with daemon.running():
                yield
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower

    return lifespan


def build_controller(
    config: Config,
    *,
    kube: KubernetesClient,
    http: httpx.AsyncClient,
    users: UserInfoSource | None = None,
    metadata: ControllerMetadata | None = None,
    namespace: str | None = None,
    identity: str | None = None,
    discovery: Discovery | None = None,
    alerts: Alerts | None = None,
    metrics: Metrics | None = None,
    refresh_images: bool = True,
    daemon: bool = True,
    jobs: Mapping[str, Job] | None = None,
) -> Starlette:
    """The controller's app for ``config``, talking to ``kube`` and, over ``http``, the world.

    - ``users``: who a request's token belongs to; default Gafaelfawr
      (`GafaelfawrClient.from_config`); the sandbox passes `TrustedUsers`.
    - ``metadata``: the controller pod (owner of prepull pods, and its
      namespace holds the labs' source Secrets and operation records);
      default: read from the configuration's ``metadataPath``.
    - ``namespace``: the controller namespace, when it differs from the pod's.
    - ``identity``: this replica's name in operation records (default: the
      lab service picks host name and a random suffix).
    - ``discovery``: the Repertoire document for new labs; default fetched
      from ``repertoireBaseUrl`` when set, else labs get an empty one.
    - ``alerts``: default Slack when ``NUBLADO_SLACK_WEBHOOK`` is set; also told of
      uncaught route errors and of file-server creation and deletion failures.
    - ``metrics``: a fresh registry per app by default.
    - ``refresh_images=False``: no start-up image refresh or loop, and no
      image-refresh or prepull job (tests).
    - ``daemon``: run the daemon (`nublado.daemon.Daemon`) in the app's
      lifespan: leader election on the configured Lease in ``namespace``, and
      the jobs only while this replica leads; the API serves on every replica.
      ``daemon=False``: no jobs, and the image service's own refresh-and-prepull
      loop (spec 3.8) instead.
    - ``jobs``: further daemon jobs by name, or replacements of the standard ones.

    The built services are on ``app.state``: ``images``, ``labs``, ``fileservers``,
    ``fsadmin``, ``users``, ``metrics``, ``alerts``, ``metadata``, ``daemon``
    (None without one).
    """
    metadata = metadata or ControllerMetadata.from_directory(config.metadata_path)
    namespace = namespace or metadata.namespace
    renderer = Renderer(config.template_dirs)
    metrics = metrics or Metrics()
    kube.on_error = metrics.kubernetes_error
    alerts = alerts or alerts_from_config(config, http)
    users = users or GafaelfawrClient.from_config(http, config)
    if discovery is None and config.repertoire_base_url:
        discovery = repertoire_discovery(http, config.repertoire_base_url)

    source = build_image_source(config.images, http)
    prepuller = Prepuller(kube, config, metadata, renderer=renderer)
    images = ImageService(config, source, kube, prepuller)
    labs = LabService(
        config,
        kube,
        images,
        renderer,
        namespace=namespace,
        identity=identity,
        discovery=discovery,
        metrics=metrics,
        alerts=alerts,
    )
    fsadmin = FSAdminService(config, kube, renderer, metadata, namespace=namespace)
    fileservers = FileServerService(
        config,
        kube,
        renderer,
        namespace=namespace,
        identity=labs.identity,
        metrics=metrics,
        alerts=alerts,
    )
    routes: list[BaseRoute] = [
        *form_routes(config, images, users, renderer),
        *lab_routes(config, labs, users),
        *fileserver_routes(config, fileservers, users),
        *fsadmin_routes(config, fsadmin),
        *metrics_routes(metrics),
    ]
    lifespans: list[Lifespan] = [_labs_lifespan(labs, fileservers)]
    scheduled: Daemon | None = None
    if daemon:
        daemon_jobs = standard_jobs(
            config,
            http=http,
            metrics=metrics,
            images=images if refresh_images else None,
            fileservers=fileservers,
            labs=labs,
            kube=kube,
            renderer=renderer,
            namespace=namespace,
            alerts=alerts,
            discovery=discovery,
        )
        daemon_jobs.update(jobs or {})
        scheduled = Daemon(
            config,
            daemon_jobs,
            kube=kube,
            namespace=namespace,
            identity=labs.identity,
            metrics=metrics,
        )
        lifespans.append(_daemon_lifespan(scheduled, images if refresh_images else None))

    app = create_app(
        config,
        images=images,
        routes=routes,
        lifespans=lifespans,
        refresh_images=refresh_images and not daemon,
        alert=route_alert(alerts),
    )
    app.state.images = images
    app.state.labs = labs
    app.state.fsadmin = fsadmin
    app.state.fileservers = fileservers
    app.state.users = users
    app.state.metrics = metrics
    app.state.alerts = alerts
    app.state.metadata = metadata
    app.state.daemon = scheduled
    return app
