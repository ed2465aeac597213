"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

Several controller replicas serve the API; only one may run the daemon's
jobs. The one whose identity is the Lease's ``holderIdentity`` leads. As in
client-go's leaderelection package:

- A candidate reads the Lease every ``retry_period``. It takes it when it is
  absent, has no holder, or its record (holder, ``renewTime``,
  ``resourceVersion``) has not changed for ``leaseDurationSeconds`` as
  measured on *this* replica's monotonic clock since the change was first
  seen. Remote clocks are never compared with ours: a replica whose clock is
  minutes off still waits out a whole lease.
- Every write is a create, or a replace carrying the read
  ``resourceVersion``: of two candidates racing, the API server accepts one
  and answers the other 409, which then reads again.
- The leader renews every ``retry_period``. If no renewal has succeeded for
  ``renew_deadline`` (counted from when the last successful one was *sent*,
  so before the server could have stored it) it stops leading, and its work is
  cancelled and awaited before ``leaseDuration`` has passed: no other replica
  can judge the Lease expired before then.
- On a clean stop the leader clears ``holderIdentity`` (``ReleaseOnCancel``)
  so another replica takes over on its next try instead of after a lease.

Beyond client-go: work may ask `LeaderElector.confirmed` before it starts
anything (the daemon does before each job). A replica paused past its renew
deadline (a stopped process, a starved event loop) would otherwise wake with
its timers all due and start work before its renew loop saw the deadline
pass; ``confirmed`` answers from the local monotonic clock and, when the
deadline has passed, makes the replica step down at once. And when ``lead()``
ends by itself (it failed), the replica steps down and releases the Lease,
and waits a lease before campaigning again, so another replica can lead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .client import KubernetesClient
from .errors import AlreadyExistsError, ConflictError, KubernetesError, NotFoundError

__all__ = ["LeaderElector", "LeaseRecord"]

_log = logging.getLogger(__name__)

Object = dict[str, Any]


def _now_text() -> str:
    """A Kubernetes MicroTime for ``acquireTime`` and ``renewTime``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """What a candidate compares between two reads to tell whether the holder is alive."""

    holder: str
    renew_time: str
    duration: int
    resource_version: str

    @classmethod
    def of(cls, lease: Object) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            duration=int(spec.get("leaseDurationSeconds") or 0),
            resource_version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
        )


class LeaderElector:
    """One replica's candidacy for the Lease ``namespace/name``.

    `run` campaigns forever: while this replica leads it runs ``lead()`` as a
    task, and cancels and awaits it as soon as leadership is lost, then
    campaigns again. ``release_on_cancel=False`` leaves the Lease held when
    `run` is cancelled (as a killed process would).
    """

    def __init__(
        self,
        kube: KubernetesClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self._kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._duration = lease_duration
        self._renew_deadline = renew_deadline
        self._retry = retry_period
        self._release_on_cancel = release_on_cancel
        self._clock = clock
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._lease: Object | None = None
        self._renewed = -math.inf
        """When the last successful acquire or renewal was sent (local monotonic clock)."""
        self._step_down = asyncio.Event()
        """Set to end the current term at once (`confirmed` found it expired, or the work
        ended)."""
        self.leading = False
        """Whether this replica holds the Lease now (its ``lead()`` is running)."""
        self.transitions = 0
        """How often this replica started leading."""
        self.on_change: Callable[[bool], None] | None = None
        """Told True when leading starts and False once the work has stopped (metrics)."""

    # One attempt

    def _manifest(self, old: Object | None, holder: str) -> Object:
        """The Lease with this replica as holder (or none), keeping the record's history."""
        old_spec = (old or {}).get("spec") or {}
        now = _now_text()
        spec: Object = {"leaseDurationSeconds": max(1, math.ceil(self._duration))}
        transitions = int(old_spec.get("leaseTransitions") or 0)
        if holder:
            spec["holderIdentity"] = holder
            spec["renewTime"] = now
            if old_spec.get("holderIdentity") == holder and old_spec.get("acquireTime"):
                spec["acquireTime"] = old_spec["acquireTime"]
            else:
                spec["acquireTime"] = now
                if old is not None:
                    transitions += 1
        else:
            # Released: the holder is cleared, and the lease lasts 1 s (client-go).
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = now
            spec["acquireTime"] = now
        spec["leaseTransitions"] = transitions
        metadata: Object = {"name": self.name, "namespace": self.namespace}
        if old is not None:
            metadata["resourceVersion"] = old["metadata"]["resourceVersion"]
            for key in ("labels", "annotations"):
                if old["metadata"].get(key):
                    metadata[key] = old["metadata"][key]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def _observe(self, lease: Object) -> LeaseRecord:
        """Note a read record; its age is counted from the first time this replica saw it."""
        record = LeaseRecord.of(lease)
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()
        self._lease = lease
        return record

    async def try_acquire_or_renew(self) -> bool:
        """One read and, when the Lease is ours or free, one write; whether we hold it now.

        Raises `KubernetesError` when the API server cannot be reached or
        refuses the read; a lost race (409) is simply False.
        """
        lease = await self._kube.find("Lease", self.name, self.namespace)
        if lease is None:
            try:
                created = await self._kube.create(self._manifest(None, self.identity))
            except AlreadyExistsError:
                return False
            self._observe(created)
            return True
        record = self._observe(lease)
        if record.holder and record.holder != self.identity:
            age = self._clock() - self._observed_at
            if age < record.duration:
                return False
        try:
            written = await self._kube.replace(self._manifest(lease, self.identity))
        except (ConflictError, NotFoundError):
            return False  # another candidate wrote first: read again next time
        self._observe(written)
        return True

    def holder(self) -> str:
        """The holder named by the last Lease this replica read ("" if none)."""
        return self._observed.holder if self._observed else ""

    # The campaign

    def confirmed(self) -> bool:
        """Whether this replica leads with a renewal sent within ``renew_deadline`` (local
        monotonic clock); when it leads but that has passed, it steps down now."""
        if not self.leading:
            return False
        if self._clock() - self._renewed < self._renew_deadline:
            return True
        if not self._step_down.is_set():
            _log.error(
                "No renewal of the leader Lease %s/%s within %.1fs: stepping down",
                self.namespace,
                self.name,
                self._renew_deadline,
            )
            self._step_down.set()
        return False

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign, lead, and campaign again, until cancelled (then release if leading)."""
        while True:
            acquired = await self._acquire()
            if not await self._lead(lead, acquired):
                # The work failed: let another replica lead before trying again.
                await asyncio.sleep(self._duration)

    async def _acquire(self) -> float:
        """Until this replica holds the Lease, trying every ``retry_period``.

        Returns when the successful attempt began: its write reached the
        server no earlier, so the renew deadline counts from there.
        """
        while True:
            sent = self._clock()
            try:
                async with asyncio.timeout(self._renew_deadline):
                    if await self.try_acquire_or_renew():
                        return sent
            except (KubernetesError, TimeoutError) as exc:
                _log.warning(
                    "Reading the leader Lease %s/%s failed: %s", self.namespace, self.name, exc
                )
            await asyncio.sleep(self._retry)

    async def _lead(self, lead: Callable[[], Coroutine[Any, Any, None]], renewed: float) -> bool:
        """Run ``lead()`` while renewals succeed; stop it when they do not, then return.

        False when ``lead()`` ended by itself (it failed): the Lease is released then.
        """
        self._renewed = renewed
        self._step_down = asyncio.Event()
        self.leading = True
        self.transitions += 1
        _log.info("Started leading (Lease %s/%s) as %s", self.namespace, self.name, self.identity)
        if self.on_change is not None:
            self.on_change(True)
        work = asyncio.create_task(lead(), name=f"leading-{self.name}")
        step_down = self._step_down
        work.add_done_callback(_log_failure)
        work.add_done_callback(lambda _: step_down.set())
        try:
            await self._renew_until_lost()
        finally:
            self.leading = False
            ended = work.done() and not work.cancelled()
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            if self.on_change is not None:
                self.on_change(False)
            if (self._release_on_cancel and _cancelling()) or ended:
                await asyncio.shield(self.release())
        _log.warning("Stopped leading (Lease %s/%s)", self.namespace, self.name)
        if _cancelling():
            # A stop that arrived while the work was awaited above was swallowed
            # with the work's own CancelledError: stop now, do not campaign again.
            raise asyncio.CancelledError
        return not ended

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less when told to step down; whether to step down."""
        if seconds <= 0 or self._step_down.is_set():
            await asyncio.sleep(0)
            return self._step_down.is_set()
        # asyncio.wait, not asyncio.timeout: a cancel arriving as the timeout fires is
        # not swallowed (Python 3.11), so a stop always stops the campaign.
        waiter = asyncio.ensure_future(self._step_down.wait())
        try:
            await asyncio.wait([waiter], timeout=seconds)
        finally:
            waiter.cancel()
        return self._step_down.is_set()

    async def _renew_until_lost(self) -> None:
        """Renew every ``retry_period``; return once the deadline passes, another holds it,
        or the term must end (`_step_down`)."""
        while True:
            if await self._pause(self._retry):
                return
            while True:
                left = self._renewed + self._renew_deadline - self._clock()
                if left <= 0:
                    _log.error(
                        "Could not renew the leader Lease %s/%s within %.1fs",
                        self.namespace,
                        self.name,
                        self._renew_deadline,
                    )
                    return
                sent = self._clock()
                try:
                    async with asyncio.timeout(left):
                        ok = await self.try_acquire_or_renew()
                except (KubernetesError, TimeoutError) as exc:
                    _log.warning("Renewing the leader Lease failed: %s", exc or "timeout")
                    ok = False
                if ok:
                    self._renewed = sent
                    break
                if self.holder() and self.holder() != self.identity:
                    _log.error("The leader Lease was taken by %s", self.holder())
                    return
                if await self._pause(min(self._retry, left - (self._clock() - sent))):
                    return

    async def release(self) -> bool:
        """Clear the holder so another replica leads at once; whether it was released."""
        lease = self._lease
        if lease is None or LeaseRecord.of(lease).holder != self.identity:
            return False
        try:
            async with asyncio.timeout(self._renew_deadline):
                written = await self._kube.replace(self._manifest(lease, ""))
        except (KubernetesError, TimeoutError) as exc:
            _log.warning("Releasing the leader Lease failed (it will expire): %s", exc)
            return False
        self._observe(written)
        _log.info("Released the leader Lease %s/%s", self.namespace, self.name)
        return True


def _log_failure(work: asyncio.Task[None]) -> None:
    """The leader's work ended by an error: say so (the replica steps down and releases)."""
    if not work.cancelled() and work.exception() is not None:
        _log.error("The leader's work failed, stepping down: %r", work.exception())


def _cancelling() -> bool:
    """Whether the current task is being cancelled (a stop, rather than a lost lease)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
