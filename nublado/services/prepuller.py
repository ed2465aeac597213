"""The prepuller: runs one pod per (node, image) so that labs start without a pull.

It decides nothing about *which* images go where: the image service hands it a
plan (node name -> images missing there, already limited to eligible nodes)
and it carries the plan out against the cluster, then reports what happened.

One task per node works through that node's images one at a time (a node
pulling several multi-gigabyte images at once slows every lab on it); nodes
run concurrently. Each image is one pod from ``templates/prepuller`` that
runs ``/bin/true`` in the image on the node, which makes the kubelet pull it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..config import Config
from ..errors import NubladoError
from ..images.nodes import node_taints, toleration_verdict
from ..kube.client import KubernetesClient
from ..kube.errors import AlreadyExistsError, KubernetesError
from ..models.image import ResolvedImage
from ..models.metadata import ControllerMetadata
from ..render.engine import Manifest, Renderer
from ..render.prepuller import build_prepull_context

__all__ = [
    "PULL_FAILURE_REASONS",
    "PrepullOutcome",
    "PrepullReport",
    "PrepullResult",
    "Prepuller",
]

_logger = logging.getLogger(__name__)

PULL_FAILURE_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
"""Waiting reasons of a container whose image cannot be pulled.

A pod in this state stays Pending (the kubelet keeps retrying with back-off),
so waiting for it to finish would only burn the whole timeout.
"""

_CLEANUP_TIMEOUT = 60.0
"""Seconds a cleanup deletion may take once a prepull failed or timed out.

Cleanup runs outside the prepull timeout (which may already be spent); a
pod whose image never arrived has no running container, so its deletion is
quick on a real cluster too.
"""

_CANCEL_CLEANUP_TIMEOUT = 10.0
"""Seconds a cancelled run (the controller stopping) spends deleting its pod."""

OnDone = Callable[[ResolvedImage, str, bool], None]


class PrepullResult(StrEnum):
    """How one prepull ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed out"


@dataclass(frozen=True, slots=True)
class PrepullOutcome:
    """The end of one prepull: which image on which node, how, why, and how long it took."""

    node: str
    image: ResolvedImage
    result: PrepullResult
    elapsed: float
    """Seconds from the start of this image's prepull to its end (cleanup included)."""
    reason: str | None = None
    """Why it failed or timed out; None when it succeeded."""

    @property
    def tag(self) -> str:
        """The image's tag."""
        return self.image.tag

    @property
    def succeeded(self) -> bool:
        """Whether the image was pulled onto the node."""
        return self.result is PrepullResult.SUCCEEDED


@dataclass(frozen=True, slots=True)
class PrepullReport:
    """Every outcome of one run, in plan order (node by node, images in order)."""

    outcomes: tuple[PrepullOutcome, ...]
    elapsed: float
    """Seconds the whole run took."""

    def outcome(self, node: str, tag: str) -> PrepullOutcome:
        """The outcome of ``tag`` on ``node``; KeyError if the plan did not hold that pair."""
        for outcome in self.outcomes:
            if outcome.node == node and outcome.tag == tag:
                return outcome
        raise KeyError(f"no prepull of {tag} on {node} in this run")

    @property
    def succeeded(self) -> tuple[PrepullOutcome, ...]:
        """The prepulls that pulled their image."""
        return tuple(o for o in self.outcomes if o.succeeded)

    @property
    def failed(self) -> tuple[PrepullOutcome, ...]:
        """The prepulls that failed or timed out."""
        return tuple(o for o in self.outcomes if not o.succeeded)


class _PrepullFailedError(Exception):
    """One prepull ended without pulling its image; the message is the report's reason."""


class Prepuller:
    """Runs prepull pods for a plan of images per node.

    Unlike upstream, a prepull that fails or times out does not leave its pod
    behind for the next attempt to replace: the pod is deleted at once, so
    that nothing lingers on the node (a pod stuck in ImagePullBackOff keeps
    the kubelet retrying the pull) and a run leaves no prepull pods. A pod of
    the same name that exists anyway (left by a crashed controller) is still
    deleted and replaced when its prepull is created. A run cancelled while a
    pod exists (the controller stopping) deletes that pod before it ends.
    """

    def __init__(
        self,
        kube: KubernetesClient,
        config: Config,
        metadata: ControllerMetadata,
        *,
        timeout: float | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        self._kube = kube
        self._config = config
        self._metadata = metadata
        self.timeout = (
            timeout if timeout is not None else config.images.prepull_timeout.total_seconds()
        )
        self._renderer = renderer or Renderer(config.template_dirs)

    async def run(
        self,
        plan: Mapping[str, Sequence[ResolvedImage]],
        on_done: OnDone | None = None,
    ) -> PrepullReport:
        """Prepull every image of ``plan`` onto its node; never raises for one image's failure.

        ``on_done(image, node, succeeded)`` is called after each image,
        whatever its outcome (the image service marks the image as present,
        optimistically, until its next refresh of the node inventory).
        """
        start = time.monotonic()
        per_node = await asyncio.gather(
            *(self._run_node(node, list(images), on_done) for node, images in plan.items())
        )
        outcomes = tuple(outcome for node_outcomes in per_node for outcome in node_outcomes)
        return PrepullReport(outcomes=outcomes, elapsed=time.monotonic() - start)

    async def _run_node(
        self, node: str, images: list[ResolvedImage], on_done: OnDone | None
    ) -> list[PrepullOutcome]:
        """The images of one node, one at a time."""
        if not images:
            return []
        outcomes = []
        for image in images:
            # Checked before every image, not once: a node removed mid-run (a
            # scale-down) must not cost a full timeout per image left.
            problem = await self._node_problem(node)
            if problem is not None:
                outcome = PrepullOutcome(node, image, PrepullResult.FAILED, 0.0, problem)
                self._log_failure(outcome)
            else:
                outcome = await self._prepull(image, node)
            outcomes.append(outcome)
            if on_done is not None:
                try:
                    on_done(image, node, outcome.succeeded)
                except Exception:
                    _logger.exception("Prepull callback failed for %s on %s", image.tag, node)
        return outcomes

    async def _node_problem(self, node: str) -> str | None:
        """Why no prepull pod may go to ``node``, or None.

        The plan comes from the node inventory and so should name only
        existing, eligible nodes; checking again here makes sure that a node
        gone since (or a plan built wrongly) never gets a pod that could not
        run: one naming a missing node would stay Pending forever, and one on
        a node whose taints the lab does not tolerate is forbidden
        (DECISIONS, objects 4).
        """
        try:
            found = await self._kube.find("Node", node)
        except KubernetesError as exc:
            return f"cannot read node: {exc}"
        if found is None:
            return "node not found"
        eligible, comment = toleration_verdict(node_taints(found), self._config.lab.tolerations)
        return None if eligible else comment

    def _manifest(self, image: ResolvedImage, node: str) -> Manifest:
        context = build_prepull_context(self._config, self._metadata, image, node)
        manifests = self._renderer.render("prepuller", context)
        pods = [m for m in manifests if m.get("kind") == "Pod"]
        if len(pods) != 1:
            raise _PrepullFailedError(
                f"the prepuller templates render {len(pods)} pods; they must render exactly one"
            )
        return pods[0]

    async def _prepull(self, image: ResolvedImage, node: str) -> PrepullOutcome:
        """Create, wait for and delete one prepull pod; the outcome, whatever happened."""
        start = time.monotonic()
        stage = "rendering the pod"
        name: str | None = None
        namespace = self._metadata.namespace
        result, reason = PrepullResult.SUCCEEDED, None
        try:
            async with asyncio.timeout(self.timeout):
                manifest = self._manifest(image, node)
                name = str(manifest["metadata"]["name"])
                namespace = str(manifest["metadata"].get("namespace") or namespace)
                stage = "creating the pod"
                created = await self._create(manifest, name, namespace)
                stage = "waiting for the pod to finish"
                await self._wait(name, namespace, str(created["metadata"]["uid"]))
                stage = "deleting the pod"
                await self._kube.delete("Pod", name, namespace, timeout=self._left(start))
                name = None  # deleted: nothing left to clean up
        except TimeoutError:
            result = PrepullResult.TIMED_OUT
            reason = f"timed out after {self.timeout:g}s {stage}"
        except KubernetesError as exc:
            if time.monotonic() - start >= self.timeout:
                result = PrepullResult.TIMED_OUT
                reason = f"timed out after {self.timeout:g}s {stage}"
            else:
                result, reason = PrepullResult.FAILED, f"error {stage}: {exc}"
        except _PrepullFailedError as exc:
            result, reason = PrepullResult.FAILED, str(exc)
        except NubladoError as exc:  # a template an operator broke, for one
            result, reason = PrepullResult.FAILED, f"error {stage}: {exc}"
        except asyncio.CancelledError:
            # The controller is stopping: still remove the pod, briefly.
            if name is not None:
                await asyncio.shield(self._clean_up(name, namespace, _CANCEL_CLEANUP_TIMEOUT))
            raise
        except Exception as exc:  # a bug must not stop the other images
            _logger.exception("Unexpected error prepulling %s on %s", image.tag, node)
            result, reason = PrepullResult.FAILED, f"unexpected error {stage}: {exc}"
        if name is not None:
            await self._clean_up(name, namespace, _CLEANUP_TIMEOUT)
        outcome = PrepullOutcome(node, image, result, time.monotonic() - start, reason)
        if outcome.succeeded:
            _logger.info(
                "Prepulled image %s on node %s in %.2fs",
                image.reference_with_digest,
                node,
                outcome.elapsed,
            )
        else:
            self._log_failure(outcome)
        return outcome

    def _left(self, start: float) -> float:
        """Seconds left of this prepull's timeout (a small floor: the outer timeout rules)."""
        return max(self.timeout - (time.monotonic() - start), 0.001)

    async def _create(self, manifest: Manifest, name: str, namespace: str) -> dict[str, Any]:
        """Create the pod; an existing pod of that name is deleted, waited for and replaced.

        The end state is exactly the template's pod, whatever a previous run
        (or anyone) left under that name.
        """
        try:
            return await self._kube.create(manifest)
        except AlreadyExistsError:
            _logger.warning("Replacing existing pod %s/%s", namespace, name)
        await self._kube.delete("Pod", name, namespace, timeout=self.timeout)
        return await self._kube.create(manifest)

    async def _wait(self, name: str, namespace: str, uid: str) -> None:
        """Wait until the pod ends; raise `_PrepullFailedError` unless it Succeeded.

        A pull failure leaves the pod Pending with a waiting reason such as
        ErrImagePull: that ends the wait at once. So does the pod's deletion
        (or its replacement by another pod of the same name).
        """

        def finished(pod: dict[str, Any] | None) -> bool:
            if pod is None or pod["metadata"].get("uid") != uid:
                return True
            status = pod.get("status") or {}
            return status.get("phase") in ("Succeeded", "Failed") or _pull_failure(pod) is not None

        pod = await self._kube.wait_for("Pod", name, namespace, finished, timeout=self.timeout)
        if pod is None or pod["metadata"].get("uid") != uid:
            raise _PrepullFailedError("pod was deleted before it finished")
        failure = _pull_failure(pod)
        if failure is not None:
            raise _PrepullFailedError(failure)
        phase = (pod.get("status") or {}).get("phase")
        if phase != "Succeeded":
            raise _PrepullFailedError(f"pod ended in phase {phase}{_termination(pod)}")

    async def _clean_up(self, name: str, namespace: str, timeout: float) -> None:
        """Delete a failed prepull's pod and wait until it is gone; log if that fails."""
        try:
            await self._kube.delete("Pod", name, namespace, timeout=timeout)
        except KubernetesError as exc:
            _logger.warning("Cannot delete prepull pod %s/%s: %s", namespace, name, exc)

    @staticmethod
    def _log_failure(outcome: PrepullOutcome) -> None:
        _logger.warning(
            "Failed to prepull image %s on node %s: %s",
            outcome.image.reference_with_digest,
            outcome.node,
            outcome.reason,
        )


def _pull_failure(pod: dict[str, Any]) -> str | None:
    """``ErrImagePull: <message>`` when a container waits on a failed pull, else None."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in PULL_FAILURE_REASONS:
                message = waiting.get("message")
                return f"{reason}: {message}" if message else str(reason)
    return None


def _termination(pod: dict[str, Any]) -> str:
    """`` (exit code 1, Error)`` for a pod whose container terminated, else empty."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return f" (exit code {terminated.get('exitCode')}, {terminated.get('reason')})"
    return ""
