"""The kinds the sandbox serves, with where each lives in the REST API.

The sandbox keeps its own table rather than the client's: it serves kinds the
controller never writes (Leases for other tools, StorageClasses, Nodes), and
it must not import the controller it stands in for.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownKindError(LookupError):
    """A kind the sandbox does not serve."""


class MissingNamespaceError(ValueError):
    """A namespaced kind named without its namespace."""


__all__ = [
    "KINDS",
    "SERVED_KINDS",
    "VIEWS",
    "MissingNamespaceError",
    "ResourceKind",
    "UnknownKindError",
    "kind_for_manifest",
    "kind_named",
]


@dataclass(frozen=True)
class ResourceKind:
    """One kind: where it lives in the REST API and how it behaves."""

    kind: str
    api_version: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    categories: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        """API group, empty for the core group."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        """API version within the group (``v1``)."""
        return self.api_version.rpartition("/")[2]

    @property
    def singular(self) -> str:
        """Singular resource name, as discovery reports it."""
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        """Kind of a LIST response (``ConfigMapList``)."""
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        """``plural.group`` as Kubernetes error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def prefix(self) -> str:
        """URL prefix of the group/version (``/api/v1`` or ``/apis/batch/v1``)."""
        return f"/apis/{self.api_version}" if self.group else f"/api/{self.api_version}"

    def collection_path(self, namespace: str | None = None) -> str:
        """URL of the collection, across all namespaces when ``namespace`` is None."""
        if self.namespaced and namespace is not None:
            return f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.prefix}/{self.plural}"

    def object_path(self, name: str, namespace: str | None = None) -> str:
        """URL of one object."""
        if self.namespaced and not namespace:
            raise MissingNamespaceError(
                f"{self.kind} {name!r} is namespaced: give the namespace it is in"
            )
        return f"{self.collection_path(namespace if self.namespaced else None)}/{name}"


KINDS: tuple[ResourceKind, ...] = (
    ResourceKind("Namespace", "v1", "namespaces", False, ("ns",), has_status=True),
    ResourceKind("ConfigMap", "v1", "configmaps", True, ("cm",)),
    ResourceKind("Secret", "v1", "secrets", True),
    ResourceKind("ServiceAccount", "v1", "serviceaccounts", True, ("sa",)),
    ResourceKind("ResourceQuota", "v1", "resourcequotas", True, ("quota",), has_status=True),
    ResourceKind("Service", "v1", "services", True, ("svc",), has_status=True, categories=("all",)),
    ResourceKind(
        "PersistentVolumeClaim", "v1", "persistentvolumeclaims", True, ("pvc",), has_status=True
    ),
    ResourceKind("Pod", "v1", "pods", True, ("po",), has_status=True, categories=("all",)),
    ResourceKind("Event", "v1", "events", True, ("ev",)),
    ResourceKind("Node", "v1", "nodes", False, ("no",), has_status=True),
    ResourceKind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", True, ("netpol",)),
    ResourceKind("Ingress", "networking.k8s.io/v1", "ingresses", True, ("ing",), has_status=True),
    ResourceKind("Job", "batch/v1", "jobs", True, (), has_status=True, categories=("all",)),
    ResourceKind(
        "Deployment",
        "apps/v1",
        "deployments",
        True,
        ("deploy",),
        has_status=True,
        categories=("all",),
    ),
    ResourceKind(
        "GafaelfawrIngress", "gafaelfawr.lsst.io/v1alpha1", "gafaelfawringresses", True, ("gi",)
    ),
    ResourceKind("Lease", "coordination.k8s.io/v1", "leases", True),
    ResourceKind("StorageClass", "storage.k8s.io/v1", "storageclasses", False, ("sc",)),
    # RBAC (`nublado.sandbox.rbac` evaluates them when the sandbox authorizes requests).
    ResourceKind("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", False),
    ResourceKind(
        "ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", False
    ),
    ResourceKind("Role", "rbac.authorization.k8s.io/v1", "roles", True),
    ResourceKind("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", True),
)

# Kinds served a second time under another group/version, stored once: the
# store keys objects by kind name, so a view shares its stored kind's objects
# and the HTTP layer converts them at the edge (`nublado.sandbox.events`).
VIEWS: tuple[ResourceKind, ...] = (
    ResourceKind("Event", "events.k8s.io/v1", "events", True, ("ev",)),
)

# Everything discovery lists, stored kinds first.
SERVED_KINDS: tuple[ResourceKind, ...] = KINDS + VIEWS

_BY_KIND = {k.kind.lower(): k for k in KINDS}
_BY_NAME: dict[str, ResourceKind] = {}
for _k in KINDS:
    for _name in (_k.kind.lower(), _k.plural, _k.singular, *_k.short_names):
        _BY_NAME.setdefault(_name, _k)


def kind_named(name: str) -> ResourceKind:
    """Find a kind by kind, plural, singular or short name (``Pod``, ``pods``, ``po``)."""
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        known = ", ".join(k.kind for k in KINDS)
        raise UnknownKindError(f"unknown kind {name!r} (known: {known})") from None


def kind_for_manifest(manifest: dict[str, object]) -> ResourceKind:
    """The kind of a manifest, checking its apiVersion against the table."""
    kind_name = manifest.get("kind")
    api_version = manifest.get("apiVersion")
    if not isinstance(kind_name, str) or not isinstance(api_version, str):
        raise UnknownKindError("manifest has no kind or apiVersion")
    kind = _BY_KIND.get(kind_name.lower())
    if kind is None or kind.kind != kind_name:
        raise UnknownKindError(f"unknown kind {kind_name!r}")
    if kind.api_version != api_version:
        raise UnknownKindError(f"{kind_name} has apiVersion {kind.api_version}, not {api_version}")
    return kind
