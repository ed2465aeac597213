"""The daemon: the controller's periodic jobs, scheduled with APScheduler 3, run by one leader.

Six jobs keep the cluster and the registry in the declared state:

- ``lab-reconcile``: labs from cluster state (api.md 7.7), every
  ``lab.reconcileInterval``; `LabReconciler.run` over the lab service
  (`standard_jobs` given ``labs``).
- ``fileserver-reconcile``: removes file servers that are not running,
  every ``fileserver.reconcileInterval``.
- ``image-refresh``: re-reads registry and nodes every
  ``images.refreshInterval``, and runs ``prepull`` right after a success.
- ``prepull``: pulls missing images onto eligible nodes; also every
  ``images.refreshInterval`` on its own (a registry outage does not stop it).
- ``image-prune``: deletes the images ``daemon.imagePrune.keep`` drops, at
  ``daemon.imagePrune.schedule`` (cron); a dry run unless ``enabled``.
- ``purge``: the scratch purger in a thread, on ``daemon.purge``'s schedule.

Each job coalesces missed runs, never runs twice at once (a run due while
the last still runs is skipped and counted), gets a random delay of up to
``daemon.jitter``, and is logged and measured by `JobRunner`. A job that
raises is logged and counted, and keeps its schedule.

Only the replica holding the daemon's Lease (`nublado.kube.leader`) runs
them: `Daemon.run` campaigns, starts the scheduler on taking the lead and
shuts it down, cancelling and awaiting running jobs, as soon as the lead is
lost. The reconciles and a prepull run at once when a replica takes the lead
(its images were refreshed before it served, or by `follow_images`; the
standalone daemon's prepull refreshes first). Non-leaders keep their image
menus fresh with `follow_images`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click
import httpx
import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config
from .config.daemon import cron_trigger
from .errors import InputError, NubladoError
from .kube.leader import LeaderElector
from .metrics import Metrics
from .options import config_option, kubeconfig_option
from .permissions import skip_permission_check_option

if TYPE_CHECKING:
    from .alerts import Alerts
    from .kube.client import KubernetesClient
    from .render.engine import Renderer
    from .services.fileservers import FileServerService
    from .services.images import ImageService
    from .services.labs import LabService

__all__ = [
    "JOB_NAMES",
    "OFFLINE_JOBS",
    "RUN_AT_START",
    "Daemon",
    "Job",
    "JobFailedError",
    "JobRunner",
    "Scheduler",
    "UnknownJobError",
    "daemon",
    "default_identity",
    "follow_images",
    "job_trigger",
    "register_jobs",
    "standard_jobs",
]

JOB_NAMES = (
    "lab-reconcile",
    "fileserver-reconcile",
    "image-refresh",
    "prepull",
    "image-prune",
    "purge",
)
"""Every job the daemon knows, in the order they are registered."""

RUN_AT_START = frozenset({"lab-reconcile", "fileserver-reconcile", "prepull"})
"""Jobs that run as soon as a replica takes the lead (the others wait for their time).

Not image-refresh: every replica refreshed before serving (images-tools.md 3.8:
the first refresh in the foreground, then the prepull, then every interval).
"""

Job = Callable[[], Awaitable[object]]
"""A job body: an async callable; raising means the run failed."""

_log = logging.getLogger(__name__)


class Scheduler(Protocol):
    """What `register_jobs` needs of a scheduler (APScheduler 3's, or a test's fake)."""

    def add_job(self, func: Callable[..., Any], trigger: Any = None, **kwargs: Any) -> Any: ...

    def add_listener(self, callback: Callable[..., Any], mask: int = ...) -> None: ...

    def modify_job(self, job_id: str, jobstore: str | None = None, **changes: Any) -> Any: ...


class JobFailedError(NubladoError):
    """A job's work failed without an exception of its own (a refresh that kept old data)."""


class UnknownJobError(InputError):
    """``--once`` named a job this daemon does not have."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown job {name!r}; valid jobs: {', '.join(known) or '(none configured)'}"
        )


def job_trigger(name: str, config: Config) -> BaseTrigger | None:
    """When ``name`` runs under ``config``: a trigger in UTC with the configured jitter.

    None when the job is not configured (``image-prune`` and ``purge`` without
    their section).
    """
    daemon = config.daemon
    jitter = daemon.jitter.total_seconds() or None
    interval: float | None = None
    cron: str | None = None
    if name == "lab-reconcile":
        interval = config.lab.reconcile_interval.total_seconds()
    elif name == "fileserver-reconcile":
        interval = config.fileserver.reconcile_interval.total_seconds()
    elif name in ("image-refresh", "prepull"):
        interval = config.images.refresh_interval.total_seconds()
    elif name == "image-prune":
        if daemon.image_prune is None:
            return None
        cron = daemon.image_prune.schedule
    elif name == "purge":
        if daemon.purge is None:
            return None
        cron = daemon.purge.schedule
        if daemon.purge.interval is not None:
            interval = daemon.purge.interval.total_seconds()
    else:
        raise ValueError(f"unknown job {name!r}")
    if cron is not None:
        return cron_trigger(cron, jitter)
    assert interval is not None
    return IntervalTrigger(seconds=interval, jitter=jitter, timezone=UTC)


class JobRunner:
    """Runs job bodies with structured logs and metrics, and knows which are running.

    Shared by the scheduler (`wrap`) and ``nublado daemon --once`` (`run`),
    so a job is logged and measured the same way however it was started.
    """

    def __init__(self, metrics: Metrics, may_start: Callable[[], bool] | None = None) -> None:
        self.metrics = metrics
        self.may_start = may_start
        """Asked before a scheduled run starts: False and the run is not started (a leader
        whose lead is no longer confirmed, `LeaderElector.confirmed`)."""
        self._log = structlog.get_logger("nublado.daemon")
        self._running: dict[str, asyncio.Task[Any]] = {}

    async def run(self, name: str, job: Job) -> bool:
        """Run one job now; whether it succeeded. Its errors are logged, never raised."""
        log = self._log.bind(job=name)
        log.info("Job started")
        start = time.monotonic()
        task = asyncio.current_task()
        if task is not None:
            self._running[name] = task
        try:
            await job()
        except asyncio.CancelledError:
            # Cancelled by the daemon (lead lost, process stopping): expected,
            # so one line and a count, never a traceback.
            self.metrics.job_runs.labels(job=name, outcome="cancelled").inc()
            log.info("Job cancelled", duration=round(time.monotonic() - start, 3))
            raise
        except Exception as exc:
            elapsed = time.monotonic() - start
            self.metrics.job_runs.labels(job=name, outcome="failure").inc()
            self.metrics.job_failures.labels(job=name, error=type(exc).__name__).inc()
            self.metrics.job_duration.labels(job=name).observe(elapsed)
            log.error(
                "Job failed",
                duration=round(elapsed, 3),
                error=f"{type(exc).__name__}: {exc}",
                exc_info=not isinstance(exc, NubladoError),
            )
            return False
        finally:
            if self._running.get(name) is task:
                del self._running[name]
        elapsed = time.monotonic() - start
        self.metrics.job_runs.labels(job=name, outcome="success").inc()
        self.metrics.job_duration.labels(job=name).observe(elapsed)
        self.metrics.job_last_success.labels(job=name).set(time.time())
        log.info("Job finished", duration=round(elapsed, 3))
        return True

    def wrap(
        self, name: str, job: Job, then: Callable[[], None] | None = None
    ) -> Callable[[], Awaitable[None]]:
        """The scheduler's callable for a job: `run`, then ``then()`` after a success."""

        async def scheduled() -> None:
            if self.may_start is not None and not self.may_start():
                self.metrics.job_runs.labels(job=name, outcome="skipped").inc()
                self._log.warning("Job not started: this replica's lead is not confirmed", job=name)
                return
            try:
                succeeded = await self.run(name, job)
            except asyncio.CancelledError:
                # `run` logged and counted it; re-raised, APScheduler would log
                # "Job ... raised an exception" with a traceback for every
                # cancelled run. The task ends here either way.
                return
            if succeeded and then is not None:
                then()

        scheduled.__name__ = scheduled.__qualname__ = f"job_{name.replace('-', '_')}"
        return scheduled

    def on_event(self, event: JobEvent) -> None:
        """APScheduler listener: count and log runs skipped or missed."""
        name = str(event.job_id)
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.metrics.job_runs.labels(job=name, outcome="skipped").inc()
            self._log.warning("Job skipped: its previous run is still running", job=name)
        elif event.code == EVENT_JOB_MISSED:
            self.metrics.job_runs.labels(job=name, outcome="skipped").inc()
            self._log.warning("Job skipped: it could not start in time", job=name)

    @property
    def running(self) -> list[str]:
        """Jobs running now."""
        return sorted(self._running)

    async def cancel_running(self) -> None:
        """Cancel every running job and wait until each has stopped."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def register_jobs(
    scheduler: Scheduler,
    config: Config,
    jobs: Mapping[str, Job],
    *,
    runner: JobRunner | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Add each of ``jobs`` that ``config`` schedules; the names added, in `JOB_NAMES` order.

    Every job: coalesced, one instance at a time, ``daemon.misfireGraceTime``
    to start late, an id equal to its name. `RUN_AT_START` jobs run first at
    ``now`` (default: the present). A successful ``image-refresh`` runs
    ``prepull`` at once (images-tools.md 3.8).
    """
    unknown = sorted(set(jobs) - set(JOB_NAMES))
    if unknown:
        raise ValueError(f"unknown jobs {unknown}; known: {', '.join(JOB_NAMES)}")
    runner = runner or JobRunner(Metrics())
    start = now or datetime.now(UTC)
    grace = max(1, round(config.daemon.misfire_grace_time.total_seconds()))
    added: list[str] = []
    for name in JOB_NAMES:
        job = jobs.get(name)
        trigger = job_trigger(name, config) if job is not None else None
        if job is None or trigger is None:
            continue
        then = None
        if name == "image-refresh" and "prepull" in jobs:

            def then() -> None:
                scheduler.modify_job("prepull", next_run_time=datetime.now(UTC))

        options: dict[str, Any] = {}
        if name in RUN_AT_START:
            options["next_run_time"] = start
        scheduler.add_job(
            runner.wrap(name, job, then),
            trigger,
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=grace,
            replace_existing=True,
            **options,
        )
        runner.metrics.declare_job(name)
        added.append(name)
    scheduler.add_listener(runner.on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
    return added


# The standard jobs


def standard_jobs(
    config: Config,
    *,
    http: httpx.AsyncClient,
    metrics: Metrics,
    images: ImageService | None = None,
    fileservers: FileServerService | None = None,
    labs: LabService | None = None,
    kube: KubernetesClient | None = None,
    renderer: Renderer | None = None,
    namespace: str = "",
    alerts: Alerts | None = None,
    discovery: Callable[[], Awaitable[Mapping[str, Any] | None]] | None = None,
) -> dict[str, Job]:
    """The jobs the controller's own services provide.

    ``labs`` (with ``kube`` and ``renderer``): lab-reconcile, a `LabReconciler`
    over it (``namespace``: the controller's, where the lab records are;
    ``alerts``, ``discovery`` as the lab service's). ``images`` None: no
    image-refresh and prepull (tests that refresh by hand); ``fileservers``
    None or disabled: no fileserver-reconcile; image-prune and purge when their
    sections are configured.
    """
    jobs: dict[str, Job] = {}
    if labs is not None and kube is not None and renderer is not None:
        from .services.reconcile import LabReconciler

        reconciler = LabReconciler(
            config,
            kube,
            labs,
            renderer,
            namespace=namespace,
            metrics=metrics,
            alerts=alerts,
            discovery=discovery,
        )
        jobs["lab-reconcile"] = reconciler.run
    if fileservers is not None and fileservers.enabled:
        jobs["fileserver-reconcile"] = fileservers.reconcile
    if images is not None:
        jobs["image-refresh"] = _image_refresh(images)
        jobs["prepull"] = _prepull(images)
    if config.daemon.image_prune is not None:
        jobs["image-prune"] = _image_prune(config, http, metrics)
    if config.daemon.purge is not None:
        jobs["purge"] = _purge(config, metrics)
    return jobs


def _image_refresh(images: ImageService) -> Job:
    async def image_refresh() -> None:
        """Re-read registry and nodes; a failure kept the old data and fails the run."""
        if not await images.refresh():
            raise JobFailedError(f"image refresh failed: {images.last_error}")

    return image_refresh


def _prepull(images: ImageService) -> Job:
    async def prepull() -> None:
        """Prepull what the last refresh found missing (refreshing first if there was none)."""
        if images.refresh_count == 0 and not await images.refresh():
            raise JobFailedError(f"image refresh before prepull failed: {images.last_error}")
        report = await images.prepull()
        if report is not None and report.failed:
            raise JobFailedError(f"{len(report.failed)} of {len(report.outcomes)} prepulls failed")

    return prepull


def _image_prune(config: Config, http: httpx.AsyncClient, metrics: Metrics) -> Job:
    settings = config.daemon.image_prune
    assert settings is not None

    async def image_prune() -> None:
        """Prune the controller's image source with ``keep``; a dry run unless enabled."""
        from .images.prune import prune_registry

        source = config.images.source
        log = structlog.get_logger("nublado.daemon").bind(job="image-prune")
        if source.type == "static":
            raise JobFailedError("a static image source has no registry to prune")
        docker = gar = None
        if source.type == "google":
            from .images.gar import GARClient

            gar = GARClient()
        else:
            from .images.credentials import DockerCredentials
            from .images.docker import DockerRegistryClient

            path = config.images.docker_credentials_path
            credentials = DockerCredentials.from_path(path) if path.is_file() else None
            docker = DockerRegistryClient(http, credentials)

        def spared(one: Any) -> None:
            log.info("Image kept", reason=str(one))

        doomed = await prune_registry(
            source,
            settings.keep,
            execute=settings.enabled,
            docker=docker,
            gar=gar,
            on_spared=spared,
        )
        mode = "executed" if settings.enabled else "dry_run"
        metrics.images_pruned.labels(mode=mode).inc(len(doomed))
        if settings.enabled:
            log.info("Pruned images", deleted=doomed)
        else:
            log.info("Would prune images (dry run: imagePrune.enabled is false)", would=doomed)

    return image_prune


def _purge(config: Config, metrics: Metrics) -> Job:
    settings = config.daemon.purge
    assert settings is not None

    async def purge() -> None:
        """The purger over the configured policy, in a worker thread (blocking file I/O)."""
        from .purger.config import PurgerConfig
        from .purger.purger import Purger

        purger = Purger(PurgerConfig(policy_file=settings.policy_file, dry_run=settings.dry_run))
        # A thread cannot be cancelled: a run cancelled while planning (the leader
        # lost its Lease) stops before it deletes anything.
        cancelled = threading.Event()

        def execute() -> int:
            plan = purger.plan()
            # Counts, not the report: a plan may name millions of files, one log line.
            _log.info("Purge planned: %d files", len(plan.files))
            if cancelled.is_set():
                return 0
            # purge() re-checks each planned file's age as it unlinks it (one
            # pass): a file rewritten since the plan is kept and not counted.
            deleted = purger.purge()
            return len(plan.files) if settings.dry_run else deleted

        try:
            count = await asyncio.to_thread(execute)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        metrics.files_purged.labels(mode="dry_run" if settings.dry_run else "executed").inc(count)

    return purge


# Non-leaders' images


async def follow_images(images: ImageService, interval: float, leading: Callable[[], bool]) -> None:
    """Refresh the image snapshot every ``interval`` while this replica is not the leader.

    Every replica answers menus and image routes from its own snapshot; the
    leader's ``image-refresh`` job keeps the leader's fresh (and prepulls),
    this loop the others'. It never prepulls: that creates pods.
    """
    while True:
        await asyncio.sleep(interval)
        if not leading():
            await images.refresh()  # logs and counts its own failures


# The daemon


def default_identity() -> str:
    """This replica's name in the Lease: host name (the pod's) and a random suffix."""
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


class Daemon:
    """The jobs of one replica: scheduled while it leads, or run once on demand.

    ``kube`` and ``namespace`` locate the Lease; ``elect=False`` runs the
    scheduler without an election (one replica, or tests).
    """

    def __init__(
        self,
        config: Config,
        jobs: Mapping[str, Job],
        *,
        kube: KubernetesClient | None = None,
        namespace: str | None = None,
        identity: str | None = None,
        metrics: Metrics | None = None,
        elect: bool = True,
        release_on_cancel: bool = True,
    ) -> None:
        self.config = config
        self.jobs = dict(jobs)
        self.metrics = metrics or Metrics()
        self.runner = JobRunner(self.metrics)
        self.identity = identity or default_identity()
        self.scheduler: AsyncIOScheduler | None = None
        self.elector: LeaderElector | None = None
        self._leading = False
        if elect:
            if kube is None or namespace is None:
                raise ValueError("leader election needs a Kubernetes client and a namespace")
            election = config.daemon.leader_election
            self.elector = LeaderElector(
                kube,
                namespace=namespace,
                name=election.lease_name,
                identity=self.identity,
                lease_duration=election.lease_duration.total_seconds(),
                renew_deadline=election.renew_deadline.total_seconds(),
                retry_period=election.retry_period.total_seconds(),
                release_on_cancel=release_on_cancel,
            )
            self.elector.on_change = self._set_leading
            self.runner.may_start = self.elector.confirmed
        self.metrics.leader.set(0)
        # APScheduler's own INFO lines ("Running job ...") repeat the runner's structured ones.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)

    def _set_leading(self, leading: bool) -> None:
        self._leading = leading
        self.metrics.leader.set(1 if leading else 0)

    @property
    def leading(self) -> bool:
        """Whether this replica runs the scheduled jobs now."""
        return self._leading

    @property
    def job_names(self) -> list[str]:
        """The jobs this daemon has, in `JOB_NAMES` order."""
        return [name for name in JOB_NAMES if name in self.jobs]

    async def run_once(self, name: str) -> bool:
        """Run one job now, outside any schedule and election; whether it succeeded."""
        if name not in self.jobs:
            raise UnknownJobError(name, self.job_names)
        return await self.runner.run(name, self.jobs[name])

    async def lead(self) -> None:
        """Run the scheduler until cancelled; then stop it and wait for running jobs to stop."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        register_jobs(scheduler, self.config, self.jobs, runner=self.runner)
        scheduler.start()
        self.scheduler = scheduler
        try:
            await asyncio.Event().wait()
        finally:
            self.scheduler = None
            scheduler.shutdown(wait=False)
            await self.runner.cancel_running()

    async def run(self) -> None:
        """Campaign for the Lease and schedule the jobs while leading, until cancelled."""
        if self.elector is None:
            self._set_leading(True)
            try:
                await self.lead()
            finally:
                self._set_leading(False)
        else:
            await self.elector.run(self.lead)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Daemon]:
        """`run` in the background for the body's duration (the app's lifespan)."""
        task = asyncio.create_task(self.run(), name="nublado-daemon")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ``nublado daemon``


async def _standalone(
    config: Config, kube: KubernetesClient, http: httpx.AsyncClient, metrics: Metrics
) -> tuple[Daemon, LabService]:
    """The daemon of ``nublado daemon``: the controller's services, without the API.

    The file servers' reconcile reads the cluster itself (no watches needed);
    the image service starts with no snapshot (prepull refreshes first). The
    lab service is the lab reconcile's way to delete a lab as a DELETE would
    (record, events); the caller starts and stops it around the daemon.
    """
    from .alerts import alerts_from_config
    from .api.controller import repertoire_discovery
    from .models.metadata import ControllerMetadata
    from .render.engine import Renderer
    from .services.fileservers import FileServerService
    from .services.images import ImageService, build_image_source
    from .services.labs import LabService
    from .services.prepuller import Prepuller

    metadata = ControllerMetadata.from_directory(config.metadata_path)
    renderer = Renderer(config.template_dirs)
    prepuller = Prepuller(kube, config, metadata, renderer=renderer)
    images = ImageService(config, build_image_source(config.images, http), kube, prepuller)
    identity = default_identity()
    fileservers = FileServerService(
        config, kube, renderer, namespace=metadata.namespace, identity=identity, metrics=metrics
    )
    alerts = alerts_from_config(config, http)
    # As in nublado serve: a files ConfigMap the reconcile re-creates gets the document.
    discovery = (
        repertoire_discovery(http, config.repertoire_base_url)
        if config.repertoire_base_url
        else None
    )
    labs = LabService(
        config,
        kube,
        images,
        renderer,
        namespace=metadata.namespace,
        identity=identity,
        discovery=discovery,
        metrics=metrics,
        alerts=alerts,
    )
    jobs = standard_jobs(
        config,
        http=http,
        metrics=metrics,
        images=images,
        fileservers=fileservers,
        labs=labs,
        kube=kube,
        renderer=renderer,
        namespace=metadata.namespace,
        alerts=alerts,
        discovery=discovery,
    )
    daemon = Daemon(
        config, jobs, kube=kube, namespace=metadata.namespace, identity=identity, metrics=metrics
    )
    return daemon, labs


OFFLINE_JOBS = frozenset({"image-prune", "purge"})
"""Jobs that do not talk to Kubernetes: ``--once`` of one of them skips the permission check."""


async def _main(
    config: Config,
    kubeconfig: Path | None,
    once: str | None,
    metrics_port: int | None = None,
    *,
    check_permissions: bool = False,
) -> int:
    """0 after a clean stop or a successful ``--once`` run, 1 when that run failed.

    The lab service (watches of every lab object, takeover of abandoned lab
    operations) is started only for the scheduled daemon and ``--once
    lab-reconcile``, the only job that reads it.
    """
    from .kube.client import KubernetesClient
    from .kube.errors import KubernetesError

    try:
        kube = await KubernetesClient.load(kubeconfig)
    except KubernetesError as exc:
        raise InputError(str(exc)) from None
    async with kube, httpx.AsyncClient() as http:
        if check_permissions and once not in OFFLINE_JOBS:
            from .models.metadata import ControllerMetadata
            from .permissions import check_permissions as check

            namespace = ControllerMetadata.from_directory(config.metadata_path).namespace
            await check(kube, config.template_dirs, namespace)
        kube.on_error = (metrics := Metrics()).kubernetes_error
        daemon, labs = await _standalone(config, kube, http, metrics)
        if once is not None and once not in daemon.jobs:
            raise InputError(
                f"job {once} is not configured here; configured jobs: {', '.join(daemon.job_names)}"
            )
        if once not in (None, "lab-reconcile"):
            # Prune and purge need no lab state: no cluster-wide LIST and WATCH
            # of the labs, no takeover of abandoned lab operations.
            return await _run_daemon(daemon, once, metrics, metrics_port)
        try:
            await labs.start()
        except KubernetesError as exc:
            raise InputError(f"cannot read the labs: {exc}") from None
        try:
            return await _run_daemon(daemon, once, metrics, metrics_port)
        finally:
            await labs.stop()


async def _run_daemon(
    daemon: Daemon, once: str | None, metrics: Metrics, metrics_port: int | None
) -> int:
    """One job, or the election until a signal (`_main` starts the lab service if needed)."""
    if once is not None:
        return 0 if await daemon.run_once(once) else 1
    if metrics_port is not None:
        _serve_metrics(metrics, metrics_port)
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(daemon.run())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        _log.info("Daemon stopped")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def _serve_metrics(metrics: Metrics, port: int) -> None:
    """``GET /metrics`` of the daemon's registry on ``port`` (a thread of prometheus_client)."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, registry=metrics.registry)
    except OSError as exc:
        raise InputError(f"cannot serve metrics on port {port}: {exc.strerror}") from None
    _log.info("Serving metrics on port %d", port)


@click.command("daemon")
@config_option
@kubeconfig_option
@click.option(
    "--once",
    "once",
    metavar="JOB",
    default=None,
    help=f"Run one job now and exit (0: success, 1: it failed). Jobs: {', '.join(JOB_NAMES)}.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve Prometheus metrics on this port (not with --once).",
)
@skip_permission_check_option
def daemon(
    config_path: Path,
    kubeconfig: Path | None,
    once: str | None,
    metrics_port: int | None,
    skip_permission_check: bool,
) -> None:
    """Run the periodic jobs (leader-elected), or one job now with --once.

    First asks the API server whether it holds every grant of the controller's
    RBAC (not for --once purge or image-prune, which do not use Kubernetes).
    """
    from .serve import _load, pin_mmap_threshold, run_event_loop

    if once is not None and once not in JOB_NAMES:
        raise UnknownJobError(once, list(JOB_NAMES))
    if once is not None and metrics_port is not None:
        raise click.UsageError("--metrics-port serves a running daemon: not with --once")
    config = _load(config_path)
    pin_mmap_threshold()  # as `nublado serve` does: a reconcile pass's LISTs leave no RSS
    status = run_event_loop(
        _main(config, kubeconfig, once, metrics_port, check_permissions=not skip_permission_check)
    )
    if status:
        raise click.exceptions.Exit(status)
