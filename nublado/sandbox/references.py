"""What a pod refers to that must exist before the kubelet can start it.

A real kubelet cannot mount a ConfigMap or Secret volume that is missing (the
pod stays ContainerCreating, with FailedMount Events) nor build a container's
environment from a missing ConfigMap, Secret or key (the container waits in
CreateContainerConfigError). A lab controller that forgets an object, or
creates the pod before it, meets exactly these states, so the sandbox's
kubelet finds the same problems, worded as the kubelet words them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

__all__ = ["env_problem", "mount_problems"]

Object = dict[str, Any]

# Kind, API error resource (the kubelet's managers name it singular), missing-key text.
_SOURCES = {
    "configMap": ("ConfigMap", "configmap", "configmap references non-existent config key"),
    "secret": ("Secret", "secret", "references non-existent secret key"),
}


def _keys(obj: Object) -> set[str]:
    return set(obj.get("data") or {}) | set(obj.get("binaryData") or {})


def _source_problem(store: Store, namespace: str, field: str, source: Object) -> str | None:
    kind, resource, missing_key = _SOURCES[field]
    name = source.get("name") if field == "configMap" else source.get("secretName")
    if name is None and field == "secret":
        name = source.get("name")  # projected secret sources use "name"
    optional = bool(source.get("optional"))
    obj = store.get(kind, namespace, str(name))
    if obj is None:
        return None if optional else f'{resource} "{name}" not found'
    for item in source.get("items") or []:
        key = (item or {}).get("key")
        if key not in _keys(obj) and not optional:
            return f"{missing_key}: {key}"
    return None


def mount_problems(store: Store, pod: Object) -> list[tuple[str, str]]:
    """(volume, problem) for each ConfigMap or Secret volume the kubelet cannot set up."""
    namespace = pod["metadata"]["namespace"]
    problems = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        sources = [(f, volume[f]) for f in _SOURCES if isinstance(volume.get(f), dict)]
        for projected in (volume.get("projected") or {}).get("sources") or []:
            sources += [(f, projected[f]) for f in _SOURCES if isinstance(projected.get(f), dict)]
        for field, source in sources:
            problem = _source_problem(store, namespace, field, source)
            if problem is not None:
                problems.append((str(volume.get("name")), problem))
                break
    return problems


def env_problem(store: Store, namespace: str, container: Object) -> str | None:
    """Why the kubelet cannot build this container's environment, or None.

    The order is the kubelet's: ``envFrom`` first, then ``env``.
    """
    for source in container.get("envFrom") or []:
        for field, ref_field in (("configMap", "configMapRef"), ("secret", "secretRef")):
            ref = (source or {}).get(ref_field)
            if not isinstance(ref, dict):
                continue
            kind, resource, _ = _SOURCES[field]
            if store.get(kind, namespace, str(ref.get("name"))) is None and not ref.get("optional"):
                return f'{resource} "{ref.get("name")}" not found'
    for variable in container.get("env") or []:
        value_from = (variable or {}).get("valueFrom") or {}
        for field, ref_field in (("configMap", "configMapKeyRef"), ("secret", "secretKeyRef")):
            ref = value_from.get(ref_field)
            if not isinstance(ref, dict):
                continue
            kind, resource, _ = _SOURCES[field]
            name, key = ref.get("name"), ref.get("key")
            obj = store.get(kind, namespace, str(name))
            if obj is None:
                if ref.get("optional"):
                    continue
                return f'{resource} "{name}" not found'
            if key not in _keys(obj) and not ref.get("optional"):
                return f"couldn't find key {key} in {kind} {namespace}/{name}"
    return None
