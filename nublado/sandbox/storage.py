"""Storage classes and the binding of PersistentVolumeClaims.

A real cluster binds a claim only when its StorageClass exists and, for
``WaitForFirstConsumer`` classes, once a pod using it is scheduled; a claim
naming a class that does not exist stays Pending with a ProvisioningFailed
Event. Labs mount PVCs, so the sandbox does the same: classes are loaded like
nodes (a file, or ``standard`` marked default), the DefaultStorageClass
admission plugin fills a claim's class, and a small volume controller binds
claims as the real one would, writing the annotations and status it writes.
No PersistentVolume objects are made: the sandbox does not serve them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clock import event_name, now_timestamp
from .store import clone

if TYPE_CHECKING:
    from .host import ClusterHost

__all__ = [
    "DEFAULT_CLASS_ANNOTATION",
    "DEFAULT_STORAGE_CLASSES",
    "Storage",
    "StorageClassesFileError",
    "load_storage_classes_file",
    "storage_class_objects",
]

Object = dict[str, Any]

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
_BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
_CONTROLLER = "persistentvolume-controller"

DEFAULT_STORAGE_CLASSES: list[Object] = [
    {
        "metadata": {"name": "standard", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": "sandbox.local/hostpath",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
]


class StorageClassesFileError(ValueError):
    """A storage classes file that cannot be read or does not describe classes."""


def storage_class_objects(data: Any, source: str = "storage classes") -> list[Object]:
    """StorageClass objects from a list of objects or a mapping of name -> fields.

    The mapping form is the short one of a file (``{"fast": {"provisioner":
    "x", "default": true}}``); ``default: true`` stands for the
    is-default-class annotation.
    """
    if isinstance(data, dict):
        entries = []
        for name, fields in data.items():
            if not isinstance(fields, dict):
                raise StorageClassesFileError(f"{source}: class {name} must be an object")
            entry = clone(fields)
            entry.setdefault("metadata", {})["name"] = name
            entries.append(entry)
    elif isinstance(data, list):
        entries = clone(data)
    else:
        raise StorageClassesFileError(
            f"{source} must be a list of StorageClasses or map class names to objects"
        )
    objects = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("metadata"), dict):
            raise StorageClassesFileError(f"{source}: each class needs metadata.name")
        name = entry["metadata"].get("name")
        if not isinstance(name, str) or not name:
            raise StorageClassesFileError(f"{source}: each class needs metadata.name")
        if entry.pop("default", False):
            annotations = entry["metadata"].setdefault("annotations", {})
            annotations[DEFAULT_CLASS_ANNOTATION] = "true"
        entry.setdefault("provisioner", "sandbox.local/hostpath")
        entry.setdefault("reclaimPolicy", "Delete")
        entry.setdefault("volumeBindingMode", "Immediate")
        entry["apiVersion"] = "storage.k8s.io/v1"
        entry["kind"] = "StorageClass"
        objects.append(entry)
    return objects


def load_storage_classes_file(path: Path) -> list[Object]:
    """Read a storage classes file (JSON list of StorageClasses, or name -> fields)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise StorageClassesFileError(
            f"cannot read storage classes file {path}: {exc.strerror}"
        ) from None
    except ValueError as exc:
        raise StorageClassesFileError(
            f"storage classes file {path} is not valid JSON: {exc}"
        ) from None
    return storage_class_objects(data, f"storage classes file {path}")


def _claim_names(pod: Object) -> list[str]:
    names = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = (volume or {}).get("persistentVolumeClaim") or {}
        if claim.get("claimName"):
            names.append(str(claim["claimName"]))
    return names


class Storage:
    """The DefaultStorageClass plugin and the volume controller of one cluster."""

    def __init__(self, cluster: ClusterHost) -> None:
        self.cluster = cluster

    def add_classes(self, data: Any) -> list[Object]:
        """Create StorageClasses (objects, or the name -> fields form of a file)."""
        created = []
        for obj in storage_class_objects(data):
            stored = self.cluster.create_internal("StorageClass", obj, "sandbox")
            if stored is not None:
                created.append(stored)
        return created

    # Admission

    def _default_class_name(self) -> str | None:
        """The default class as the plugin picks it: the newest marked, ties by name."""
        marked = [
            c
            for c in self.cluster.store.iter_objects("StorageClass", None)
            if "true"
            in (
                (c["metadata"].get("annotations") or {}).get(key)
                for key in (DEFAULT_CLASS_ANNOTATION, _BETA_DEFAULT_CLASS_ANNOTATION)
            )
        ]
        if not marked:
            return None
        newest = max(c["metadata"].get("creationTimestamp", "") for c in marked)
        return min(
            str(c["metadata"]["name"])
            for c in marked
            if c["metadata"].get("creationTimestamp", "") == newest
        )

    def default_class(self, claim: Object) -> None:
        """DefaultStorageClass admission: a claim that names no class gets the default."""
        spec = claim.get("spec")
        if not isinstance(spec, dict) or spec.get("storageClassName") is not None:
            return
        name = self._default_class_name()
        if name is not None:
            spec["storageClassName"] = name

    # The volume controller

    def after_write(self, kind_name: str, old: Object | None, new: Object) -> None:
        """React to claims and classes as they are written."""
        if kind_name == "PersistentVolumeClaim" and old is None:
            meta = new["metadata"]
            self.cluster.later(0, self._sync_claim, meta["namespace"], meta["name"], meta["uid"])
        elif kind_name == "StorageClass":
            for claim in list(self.cluster.store.iter_objects("PersistentVolumeClaim", None)):
                phase = (claim.get("status") or {}).get("phase")
                wanted = (claim.get("spec") or {}).get("storageClassName")
                if phase != "Bound" and wanted == new["metadata"]["name"]:
                    meta = claim["metadata"]
                    self._sync_claim(meta["namespace"], meta["name"], meta["uid"], quiet=True)

    def _claim(self, namespace: str, name: str, uid: str) -> Object | None:
        claim = self.cluster.store.get("PersistentVolumeClaim", namespace, name)
        if claim is None or claim["metadata"].get("uid") != uid:
            return None
        if claim["metadata"].get("deletionTimestamp"):
            return None
        if (claim.get("status") or {}).get("phase") == "Bound":
            return None
        return claim

    def _sync_claim(self, namespace: str, name: str, uid: str, *, quiet: bool = False) -> None:
        """Bind a claim if its class allows it now; otherwise say why not, once."""
        with self.cluster.store.lock:
            claim = self._claim(namespace, name, uid)
            if claim is None:
                return
            class_name = (claim.get("spec") or {}).get("storageClassName")
            if not class_name:
                if not quiet:
                    self._event(
                        claim,
                        "FailedBinding",
                        "no persistent volumes available for this claim and no storage class "
                        "is set",
                    )
                return
            storage_class = self.cluster.store.get("StorageClass", "", class_name)
            if storage_class is None:
                if not quiet:
                    self._event(
                        claim,
                        "ProvisioningFailed",
                        f'storageclass.storage.k8s.io "{class_name}" not found',
                        event_type="Warning",
                    )
                return
            annotations = claim["metadata"].get("annotations") or {}
            delayed = storage_class.get("volumeBindingMode") == "WaitForFirstConsumer"
            if delayed and SELECTED_NODE_ANNOTATION not in annotations:
                if not quiet:
                    self._event(
                        claim,
                        "WaitForFirstConsumer",
                        "waiting for first consumer to be created before binding",
                    )
                return
            self._bind(claim, storage_class)
        self.cluster.kubelet.scheduler.retry(claim["metadata"]["namespace"])

    def bind_for_pod(self, pod: Object, node: str) -> None:
        """The scheduler's PreBind: provision the pod's delayed claims on its node."""
        namespace = pod["metadata"]["namespace"]
        for name in _claim_names(pod):
            claim = self.cluster.store.get("PersistentVolumeClaim", namespace, name)
            if claim is None or (claim.get("status") or {}).get("phase") == "Bound":
                continue
            class_name = (claim.get("spec") or {}).get("storageClassName") or ""
            storage_class = self.cluster.store.get("StorageClass", "", class_name)
            if storage_class is None:
                continue

            def select(o: Object) -> None:
                o["metadata"].setdefault("annotations", {})[SELECTED_NODE_ANNOTATION] = node

            selected = self.cluster.update_internal(
                "PersistentVolumeClaim", namespace, name, select, "kube-scheduler", subresource=""
            )
            if selected is not None:
                self._bind(selected, storage_class)

    def unbound_claim_delays(self, claim: Object) -> bool:
        """Whether an unbound claim waits for its first consumer (so a pod may be scheduled)."""
        class_name = (claim.get("spec") or {}).get("storageClassName") or ""
        storage_class = self.cluster.store.get("StorageClass", "", class_name)
        return (storage_class or {}).get("volumeBindingMode") == "WaitForFirstConsumer"

    def _bind(self, claim: Object, storage_class: Object) -> None:
        meta = claim["metadata"]
        provisioner = str(storage_class.get("provisioner", ""))
        volume = f"pvc-{meta['uid']}"

        def bind(o: Object) -> None:
            annotations = o["metadata"].setdefault("annotations", {})
            annotations["pv.kubernetes.io/bind-completed"] = "yes"
            annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
            annotations["volume.beta.kubernetes.io/storage-provisioner"] = provisioner
            annotations["volume.kubernetes.io/storage-provisioner"] = provisioner
            spec = o.setdefault("spec", {})
            spec["volumeName"] = volume
            status: Object = {"phase": "Bound", "accessModes": spec.get("accessModes") or []}
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            if storage is not None:
                status["capacity"] = {"storage": storage}
            o["status"] = status

        self.cluster.update_internal(
            "PersistentVolumeClaim",
            meta["namespace"],
            meta["name"],
            bind,
            "kube-controller-manager",
            subresource="",
            uid=meta["uid"],
        )

    def _event(
        self, claim: Object, reason: str, message: str, *, event_type: str = "Normal"
    ) -> None:
        meta = claim["metadata"]
        now = now_timestamp()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name(meta["name"]),
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": "v1",
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": _CONTROLLER},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": event_type,
            "eventTime": None,
            "reportingComponent": _CONTROLLER,
            "reportingInstance": "",
        }
        self.cluster.create_internal("Event", event, "kube-controller-manager")
