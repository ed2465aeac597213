"""Leader election on a Lease in the sandbox: one leader, takeover, release, step-down.

Durations are short (a 2 s lease, 1.2 s renew deadline, 0.2 s retry) so each
test runs in a few seconds; every wait is for an event or a bounded poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sandbox_fixtures import ensure_namespace

from nublado.kube.client import KubernetesClient
from nublado.kube.leader import LeaderElector
from nublado.sandbox.server import Sandbox

NS = "nublado"
LEASE = "nublado-daemon"
DURATION, DEADLINE, RETRY = 2.0, 1.2, 0.2
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{LEASE}"


@dataclass
class Candidate:
    """An elector and the (start, end) monotonic times of each of its terms."""

    elector: LeaderElector
    terms: list[list[float]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def lead(self) -> None:
        term = [time.monotonic(), float("inf")]
        self.terms.append(term)
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            term[1] = time.monotonic()
            self.stopped.set()

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self.lead))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def namespace(admin: KubernetesClient) -> None:
    await ensure_namespace(admin, NS)


@asynccontextmanager
async def candidates(
    client: KubernetesClient, *names: str, release: bool = True
) -> AsyncIterator[list[Candidate]]:
    made = [
        Candidate(
            LeaderElector(
                client,
                namespace=NS,
                name=LEASE,
                identity=name,
                lease_duration=DURATION,
                renew_deadline=DEADLINE,
                retry_period=RETRY,
                release_on_cancel=release,
            )
        )
        for name in names
    ]
    try:
        yield made
    finally:
        for candidate in made:
            if candidate.task is not None and not candidate.task.done():
                await candidate.stop()


def overlapping(a: Candidate, b: Candidate) -> list[tuple[list[float], list[float]]]:
    return [(x, y) for x in a.terms for y in b.terms if x[0] < y[1] and y[0] < x[1]]


async def first(*events: asyncio.Event, timeout: float = 10.0) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        async with asyncio.timeout(timeout):
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def poll(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_of_two_candidates_only_one_leads(
    client: KubernetesClient, sandbox: Sandbox, namespace: None
) -> None:
    async with candidates(client, "a", "b") as (a, b):
        a.start()
        b.start()
        await first(a.started, b.started)
        await asyncio.sleep(4 * RETRY)  # several renewals and attempts of the other

        leaders = [c for c in (a, b) if c.elector.leading]
        assert len(leaders) == 1
        lease = sandbox.get("Lease", LEASE, NS)
        assert lease is not None
        spec = lease["spec"]
        assert spec["holderIdentity"] == leaders[0].elector.identity
        assert spec["leaseDurationSeconds"] == 2
        assert spec["leaseTransitions"] == 0
        assert spec["acquireTime"] <= spec["renewTime"]
        assert [len(c.terms) for c in (a, b)].count(0) == 1


async def test_a_killed_leader_is_replaced_within_duration_plus_retry(
    client: KubernetesClient, sandbox: Sandbox, namespace: None
) -> None:
    async with candidates(client, "a", "b", release=False) as (a, b):
        a.start()
        await a.started.wait()
        b.start()
        await asyncio.sleep(2 * RETRY)

        await a.stop()  # killed: no release
        killed = time.monotonic()
        await b.started.wait()
        took = time.monotonic() - killed

        assert sandbox.get("Lease", LEASE, NS)["spec"]["holderIdentity"] == "b"
        assert took <= DURATION + 2 * RETRY + 1.0  # slack for a loaded machine
        assert took >= DURATION - RETRY  # not before the lease could have expired
        assert sandbox.get("Lease", LEASE, NS)["spec"]["leaseTransitions"] == 1
        assert overlapping(a, b) == []


async def test_a_released_lease_is_taken_at_once(
    client: KubernetesClient, sandbox: Sandbox, namespace: None
) -> None:
    async with candidates(client, "a", "b") as (a, b):
        a.start()
        await a.started.wait()
        b.start()
        await asyncio.sleep(2 * RETRY)

        await a.stop()
        released = time.monotonic()
        assert sandbox.get("Lease", LEASE, NS)["spec"].get("holderIdentity") is None
        await b.started.wait()

        assert time.monotonic() - released < 3 * RETRY
        assert overlapping(a, b) == []


async def test_a_leader_that_cannot_renew_steps_down_before_its_lease_expires(
    client: KubernetesClient, sandbox: Sandbox, namespace: None
) -> None:
    async with candidates(client, "a", "b") as (a, b):
        a.start()
        await a.started.wait()
        b.start()
        await asyncio.sleep(2 * RETRY)
        last_renew = sandbox.get("Lease", LEASE, NS)["spec"]["renewTime"]

        sandbox.inject_fault("PUT", LEASE_PATH, status=503, count=None)
        failing = time.monotonic()
        await a.stopped.wait()
        stepped_down = time.monotonic()
        sandbox.clear_faults()
        await poll(lambda: len(a.terms) + len(b.terms) == 2)

        # The last successful renewal was sent at most one retry before the faults.
        assert stepped_down - failing <= DEADLINE + 0.4
        assert stepped_down - failing < DURATION - RETRY
        assert sandbox.get("Lease", LEASE, NS)["spec"]["renewTime"] > last_renew
        assert overlapping(a, b) == []


class StaleReads:
    """A client whose reads of the Lease answer an old copy (a racing writer's view)."""

    def __init__(self, client: KubernetesClient, lease: dict[str, Any]) -> None:
        self._client = client
        self._lease = lease

    async def find(self, kind: str, name: str, namespace: str | None = None) -> Any:
        return self._lease

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


async def test_a_writer_that_lost_the_race_gets_a_conflict_and_does_not_lead(
    client: KubernetesClient, admin: KubernetesClient, sandbox: Sandbox, namespace: None
) -> None:
    async with candidates(client, "a") as (a,):
        assert await a.elector.try_acquire_or_renew()
        await a.elector.release()
        released = await admin.get("Lease", LEASE, NS)
        # b read the released Lease; a took it again before b wrote.
        assert await a.elector.try_acquire_or_renew()
        errors: list[Exception] = []
        client.on_error = errors.append
        b = LeaderElector(
            StaleReads(client, released),  # type: ignore[arg-type]
            namespace=NS,
            name=LEASE,
            identity="b",
            lease_duration=DURATION,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
        )

        assert not await b.try_acquire_or_renew()
        assert [type(e).__name__ for e in errors] == ["ConflictError"]
        assert sandbox.get("Lease", LEASE, NS)["spec"]["holderIdentity"] == "a"
        # The next attempt reads afresh (here: still held by a, seen for the first time).
        b._kube = client
        assert not await b.try_acquire_or_renew()
        assert b.holder() == "a"


async def test_a_lease_held_by_another_is_not_taken_before_it_is_seen_unchanged(
    client: KubernetesClient, namespace: None
) -> None:
    async with candidates(client, "a", "b") as (a, b):
        assert await a.elector.try_acquire_or_renew()

        # b has just seen the record for the first time: however old its renewTime
        # (remote clocks are not trusted), b waits a whole lease on its own clock.
        assert not await b.elector.try_acquire_or_renew()
        await asyncio.sleep(DURATION + 0.1)
        assert await b.elector.try_acquire_or_renew()
        assert b.elector.holder() == "b"


def test_the_durations_must_be_ordered(client: KubernetesClient) -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaderElector(
            client, namespace=NS, name=LEASE, identity="a", lease_duration=5, renew_deadline=5
        )


class Clock:
    """A monotonic clock the test can move forward (a replica paused, then resumed)."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skew


async def test_a_leader_paused_past_its_renew_deadline_is_not_confirmed_and_steps_down(
    client: KubernetesClient, sandbox: Sandbox, namespace: None
) -> None:
    """Work asks `confirmed` before it starts; after a pause longer than the renew deadline
    (the clock jumps, every timer due at once) the answer is no, and the term ends at once
    rather than at the renew loop's next wake."""
    clock = Clock()
    async with candidates(client, "a") as (a,):
        a.elector._clock = clock
        a.start()
        await a.started.wait()
        assert a.elector.confirmed()

        clock.skew += DEADLINE + 0.1
        assert not a.elector.confirmed()
        asked = time.monotonic()
        await a.stopped.wait()

        assert time.monotonic() - asked < RETRY / 2
        assert a.elector.transitions == 1  # the term ended (the next one campaigns afresh)


async def test_a_leader_whose_work_fails_releases_the_lease_for_another(
    client: KubernetesClient, sandbox: Sandbox, namespace: None
) -> None:
    async with candidates(client, "a", "b") as (a, b):
        failed = asyncio.Event()

        async def broken() -> None:
            failed.set()
            raise RuntimeError("the scheduler would not start")

        a.task = asyncio.create_task(a.elector.run(broken))
        await failed.wait()
        await poll(lambda: not a.elector.leading)
        lease = sandbox.get("Lease", LEASE, NS)
        assert lease is not None
        assert lease["spec"].get("holderIdentity") is None  # released, not held idle

        b.start()
        await b.started.wait()  # at once, not after a lease
        assert sandbox.get("Lease", LEASE, NS)["spec"]["holderIdentity"] == "b"
        await asyncio.sleep(DURATION + 2 * RETRY)  # a waits a lease, then finds it held
        assert b.elector.leading
        assert not a.elector.leading
