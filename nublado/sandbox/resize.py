"""The PersistentVolumeClaimResize admission plugin: who may grow a claim.

kube-apiserver lets a claim's storage request grow only when the claim is
bound and its StorageClass says ``allowVolumeExpansion: true``; anything else
is a 403 from this validating plugin, after the object's own validation
(which refuses shrinking below ``status.capacity``, a 422).
"""

from __future__ import annotations

from typing import Any

from .kinds import ResourceKind
from .quantity import QuantityError, parse_quantity
from .store import ApiError, Store

__all__ = ["check_claim_resize"]

Object = dict[str, Any]

_BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def _storage_request(claim: Object) -> Any:
    requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    try:
        return parse_quantity(requests.get("storage")).value
    except QuantityError:
        return None


def _class_name(claim: Object) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation first, then the spec field."""
    annotations = claim["metadata"].get("annotations") or {}
    if _BETA_CLASS_ANNOTATION in annotations:
        return str(annotations[_BETA_CLASS_ANNOTATION])
    return str((claim.get("spec") or {}).get("storageClassName") or "")


def _forbidden(kind: ResourceKind, name: str, message: str) -> ApiError:
    # As admission.NewForbidden words it (the same shape as admission.forbidden).
    return ApiError(
        403,
        "Forbidden",
        f'{kind.group_resource} "{name}" is forbidden: {message}',
        {"name": name, "kind": kind.plural},
    )


def check_claim_resize(store: Store, kind: ResourceKind, old: Object, new: Object) -> None:
    """Refuse growing a claim that is unbound or whose class does not allow expansion."""
    old_size = _storage_request(old)
    new_size = _storage_request(new)
    if old_size is None or new_size is None or new_size <= old_size:
        return
    name = old["metadata"]["name"]
    if (old.get("status") or {}).get("phase") != "Bound":
        raise _forbidden(kind, name, "Only bound persistent volume claims can be expanded")
    class_name = _class_name(new)
    storage_class = store.get("StorageClass", "", class_name) if class_name else None
    if (
        storage_class is None
        or _class_name(old) != class_name
        or storage_class.get("allowVolumeExpansion") is not True
    ):
        raise _forbidden(
            kind,
            name,
            "only dynamically provisioned pvc can be resized and the storageclass that "
            "provisions the pvc must support resize",
        )
