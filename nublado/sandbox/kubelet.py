"""The sandbox's simulated scheduler and kubelet.

A new pod is scheduled to a node, its images are pulled, its containers
created and started, each step after a configurable delay, each step written
to the pod's status and announced with the Events a real kubelet writes
(Scheduled, Pulling, Pulled, Created, Started). Failures can be requested per
pod (ErrImagePull, ImagePullBackOff, CrashLoopBackOff, Failed), and containers
whose command is ``/bin/true`` or ``/bin/false`` exit as those programs do.
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .clock import event_name, now_timestamp
from .references import env_problem, mount_problems
from .scheduler import Scheduler, image_present

if TYPE_CHECKING:
    from .host import ClusterHost

__all__ = ["Kubelet", "PodFailure"]

Object = dict[str, Any]

_EXIT_0 = (["/bin/true"], ["true"])
_EXIT_1 = (["/bin/false"], ["false"])


class PodFailure(StrEnum):
    """Ways a pod can fail on demand."""

    ERR_IMAGE_PULL = "ErrImagePull"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    FAILED = "Failed"


def _containers(pod: Object, key: str) -> list[Object]:
    return [c for c in (pod.get("spec") or {}).get(key) or [] if isinstance(c, dict)]


class Kubelet:
    """Moves pods through Pending to Running (or a requested failure) and writes Events."""

    def __init__(self, cluster: ClusterHost) -> None:
        self.cluster = cluster
        self._failures: list[tuple[str, str, PodFailure]] = []
        self._ip = 0
        self.scheduler = Scheduler(cluster, self)
        # Pods waiting for a ConfigMap or Secret: (namespace, name) -> (uid, step to retry).
        self._blocked: dict[tuple[str, str], tuple[str, Callable[[str, str, str], None]]] = {}

    # Failures on demand

    def set_failure(self, failure: PodFailure | str, name: str = "*", namespace: str = "*") -> None:
        """Make matching pods (glob patterns), present and future, fail this way."""
        failure = PodFailure(failure)
        with self.cluster.store.lock:
            self._failures.insert(0, (namespace, name, failure))
            for pod in list(self.cluster.store.iter_objects("Pod", None)):
                meta = pod["metadata"]
                if fnmatch.fnmatchcase(meta["namespace"], namespace) and fnmatch.fnmatchcase(
                    meta["name"], name
                ):
                    self._fail_existing(pod, failure)

    def clear_failures(self) -> None:
        """Forget every requested failure (pods already failed stay failed)."""
        with self.cluster.store.lock:
            self._failures.clear()

    def _failure_for(self, pod: Object) -> PodFailure | None:
        meta = pod["metadata"]
        for namespace, name, failure in self._failures:
            if fnmatch.fnmatchcase(meta["namespace"], namespace) and fnmatch.fnmatchcase(
                meta["name"], name
            ):
                return failure
        return None

    def _fail_existing(self, pod: Object, failure: PodFailure) -> None:
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed") or pod["metadata"].get(
            "deletionTimestamp"
        ):
            return
        if not (pod.get("spec") or {}).get("nodeName"):
            return  # the scheduler step will apply the failure when the pod gets there
        if failure in (PodFailure.ERR_IMAGE_PULL, PodFailure.IMAGE_PULL_BACK_OFF):
            self._pull_failure(pod, failure)
        else:
            self._start_failure(pod, failure)

    # Hooks from the cluster

    def pod_written(self, old: Object | None, new: Object) -> None:
        """Start the lifecycle of a new pod."""
        if old is None and (new.get("status") or {}).get("phase") == "Pending":
            self.scheduler.queue(new)
        if old is not None:
            old_phase = (old.get("status") or {}).get("phase")
            phase = (new.get("status") or {}).get("phase")
            if phase != old_phase and phase in ("Succeeded", "Failed"):
                self.cluster.job_pod_finished(new, phase)
        self.scheduler.pod_written(new)

    def pod_removed(self, pod: Object) -> None:
        """Nothing to stop (later steps check that their pod still exists); its room is free."""
        self.scheduler.pod_removed(pod)

    # Steps

    def _current(self, namespace: str, name: str, uid: str) -> Object | None:
        pod = self.cluster.store.get("Pod", namespace, name)
        if (
            pod is None
            or pod["metadata"].get("uid") != uid
            or pod["metadata"].get("deletionTimestamp")
        ):
            return None
        return pod

    def _event(
        self,
        pod: Object,
        reason: str,
        message: str,
        *,
        event_type: str = "Normal",
        component: str = "kubelet",
        field_path: str | None = None,
    ) -> None:
        meta = pod["metadata"]
        node = (pod.get("spec") or {}).get("nodeName", "")
        now = now_timestamp()
        involved: Object = {
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": "v1",
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        source: Object = {"component": component}
        if component == "kubelet" and node:
            source["host"] = node
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name(meta["name"]),
                "namespace": meta["namespace"],
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": event_type,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": node if component == "kubelet" else "",
        }
        # Built here for the call and not kept: the cluster stores it without a copy.
        self.cluster.create_event_internal(event, component, given=True)

    def now(self) -> str:
        """The current time as the kubelet writes it."""
        return now_timestamp()

    def pod_bound(self, pod: Object) -> None:
        """The scheduler bound the pod: pull its images after the pull delay."""
        meta = pod["metadata"]
        delay = self.cluster.settings.pull_delay
        self.cluster.later(delay, self._pull, meta["namespace"], meta["name"], meta["uid"])

    def config_written(self, obj: Object) -> None:
        """A ConfigMap or Secret appeared or changed: retry the pods of its namespace waiting."""
        namespace = obj["metadata"].get("namespace", "")
        for key, (uid, step) in list(self._blocked.items()):
            if key[0] == namespace:
                del self._blocked[key]
                self.cluster.later(0, step, key[0], key[1], uid)

    def node_written(self, old: Object | None, new: Object) -> None:
        """A node was added, relabelled, retainted or resized: unschedulable pods may fit now.

        Other status writes (the images a pull adds) change nothing for scheduling.
        """
        if (
            old is None
            or old["metadata"].get("labels") != new["metadata"].get("labels")
            or old.get("spec") != new.get("spec")
            or (old.get("status") or {}).get("allocatable")
            != (new.get("status") or {}).get("allocatable")
        ):
            self.scheduler.retry()

    def _volumes_mounted(self, pod: Object) -> bool:
        """Mount the pod's volumes; False (FailedMount, ContainerCreating) if one is missing."""
        meta = pod["metadata"]
        problems = mount_problems(self.cluster.store, pod)
        if not problems:
            return True
        self._blocked[(meta["namespace"], meta["name"])] = (meta["uid"], self._pull)
        for volume, problem in problems:
            self._event(
                pod,
                "FailedMount",
                f'MountVolume.SetUp failed for volume "{volume}" : {problem}',
                event_type="Warning",
            )

        def mutate(o: Object) -> None:
            status = o.setdefault("status", {})
            status["containerStatuses"] = [
                {**entry, "state": {"waiting": {"reason": "ContainerCreating"}}}
                for entry in self._waiting_status(o, "ContainerCreating", "")
            ]
            status["conditions"] = _conditions(status, ready=False)

        self.cluster.update_internal(
            "Pod", meta["namespace"], meta["name"], mutate, "kubelet", uid=meta["uid"]
        )
        return False

    def _config_ready(self, pod: Object) -> bool:
        """Resolve the containers' environment; False (CreateContainerConfigError) if it fails."""
        meta = pod["metadata"]
        for key in ("initContainers", "containers"):
            for container in _containers(pod, key):
                problem = env_problem(self.cluster.store, meta["namespace"], container)
                if problem is None:
                    continue
                self._blocked[(meta["namespace"], meta["name"])] = (meta["uid"], self._start)
                self._event(
                    pod,
                    "Failed",
                    f"Error: {problem}",
                    event_type="Warning",
                    field_path=f"spec.{key}{{{container.get('name')}}}",
                )

                def mutate(o: Object, problem: str = problem) -> None:
                    status = o.setdefault("status", {})
                    status["containerStatuses"] = self._waiting_status(
                        o, "CreateContainerConfigError", problem
                    )
                    status["conditions"] = _conditions(status, ready=False)

                self.cluster.update_internal(
                    "Pod", meta["namespace"], meta["name"], mutate, "kubelet", uid=meta["uid"]
                )
                return False
        return True

    def _node_images(self, node_name: str) -> set[str]:
        node = self.cluster.store.get("Node", "", node_name)
        names: set[str] = set()
        for image in ((node or {}).get("status") or {}).get("images") or []:
            names.update(image.get("names") or [])
        return names

    def _pull(self, namespace: str, name: str, uid: str) -> None:
        with self.cluster.store.lock:
            pod = self._current(namespace, name, uid)
            if pod is None:
                return
            if not self._volumes_mounted(pod):
                return
            failure = self._failure_for(pod)
            if failure in (PodFailure.ERR_IMAGE_PULL, PodFailure.IMAGE_PULL_BACK_OFF):
                self._pull_failure(pod, PodFailure(failure))
                return
            node = pod["spec"].get("nodeName", "")
            present = self._node_images(node)
            pulled: list[str] = []
            for key in ("initContainers", "containers"):
                for container in _containers(pod, key):
                    image = str(container.get("image", ""))
                    path = f"spec.{key}{{{container.get('name')}}}"
                    policy = container.get("imagePullPolicy")
                    if image_present(image, present) and policy != "Always":
                        self._event(
                            pod,
                            "Pulled",
                            f'Container image "{image}" already present on machine',
                            field_path=path,
                        )
                        continue
                    self._event(pod, "Pulling", f'Pulling image "{image}"', field_path=path)
                    self._event(
                        pod,
                        "Pulled",
                        f'Successfully pulled image "{image}" in 1.024s (1.024s including '
                        "waiting). Image size: 104857600 bytes.",
                        field_path=path,
                    )
                    pulled.append(image)
            if pulled and node:
                self._add_node_images(node, pulled)
            self.cluster.later(self.cluster.settings.start_delay, self._start, namespace, name, uid)

    def _add_node_images(self, node: str, images: list[str]) -> None:
        def mutate(o: Object) -> None:
            listed = o.setdefault("status", {}).setdefault("images", [])
            known = {n for entry in listed for n in entry.get("names") or []}
            for image in images:
                if image not in known:
                    listed.append({"names": [image], "sizeBytes": 104857600})
                    known.add(image)

        self.cluster.update_internal("Node", "", node, mutate, "kubelet")

    def _waiting_status(self, pod: Object, reason: str, message: str) -> list[Object]:
        statuses = []
        for container in _containers(pod, "containers"):
            statuses.append(
                {
                    "name": container.get("name"),
                    "image": container.get("image"),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
            )
        return statuses

    def _pull_failure(self, pod: Object, failure: PodFailure) -> None:
        meta = pod["metadata"]
        containers = _containers(pod, "initContainers") + _containers(pod, "containers")
        image = str(containers[0].get("image", "")) if containers else ""
        detail = (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
            f'failed to resolve reference "{image}": not found'
        )
        self._event(pod, "Pulling", f'Pulling image "{image}"')
        self._event(
            pod, "Failed", f'Failed to pull image "{image}": {detail}', event_type="Warning"
        )
        self._event(pod, "Failed", "Error: ErrImagePull", event_type="Warning")
        message = detail
        if failure is PodFailure.IMAGE_PULL_BACK_OFF:
            self._event(pod, "BackOff", f'Back-off pulling image "{image}"', event_type="Normal")
            self._event(pod, "Failed", "Error: ImagePullBackOff", event_type="Warning")
            message = f'Back-off pulling image "{image}": ErrImagePull: {detail}'
        reason = str(failure)

        def mutate(o: Object) -> None:
            status = o.setdefault("status", {})
            status["containerStatuses"] = self._waiting_status(o, reason, message)
            status["conditions"] = _conditions(status, ready=False)

        self.cluster.update_internal(
            "Pod", meta["namespace"], meta["name"], mutate, "kubelet", uid=meta["uid"]
        )

    def _start(self, namespace: str, name: str, uid: str) -> None:
        with self.cluster.store.lock:
            pod = self._current(namespace, name, uid)
            if pod is None or not self._config_ready(pod):
                return
            for key in ("initContainers", "containers"):
                for container in _containers(pod, key):
                    path = f"spec.{key}{{{container.get('name')}}}"
                    self._event(
                        pod,
                        "Created",
                        f"Created container: {container.get('name')}",
                        field_path=path,
                    )
                    self._event(
                        pod,
                        "Started",
                        f"Started container {container.get('name')}",
                        field_path=path,
                    )
            failure = self._failure_for(pod)
            if failure in (PodFailure.CRASH_LOOP_BACK_OFF, PodFailure.FAILED):
                self._start_failure(pod, PodFailure(failure))
                return
            commands = [c.get("command") for c in _containers(pod, "containers")]
            restart = pod["spec"].get("restartPolicy", "Always")
            if restart != "Always" and commands and all(c in _EXIT_0 for c in commands):
                self._terminate(pod, "Succeeded", 0)
            elif restart == "Never" and commands and any(c in _EXIT_1 for c in commands):
                self._terminate(pod, "Failed", 1)
            else:
                self._run(pod)

    def _next_ip(self) -> str:
        self._ip += 1
        return f"10.244.{self._ip // 250}.{self._ip % 250 + 1}"

    def _base_status(self, status: Object, pod: Object) -> None:
        now = now_timestamp()
        node = self.cluster.store.get("Node", "", pod["spec"].get("nodeName", ""))
        addresses = ((node or {}).get("status") or {}).get("addresses") or []
        host_ip = next(
            (a["address"] for a in addresses if a.get("type") == "InternalIP"), "10.0.0.1"
        )
        status.setdefault("startTime", now)
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
        if "podIP" not in status:
            ip = self._next_ip()
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        status["initContainerStatuses"] = [
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "imageID": f"{c.get('image')}@sha256:{'0' * 64}",
                "ready": True,
                "restartCount": 0,
                "started": False,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": now,
                        "finishedAt": now,
                    }
                },
            }
            for c in _containers(pod, "initContainers")
        ]
        if not status["initContainerStatuses"]:
            del status["initContainerStatuses"]

    def _container_status(
        self, container: Object, state: Object, ready: bool, restarts: int = 0
    ) -> Object:
        return {
            "name": container.get("name"),
            "image": container.get("image"),
            "imageID": f"{container.get('image')}@sha256:{'0' * 64}",
            "containerID": f"containerd://{secrets.token_hex(32)}",
            "ready": ready,
            "started": "running" in state,
            "restartCount": restarts,
            "state": state,
        }

    def _run(self, pod: Object) -> None:
        meta = pod["metadata"]
        now = now_timestamp()

        def mutate(o: Object) -> None:
            status = o.setdefault("status", {})
            self._base_status(status, o)
            status["phase"] = "Running"
            status["containerStatuses"] = [
                self._container_status(c, {"running": {"startedAt": now}}, True)
                for c in _containers(o, "containers")
            ]
            status["conditions"] = _conditions(status, ready=True)

        self.cluster.update_internal(
            "Pod", meta["namespace"], meta["name"], mutate, "kubelet", uid=meta["uid"]
        )

    def terminate(self, pod: Object, phase: str, exit_code: int) -> None:
        """End the pod's containers now with ``exit_code`` (`Sandbox.finish_pod`)."""
        self._terminate(pod, phase, exit_code)

    def _terminate(self, pod: Object, phase: str, exit_code: int) -> None:
        meta = pod["metadata"]
        now = now_timestamp()
        reason = "Completed" if exit_code == 0 else "Error"

        def mutate(o: Object) -> None:
            status = o.setdefault("status", {})
            self._base_status(status, o)
            status["phase"] = phase
            terminated = {
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": now,
                "finishedAt": now,
            }
            status["containerStatuses"] = [
                self._container_status(c, {"terminated": terminated}, False)
                for c in _containers(o, "containers")
            ]
            status["conditions"] = _conditions(status, ready=False)

        self.cluster.update_internal(
            "Pod", meta["namespace"], meta["name"], mutate, "kubelet", uid=meta["uid"]
        )

    def _start_failure(self, pod: Object, failure: PodFailure) -> None:
        if failure is PodFailure.FAILED:
            self._terminate(pod, "Failed", 1)
            return
        meta = pod["metadata"]
        containers = _containers(pod, "containers")
        first = containers[0].get("name") if containers else ""
        self._event(
            pod,
            "BackOff",
            f"Back-off restarting failed container {first} in pod "
            f"{meta['name']}_{meta['namespace']}"
            f"({meta['uid']})",
            event_type="Warning",
        )
        now = now_timestamp()

        def mutate(o: Object) -> None:
            status = o.setdefault("status", {})
            self._base_status(status, o)
            status["phase"] = "Running"
            status["containerStatuses"] = [
                {
                    **self._container_status(
                        c,
                        {
                            "waiting": {
                                "reason": "CrashLoopBackOff",
                                "message": "back-off 40s restarting failed "
                                f"container={c.get('name')} "
                                f"pod={meta['name']}_{meta['namespace']}({meta['uid']})",
                            }
                        },
                        False,
                        3,
                    ),
                    "lastState": {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "startedAt": now,
                            "finishedAt": now,
                        }
                    },
                }
                for c in _containers(o, "containers")
            ]
            status["conditions"] = _conditions(status, ready=False)

        self.cluster.update_internal(
            "Pod", meta["namespace"], meta["name"], mutate, "kubelet", uid=meta["uid"]
        )


def _conditions(status: Object, ready: bool) -> list[Object]:
    now = now_timestamp()
    scheduled = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"),
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        },
    )
    flag = "True" if ready else "False"
    conditions = [
        {
            "type": "PodReadyToStartContainers",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        },
        {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
        {"type": "Ready", "status": flag, "lastProbeTime": None, "lastTransitionTime": now},
        {
            "type": "ContainersReady",
            "status": flag,
            "lastProbeTime": None,
            "lastTransitionTime": now,
        },
        scheduled,
    ]
    if not ready:
        for condition in conditions[2:4]:
            condition["reason"] = "ContainersNotReady"
    return conditions
