"""The ``daemon:`` section: schedules of the periodic jobs and the leader election.

Every key is optional and the whole section may be absent, so an upstream
configuration loads unchanged. The intervals of the reconciles and of the
image refresh are the existing ``lab.reconcileInterval``,
``fileserver.reconcileInterval`` and ``images.refreshInterval``; this section
only adds what upstream had no key for: jitter, the Lease of the leader
election, the image prune (a cron schedule and a keep policy, dry run unless
enabled) and the scratch purge run in the controller.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Annotated, Self

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from ._base import ConfigModel, Duration, KubernetesName, Problem, raise_problems
from .images import ImageFilterPolicy

__all__ = [
    "DEFAULT_LEASE_NAME",
    "CronSchedule",
    "DaemonConfig",
    "ImagePruneConfig",
    "LeaderElectionConfig",
    "PurgeConfig",
    "check_cron",
    "cron_trigger",
]

DEFAULT_LEASE_NAME = "nublado-daemon"
"""The Lease (in the controller's namespace) whose holder runs the daemon's jobs."""


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
"""crontab's day-of-week numbers: 0 (and 7) is Sunday."""


def _weekdays(field: str) -> str:
    """crontab's day-of-week field as names, which APScheduler reads as crontab does.

    APScheduler 3 numbers weekdays from Monday = 0, so its ``from_crontab``
    would run ``0 3 * * 1`` on Tuesdays; numbers (lists, ranges, steps) are
    turned into day names here. Names pass through.
    """
    days: list[str] = []
    for part in field.split(","):
        body, slash, step = part.partition("/")
        if body == "*":
            if not slash:
                return "*"
            low, high = 0, 6
        elif body.isdigit():
            low = int(body)
            high = 7 if slash else low
        elif "-" in body and all(p.isdigit() for p in body.split("-", 1)):
            low, high = (int(p) for p in body.split("-", 1))
        else:
            days.append(part)
            continue
        if high > 7 or low > high or (slash and not step.isdigit()) or step == "0":
            raise ValueError(f"day of week {part!r} is not 0-7 (0 and 7 are Sunday)")
        days.extend(_WEEKDAYS[day % 7] for day in range(low, high + 1, int(step or 1)))
    return ",".join(dict.fromkeys(days))


def cron_trigger(schedule: str, jitter: float | None = None) -> BaseTrigger:
    """The APScheduler trigger of a five-field crontab line, in UTC, as cron reads it.

    When both day fields are restricted (neither starts with ``*``), cron runs
    on days that match either (``0 3 1 * 1``: the 1st of each month and every
    Monday); APScheduler's CronTrigger would need both, so that is two
    triggers, one per day field, and the earlier fire time wins.
    """
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"Wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    weekdays = _weekdays(weekday)

    def trigger(day: str, day_of_week: str, jitter: float | None) -> CronTrigger:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            jitter=jitter,
            timezone=UTC,
        )

    if day.startswith("*") or weekday.startswith("*"):
        return trigger(day, weekdays, jitter)
    return OrTrigger([trigger(day, "*", None), trigger("*", weekdays, None)], jitter=jitter)


def check_cron(schedule: str) -> str:
    """Refuse a schedule that is not a five-field crontab line (minute hour day month weekday)."""
    try:
        cron_trigger(schedule)
    except ValueError as exc:
        raise ValueError(
            f"not a crontab schedule (minute hour day-of-month month day-of-week): {schedule!r}:"
            f" {exc}"
        ) from None
    return schedule


CronSchedule = Annotated[
    str,
    AfterValidator(check_cron),
    WithJsonSchema(
        {
            "type": "string",
            "description": "Five crontab fields, in UTC: minute hour day-of-month month"
            " day-of-week (0 3 * * * is every day at 03:00)",
        }
    ),
]
"""A crontab line, checked when the configuration is loaded."""


class LeaderElectionConfig(ConfigModel):
    """The Lease whose holder runs the jobs; client-go's leader-election defaults.

    A leader renews every ``retryPeriod``; if it has not renewed for
    ``renewDeadline`` it stops its jobs and gives the lead up, which is before
    its Lease (``leaseDuration`` after the last renewal) can be taken by
    another replica.
    """

    lease_name: Annotated[
        KubernetesName, Field(description="Name of the Lease, in the controller's namespace")
    ] = DEFAULT_LEASE_NAME
    lease_duration: Duration = timedelta(seconds=15)
    renew_deadline: Duration = timedelta(seconds=10)
    retry_period: Duration = timedelta(seconds=2)

    @model_validator(mode="after")
    def _check_order(self) -> Self:
        problems: list[Problem] = []
        if self.lease_duration < timedelta(seconds=1):
            problems.append((("leaseDuration",), "must be at least 1 second"))
        if self.retry_period <= timedelta(0):
            problems.append((("retryPeriod",), "must be more than 0 seconds"))
        if self.renew_deadline >= self.lease_duration:
            problems.append(
                (
                    ("renewDeadline",),
                    f"must be shorter than leaseDuration ({self.renew_deadline.total_seconds():g}s"
                    f" >= {self.lease_duration.total_seconds():g}s)",
                )
            )
        if self.retry_period >= self.renew_deadline:
            problems.append(
                (
                    ("retryPeriod",),
                    f"must be shorter than renewDeadline ({self.retry_period.total_seconds():g}s"
                    f" >= {self.renew_deadline.total_seconds():g}s)",
                )
            )
        raise_problems(problems)
        return self


class ImagePruneConfig(ConfigModel):
    """Delete registry images the ``keep`` policy does not keep, on a schedule.

    ``enabled: false`` (the default) is a dry run: the job only logs and
    counts what it would delete. Alias tags, unknown tags and every image a
    kept tag points at are always kept (as ``nublado images prune``).
    """

    schedule: CronSchedule = "0 3 * * *"
    enabled: Annotated[
        bool, Field(description="true: delete; false: a dry run, only log and count")
    ] = False
    keep: Annotated[
        ImageFilterPolicy, Field(description="The images to keep, as the menu's filters")
    ]


class PurgeConfig(ConfigModel):
    """Run the scratch purger in the controller (a site that mounts scratch into it).

    Give ``schedule`` (cron) or ``interval``; the purger CronJob stays the
    other way to purge.
    """

    policy_file: Annotated[Path, Field(description="The purger's policy file")]
    schedule: Annotated[
        CronSchedule | None, Field(description="Crontab line (UTC); or give interval")
    ] = None
    interval: Annotated[
        Duration | None, Field(description="Time between runs; or give schedule")
    ] = None
    dry_run: Annotated[bool, Field(description="Only report what would be purged")] = False

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        if (self.schedule is None) == (self.interval is None):
            raise_problems([(("schedule",), "give exactly one of schedule (cron) and interval")])
        return self


class DaemonConfig(ConfigModel):
    """How the daemon's jobs are scheduled and which replica runs them."""

    jitter: Duration = timedelta(seconds=10)
    """At most this much random delay added to each run, so replicas and jobs spread out."""
    misfire_grace_time: Duration = timedelta(minutes=5)
    """A run that could not start on time may still start this long after (else skipped)."""
    leader_election: LeaderElectionConfig = Field(
        default_factory=LeaderElectionConfig, description="Which replica runs the jobs"
    )
    image_prune: Annotated[
        ImagePruneConfig | None, Field(description="Unset: no image-prune job")
    ] = None
    purge: Annotated[PurgeConfig | None, Field(description="Unset: no purge job")] = None
