"""The daemon's jobs: registration, runs and failures, prune and purge on a fake clock.

The registry is mocked at its HTTP boundary (respx, `FakeRegistry`); the
purge works on real files in tmp_path; the scheduler is APScheduler's own,
with the wall clock moved by time-machine where a cron time must come.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import respx
import time_machine
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from fake_registry import FakeRegistry
from image_fixtures import CREDENTIALS
from reference_cases import reference_config

from nublado.config import Config
from nublado.config.daemon import DaemonConfig, ImagePruneConfig, PurgeConfig
from nublado.daemon import (
    JOB_NAMES,
    Daemon,
    JobRunner,
    UnknownJobError,
    follow_images,
    job_trigger,
    register_jobs,
    standard_jobs,
)
from nublado.logging import configure_logging
from nublado.metrics import Metrics

TAGS = {
    "w_2021_22": "sha256:22",
    "w_2021_21": "sha256:21",
    "w_2021_20": "sha256:20",
    "recommended": "sha256:22",
}
KEEP_NEWEST_WEEKLY = {"weekly": {"number": 1}}


def daemon_config(**daemon: Any) -> Config:
    """standard.yaml (reference) with the given ``daemon`` section and test credentials."""
    config = reference_config("standard")
    images = config.images.model_copy(update={"docker_credentials_path": CREDENTIALS})
    return config.model_copy(
        update={"images": images, "daemon": DaemonConfig.model_validate(daemon)}
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


class FakeScheduler:
    """Records what `register_jobs` asks for."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.listeners: list[tuple[Any, int]] = []
        self.modified: list[tuple[str, dict[str, Any]]] = []

    def add_job(self, func: Any, trigger: Any = None, **kwargs: Any) -> None:
        self.jobs[kwargs["id"]] = {"func": func, "trigger": trigger, **kwargs}

    def add_listener(self, callback: Any, mask: int = 0) -> None:
        self.listeners.append((callback, mask))

    def modify_job(self, job_id: str, jobstore: str | None = None, **changes: Any) -> None:
        self.modified.append((job_id, changes))


async def nothing() -> None:
    return None


# Registration


def test_every_job_is_registered_with_its_schedule() -> None:
    config = daemon_config(
        jitter="7s",
        misfireGraceTime="2m",
        imagePrune={"schedule": "15 4 * * 1", "keep": KEEP_NEWEST_WEEKLY},
        purge={"policyFile": "/etc/purger/policy.yaml", "interval": "6h"},
    )
    scheduler = FakeScheduler()
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    added = register_jobs(scheduler, config, dict.fromkeys(JOB_NAMES, nothing), now=now)

    assert added == list(JOB_NAMES)
    intervals = {
        "lab-reconcile": config.lab.reconcile_interval,
        "fileserver-reconcile": config.fileserver.reconcile_interval,
        "image-refresh": config.images.refresh_interval,
        "prepull": config.images.refresh_interval,
        "purge": timedelta(hours=6),
    }
    for name, job in scheduler.jobs.items():
        assert job["name"] == name
        assert job["coalesce"] is True
        assert job["max_instances"] == 1
        assert job["misfire_grace_time"] == 120
        assert job["trigger"].jitter == 7
        at_start = name in ("lab-reconcile", "fileserver-reconcile", "prepull")
        assert (job.get("next_run_time") == now) == at_start
        if name in intervals:
            assert isinstance(job["trigger"], IntervalTrigger)
            assert job["trigger"].interval == intervals[name]
    prune = scheduler.jobs["image-prune"]["trigger"]
    assert isinstance(prune, CronTrigger)
    assert str(prune) == "cron[month='*', day='*', day_of_week='mon', hour='4', minute='15']"
    assert len(scheduler.listeners) == 1


@pytest.mark.parametrize(
    ("schedule", "fires"),
    [
        ("15 4 * * 1", ["Mon 07", "Mon 14"]),
        ("15 4 * * 0", ["Sun 13", "Sun 20"]),
        ("15 4 * * 7", ["Sun 13", "Sun 20"]),
        ("15 4 * * 1-2", ["Mon 07", "Tue 08"]),
        ("15 4 * * */3", ["Wed 09", "Sat 12"]),
        ("15 4 * * fri", ["Fri 11", "Fri 18"]),
        ("15 4 * * *", ["Mon 07", "Tue 08"]),
        # Both day fields restricted: either matches (the 1st, or a Monday).
        ("15 4 1 * 1", ["Mon 07", "Mon 14", "Mon 21", "Mon 28", "Fri 01", "Mon 04"]),
        ("15 4 8,9 * 0", ["Tue 08", "Wed 09", "Sun 13", "Sun 20"]),
        ("15 4 1 * 7", ["Sun 13", "Sun 20", "Sun 27", "Fri 01"]),
        # One of them starts with *: both must match, as cron reads it.
        ("15 4 */2 * 1", ["Mon 07", "Mon 21", "Mon 11"]),
        ("15 4 1 * *", ["Fri 01", "Mon 01"]),
    ],
)
def test_weekdays_are_read_as_cron_reads_them(schedule: str, fires: list[str]) -> None:
    # APScheduler 3's own from_crontab would count 0 as Monday.
    config = daemon_config(jitter=0, imagePrune={"schedule": schedule, "keep": {}})
    trigger = job_trigger("image-prune", config)
    assert trigger is not None
    when = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)  # a Sunday
    seen = []
    for _ in fires:
        fire = trigger.get_next_fire_time(None, when)
        assert fire is not None
        seen.append(fire.strftime("%a %d"))
        when = fire + timedelta(seconds=1)

    assert seen == fires


def test_prune_and_purge_are_absent_unless_configured() -> None:
    config = daemon_config()

    assert job_trigger("image-prune", config) is None
    assert job_trigger("purge", config) is None
    jobs = standard_jobs(config, http=None, metrics=Metrics())  # type: ignore[arg-type]
    assert sorted(jobs) == []


def test_unknown_job_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown jobs \['lab-reconcil'\]"):
        register_jobs(FakeScheduler(), daemon_config(), {"lab-reconcil": nothing})


@pytest.mark.parametrize("name", ["lab-reconcile", "image-prune"])
def test_jitter_delays_each_fire_time_within_its_bound(name: str) -> None:
    config = daemon_config(jitter="30s", imagePrune={"keep": KEEP_NEWEST_WEEKLY})
    trigger = job_trigger(name, config)
    now = datetime.now(UTC)
    if isinstance(trigger, IntervalTrigger):
        plain = trigger.start_date  # the first fire time: one interval after registration
    else:
        plain = (now + timedelta(days=1)).replace(hour=3, minute=0, second=0, microsecond=0)
        if plain - timedelta(days=1) > now:
            plain -= timedelta(days=1)
    assert trigger is not None

    delays = {(trigger.get_next_fire_time(None, now) - plain).total_seconds() for _ in range(200)}

    assert all(0 <= delay <= 30 for delay in delays)
    assert len(delays) > 100  # really random


def test_a_successful_refresh_runs_prepull_at_once() -> None:
    scheduler = FakeScheduler()
    register_jobs(scheduler, daemon_config(), {"image-refresh": nothing, "prepull": nothing})

    asyncio.run(scheduler.jobs["image-refresh"]["func"]())

    assert [job for job, _ in scheduler.modified] == ["prepull"]


# Configuration


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"leaderElection": {"leaseDuration": "10s", "renewDeadline": "10s"}},
            "leaderElection.renewDeadline: must be shorter than leaseDuration (10s >= 10s)",
        ),
        (
            {"leaderElection": {"retryPeriod": "10s"}},
            "leaderElection.retryPeriod: must be shorter than renewDeadline (10s >= 10s)",
        ),
        (
            {"imagePrune": {"schedule": "0 3 * *", "keep": {}}},
            "imagePrune.schedule: not a crontab schedule (minute hour"
            " day-of-month month day-of-week): '0 3 * *': Wrong number of fields; got 4,"
            " expected 5",
        ),
        (
            {"purge": {"policyFile": "/p.yaml"}},
            "purge.schedule: give exactly one of schedule (cron) and interval",
        ),
    ],
)
def test_bad_daemon_sections_are_refused_at_load(
    section: dict[str, Any], message: str, tmp_path: Path
) -> None:
    import yaml
    from reference_cases import INPUTS

    from nublado.config import ConfigError, load_config

    document = yaml.safe_load((INPUTS / "config" / "standard.yaml").read_text())
    document["daemon"] = section
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value).splitlines()[-1] == f"daemon.{message}"


def test_the_defaults_are_client_gos() -> None:
    election = daemon_config().daemon.leader_election

    assert election.lease_name == "nublado-daemon"
    assert (election.lease_duration, election.renew_deadline, election.retry_period) == (
        timedelta(seconds=15),
        timedelta(seconds=10),
        timedelta(seconds=2),
    )


# Runs, failures, overlap


def fast(config: Config, seconds: float = 0.05) -> Config:
    """Reconciles every ``seconds``, no jitter."""
    lab = config.lab.model_copy(update={"reconcile_interval": timedelta(seconds=seconds)})
    daemon = config.daemon.model_copy(update={"jitter": timedelta(0)})
    return config.model_copy(update={"lab": lab, "daemon": daemon})


async def test_a_failing_job_is_counted_and_keeps_its_schedule() -> None:
    runs = 0
    third = asyncio.Event()

    async def broken() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third.set()
        raise RuntimeError("the cluster is on fire")

    daemon = Daemon(fast(daemon_config()), {"lab-reconcile": broken}, elect=False)
    async with daemon.running():
        async with asyncio.timeout(10):
            await third.wait()
        assert daemon.scheduler is not None
        assert [job.id for job in daemon.scheduler.get_jobs()] == ["lab-reconcile"]

    metrics = daemon.metrics
    failures = sample(metrics, "nublado_job_runs_total", job="lab-reconcile", outcome="failure")
    assert failures is not None and failures >= 3
    assert sample(
        metrics, "nublado_job_failures_total", job="lab-reconcile", error="RuntimeError"
    ) == (failures)
    assert sample(metrics, "nublado_job_runs_total", job="lab-reconcile", outcome="success") == 0
    assert (
        sample(metrics, "nublado_job_last_success_timestamp_seconds", job="lab-reconcile") is None
    )


async def test_a_job_longer_than_its_interval_never_runs_twice_at_once() -> None:
    running = 0
    most = 0
    finished = asyncio.Event()

    async def slow() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.3)  # six intervals
        finally:
            running -= 1
        finished.set()

    daemon = Daemon(fast(daemon_config()), {"lab-reconcile": slow}, elect=False)
    async with daemon.running():
        async with asyncio.timeout(10):
            await finished.wait()

    assert most == 1
    metrics = daemon.metrics
    assert sample(metrics, "nublado_job_runs_total", job="lab-reconcile", outcome="success") == 1
    skipped = sample(metrics, "nublado_job_runs_total", job="lab-reconcile", outcome="skipped")
    assert skipped is not None and skipped >= 2


async def test_stopping_the_daemon_cancels_and_awaits_a_running_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_logging("development")
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def endless() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    daemon = Daemon(fast(daemon_config(), 60), {"lab-reconcile": endless}, elect=False)
    with caplog.at_level(logging.INFO):
        async with daemon.running():
            await started.wait()
            assert daemon.runner.running == ["lab-reconcile"]

    assert stopped.is_set()
    assert daemon.runner.running == []
    assert not daemon.leading
    # One INFO line, no traceback (APScheduler logged one per cancelled run).
    ours = [r for r in caplog.records if r.name.startswith(("nublado.daemon", "apscheduler"))]
    assert not [r for r in ours if r.levelno >= logging.WARNING or r.exc_info]
    cancelled = [r.msg for r in ours if isinstance(r.msg, dict)]
    assert [(m["event"], m["job"]) for m in cancelled if m["event"] == "Job cancelled"] == [
        ("Job cancelled", "lab-reconcile")
    ]
    metrics = daemon.metrics
    assert sample(metrics, "nublado_job_runs_total", job="lab-reconcile", outcome="cancelled") == 1


async def test_run_once_reports_success_and_failure_and_refuses_unknown_jobs() -> None:
    async def broken() -> None:
        raise RuntimeError("no")

    daemon = Daemon(daemon_config(), {"lab-reconcile": nothing, "prepull": broken}, elect=False)

    assert await daemon.run_once("lab-reconcile") is True
    assert await daemon.run_once("prepull") is False
    with pytest.raises(UnknownJobError) as caught:
        await daemon.run_once("purge")
    assert str(caught.value) == "unknown job 'purge'; valid jobs: lab-reconcile, prepull"


# Prune and purge on the scheduler, on a fake clock


async def run_at(daemon: Daemon, when: datetime, name: str) -> None:
    """Move the wall clock to just before ``when`` and let the scheduler fire ``name``."""
    done = asyncio.Event()
    runner = daemon.runner
    original = runner.run

    async def observed(job_name: str, job: Any) -> bool:
        try:
            return await original(job_name, job)
        finally:
            if job_name == name:
                done.set()

    runner.run = observed  # type: ignore[method-assign]
    with time_machine.travel(when - timedelta(seconds=0.3), tick=True):
        async with daemon.running():
            async with asyncio.timeout(10):
                await done.wait()


@pytest.mark.parametrize("enabled", [False, True])
async def test_the_scheduler_prunes_at_its_cron_time(
    enabled: bool, router: respx.MockRouter
) -> None:
    registry = FakeRegistry(router, TAGS)
    config = daemon_config(
        jitter=0,
        imagePrune={"schedule": "0 3 * * *", "enabled": enabled, "keep": KEEP_NEWEST_WEEKLY},
    )
    metrics = Metrics()
    import httpx

    async with httpx.AsyncClient() as http:
        jobs = standard_jobs(config, http=http, metrics=metrics)
        daemon = Daemon(config, jobs, elect=False, metrics=metrics)
        assert daemon.job_names == ["image-prune"]
        await run_at(daemon, datetime(2026, 12, 7, 3, 0, tzinfo=UTC), "image-prune")

    mode = "executed" if enabled else "dry_run"
    assert sample(metrics, "nublado_images_pruned_total", mode=mode) == 2
    assert sample(metrics, "nublado_job_runs_total", job="image-prune", outcome="success") == 1
    if enabled:
        assert sorted(registry.deleted) == ["sha256:20", "sha256:21"]
        assert sorted(registry.tags) == ["recommended", "w_2021_22"]
    else:
        assert registry.deleted == []
        assert sorted(registry.tags) == sorted(TAGS)


def scratch(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A scratch tree with one old large file and one new one, and its policy file."""
    root = tmp_path / "scratch"
    root.mkdir()
    old = root / "old"
    new = root / "new"
    for path in (old, new):
        path.write_bytes(b"x" * 100)
    past = time.time() - 8 * 3600
    os.utime(old, (past, past))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"directories:\n  - path: {root}\n    threshold: 10B\n"
        "    intervals:\n      large: {access_interval: 1h}\n"
    )
    return policy, old, new


@pytest.mark.parametrize("dry_run", [False, True])
async def test_the_scheduler_purges_at_its_cron_time(dry_run: bool, tmp_path: Path) -> None:
    policy, old, new = scratch(tmp_path)
    # The next whole minute: the clock moves less than a minute, so "new" stays new.
    when = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    schedule = f"{when.minute} {when.hour} * * *"
    config = daemon_config(
        jitter=0, purge={"policyFile": str(policy), "schedule": schedule, "dryRun": dry_run}
    )
    metrics = Metrics()
    jobs = standard_jobs(config, http=None, metrics=metrics)  # type: ignore[arg-type]
    daemon = Daemon(config, jobs, elect=False, metrics=metrics)

    await run_at(daemon, when, "purge")

    assert old.exists() == dry_run
    assert new.exists()
    mode = "dry_run" if dry_run else "executed"
    assert sample(metrics, "nublado_files_purged_total", mode=mode) == 1
    assert sample(metrics, "nublado_job_runs_total", job="purge", outcome="success") == 1


async def test_a_purge_that_cannot_read_its_policy_fails_the_run(tmp_path: Path) -> None:
    config = daemon_config(purge={"policyFile": str(tmp_path / "missing.yaml"), "interval": 60})
    metrics = Metrics()
    daemon = Daemon(config, standard_jobs(config, http=None, metrics=metrics), elect=False)  # type: ignore[arg-type]

    assert await daemon.run_once("purge") is False
    runner: JobRunner = daemon.runner
    assert sample(runner.metrics, "nublado_job_runs_total", job="purge", outcome="failure") == 1


def test_prune_config_keeps_everything_it_is_not_told_to_drop() -> None:
    prune = ImagePruneConfig.model_validate({"keep": {}})
    purge = PurgeConfig.model_validate({"policyFile": "/p", "schedule": "0 * * * *"})

    assert (prune.enabled, prune.schedule) == (False, "0 3 * * *")
    assert purge.dry_run is False


async def test_only_replicas_that_do_not_lead_refresh_their_images_on_their_own() -> None:
    class Images:
        refreshes = 0

        async def refresh(self) -> bool:
            self.refreshes += 1
            return True

    images = Images()
    leading = True
    task = asyncio.create_task(follow_images(images, 0.02, lambda: leading))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.1)
        assert images.refreshes == 0  # the leader's image-refresh job does it
        leading = False
        async with asyncio.timeout(5):
            while images.refreshes < 2:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_purge_cancelled_while_planning_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from nublado.purger.purger import Purger

    policy, old, _ = scratch(tmp_path)
    config = daemon_config(purge={"policyFile": str(policy), "interval": 60})
    planning, go, planned = threading.Event(), threading.Event(), threading.Event()
    purges: list[object] = []
    plan = Purger.plan

    def slow_plan(self: Purger) -> Any:
        planning.set()
        go.wait(10)
        try:
            return plan(self)
        finally:
            planned.set()

    monkeypatch.setattr(Purger, "plan", slow_plan)
    monkeypatch.setattr(Purger, "purge", lambda self: purges.append(self))
    daemon = Daemon(config, standard_jobs(config, http=None, metrics=Metrics()), elect=False)  # type: ignore[arg-type]

    task = asyncio.create_task(daemon.run_once("purge"))
    assert await asyncio.to_thread(planning.wait, 10)
    task.cancel()  # the leader lost its Lease
    await asyncio.gather(task, return_exceptions=True)
    go.set()
    assert await asyncio.to_thread(planned.wait, 10)
    await asyncio.sleep(0.2)  # the thread's last step, had it gone on, was the purge

    assert purges == []
    assert old.exists()


async def test_a_scheduled_job_does_not_start_when_the_lead_is_not_confirmed() -> None:
    """A leader paused past its renew deadline wakes with its jobs due: none may start."""
    ran: list[str] = []

    async def job() -> None:
        ran.append("ran")

    runner = JobRunner(Metrics(), may_start=lambda: False)
    await runner.wrap("lab-reconcile", job)()

    assert ran == []
    assert (
        sample(runner.metrics, "nublado_job_runs_total", job="lab-reconcile", outcome="skipped")
        == 1
    )
    runner.may_start = lambda: True
    await runner.wrap("lab-reconcile", job)()
    assert ran == ["ran"]
