"""The controller's Prometheus metrics (DECISIONS.md, Platform: Prometheus, not Kafka).

One `Metrics` per app, each with its own registry, so tests can build many
apps in one process. Services receive it and count; ``GET /metrics`` serves
the registry. These replace upstream's three metrics events (api.md 10):
``spawn_success`` / ``spawn_failure`` become `spawns` by outcome and the
`spawn_duration` histogram, ``active_labs`` the gauge.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .kube.errors import KubernetesConnectionError, KubernetesError, KubernetesTimeoutError

__all__ = ["JOB_OUTCOMES", "SPAWN_OUTCOMES", "Metrics"]

SPAWN_OUTCOMES = ("success", "failure", "timeout", "cancelled")
"""Values of the ``outcome`` label of `Metrics.spawns`."""

JOB_OUTCOMES = ("success", "failure", "skipped", "cancelled")
"""Values of the ``outcome`` label of `Metrics.job_runs`.

skipped: not started (the previous run still ran, the run was due too long
ago, or this replica could not confirm its lead); cancelled: the lead was
lost or the process stopped while it ran.
"""

# Jobs take from milliseconds (nothing to do) to an hour (a prune of a large registry).
_JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

# Spawns take milliseconds against the sandbox and minutes on a cold node.
_SPAWN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """Every metric of one controller, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.active_labs = Gauge(
            "nublado_active_labs",
            "Labs whose status is running, as this replica sees the cluster.",
            registry=self.registry,
        )
        self.spawns = Counter(
            "nublado_spawns",
            "Lab spawns this replica ran, by outcome (success, failure, timeout, cancelled).",
            ["outcome"],
            registry=self.registry,
        )
        self.spawn_duration = Histogram(
            "nublado_spawn_duration_seconds",
            "Time from the create request to the lab's pod running, successful spawns only.",
            buckets=_SPAWN_BUCKETS,
            registry=self.registry,
        )
        self.kubernetes_errors = Counter(
            "nublado_kubernetes_errors",
            "Kubernetes API calls that failed, by Status reason (NotFound, Conflict, ...).",
            ["reason"],
            registry=self.registry,
        )
        self.job_runs = Counter(
            "nublado_job_runs",
            "Daemon job runs on this replica, by job and outcome"
            " (success, failure, skipped, cancelled).",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.job_failures = Counter(
            "nublado_job_failures",
            "Daemon job runs that raised, by job and exception class.",
            ["job", "error"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "nublado_job_duration_seconds",
            "Wall time of daemon job runs, by job (failed runs included).",
            ["job"],
            buckets=_JOB_BUCKETS,
            registry=self.registry,
        )
        self.job_last_success = Gauge(
            "nublado_job_last_success_timestamp_seconds",
            "Unix time at which each daemon job last finished successfully on this replica.",
            ["job"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "nublado_daemon_leader",
            "1 while this replica holds the daemon's Lease and runs its jobs, else 0.",
            registry=self.registry,
        )
        self.images_pruned = Counter(
            "nublado_images_pruned",
            "Registry images the image-prune job deleted (executed) or would delete (dry_run).",
            ["mode"],
            registry=self.registry,
        )
        self.files_purged = Counter(
            "nublado_files_purged",
            "Scratch files the purge job removed (executed) or would remove (dry_run).",
            ["mode"],
            registry=self.registry,
        )
        self.lab_reconcile_actions = Counter(
            "nublado_lab_reconcile_actions",
            "What lab reconciles did, by action (reapplied, fixed, env_incomplete,"
            " deleted_terminated, deleted_vanished, deleted_failed, deleted_orphan,"
            " ended_namespace_gone, orphan_marked).",
            ["action"],
            registry=self.registry,
        )
        self.lab_reconcile_errors = Counter(
            "nublado_lab_reconcile_errors",
            "Lab reconcile failures: a whole pass (its LISTs) or one lab's repair.",
            ["stage"],
            registry=self.registry,
        )
        self.lab_drift = Gauge(
            "nublado_lab_drift",
            "Labs whose objects differ from their desired render in a way apply cannot fix "
            "(a changed pod spec), as of the last reconcile, by kind.",
            ["kind"],
            registry=self.registry,
        )
        for outcome in SPAWN_OUTCOMES:
            self.spawns.labels(outcome=outcome)

    def kubernetes_error(self, error: KubernetesError) -> None:
        """Count a failed Kubernetes call by its Status reason (the client's ``on_error``).

        Calls that got no Status count as ``Timeout`` or ``ConnectionError``.
        """
        if error.reason:
            reason = error.reason
        elif isinstance(error, KubernetesTimeoutError):
            reason = "Timeout"
        elif isinstance(error, KubernetesConnectionError):
            reason = "ConnectionError"
        else:
            reason = "Unknown"
        self.kubernetes_errors.labels(reason=reason).inc()

    def declare_job(self, job: str) -> None:
        """Show a job's series at zero before its first run (a scraper sees it is scheduled)."""
        for outcome in JOB_OUTCOMES:
            self.job_runs.labels(job=job, outcome=outcome)
        self.job_duration.labels(job=job)
