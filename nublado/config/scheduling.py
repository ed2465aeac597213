"""Scheduling rules shared by labs, file servers and fsadmin: tolerations and affinity.

The models accept the Kubernetes spelling (and, for affinity, the short keys
``required`` and ``preferred``) and validate what Kubernetes would otherwise
reject when the pod is created. ``to_kubernetes()`` gives the exact form the
upstream controller puts in a pod (spec/objects.md section 2.9): null parts are
omitted, empty lists mostly omitted, but requirement ``values`` always present.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from ._base import ConfigModel

__all__ = [
    "Affinity",
    "LabelSelector",
    "LabelSelectorOperator",
    "LabelSelectorRequirement",
    "NodeAffinity",
    "NodeSelector",
    "NodeSelectorOperator",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "PodAffinity",
    "PodAffinityTerm",
    "PodAntiAffinity",
    "PreferredSchedulingTerm",
    "TaintEffect",
    "Toleration",
    "TolerationOperator",
    "WeightedPodAffinityTerm",
]

_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


class TaintEffect(StrEnum):
    """Which scheduling decisions a taint (and so a toleration) is about."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class TolerationOperator(StrEnum):
    """How a toleration matches a taint's value."""

    EQUAL = "Equal"
    EXISTS = "Exists"


class Toleration(ConfigModel):
    """A taint that pods may be scheduled despite (lab, prepull, file server, fsadmin pods)."""

    effect: TaintEffect | None = None
    key: str | None = None
    operator: TolerationOperator = TolerationOperator.EQUAL
    toleration_seconds: int | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _check_operator(self) -> Self:
        if self.operator == TolerationOperator.EXISTS:
            if self.value is not None:
                raise ValueError("a toleration with operator Exists must not have a value")
        elif not self.key or not self.value:
            raise ValueError("a toleration with operator Equal needs a non-empty key and value")
        return self

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form: null keys omitted, an empty ``key`` kept."""
        result: dict[str, Any] = {}
        if self.effect is not None:
            result["effect"] = self.effect.value
        if self.key is not None:
            result["key"] = self.key
        result["operator"] = self.operator.value
        # Kubernetes refuses tolerationSeconds unless the effect is NoExecute
        # (upstream sent it anyway, and the pod was refused); it only bounds
        # how long a pod stays on a node tainted NoExecute after scheduling.
        if self.toleration_seconds is not None and self.effect == TaintEffect.NO_EXECUTE:
            result["tolerationSeconds"] = self.toleration_seconds
        if self.value is not None:
            result["value"] = self.value
        return result


class NodeSelectorOperator(StrEnum):
    """How a node selector requirement compares a node label (or field) with values."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


class LabelSelectorOperator(StrEnum):
    """How a label selector requirement compares a pod label with values."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


def _check_values(operator: str, values: list[str]) -> None:
    """Apply Kubernetes' rule on how many values each operator takes."""
    if operator in ("In", "NotIn") and not values:
        raise ValueError(f"operator {operator} needs at least one value")
    if operator in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"operator {operator} takes no values")
    if operator in ("Gt", "Lt"):
        if len(values) != 1:
            raise ValueError(f"operator {operator} needs exactly one value")
        try:
            int(values[0])
        except ValueError:
            raise ValueError(
                f"operator {operator} needs an integer value, got {values[0]!r}"
            ) from None


class _Requirement(ConfigModel):
    """One condition on a label or field: a key, an operator and its values."""

    key: str
    operator: NodeSelectorOperator | LabelSelectorOperator
    values: list[str] = []

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_values(self.operator.value, self.values)
        return self

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form; ``values`` is always present, even empty (as upstream)."""
        return {"key": self.key, "operator": self.operator.value, "values": list(self.values)}


class NodeSelectorRequirement(_Requirement):
    """One condition on a node label or field."""

    operator: NodeSelectorOperator


class NodeSelectorTerm(ConfigModel):
    """Conditions that must all hold for a node to match."""

    match_expressions: list[NodeSelectorRequirement] = []
    match_fields: list[NodeSelectorRequirement] = []

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form; empty lists are dropped."""
        result: dict[str, Any] = {}
        if self.match_expressions:
            result["matchExpressions"] = [e.to_kubernetes() for e in self.match_expressions]
        if self.match_fields:
            result["matchFields"] = [e.to_kubernetes() for e in self.match_fields]
        return result


class NodeSelector(ConfigModel):
    """Terms of which at least one must match for a pod to be placed on a node."""

    node_selector_terms: list[NodeSelectorTerm]

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form; ``nodeSelectorTerms`` is always present."""
        return {"nodeSelectorTerms": [t.to_kubernetes() for t in self.node_selector_terms]}


class PreferredSchedulingTerm(ConfigModel):
    """A node preference with its weight."""

    preference: NodeSelectorTerm
    weight: Annotated[int, Field(ge=1, le=100)]

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form."""
        return {"preference": self.preference.to_kubernetes(), "weight": self.weight}


class NodeAffinity(ConfigModel):
    """Rules on which nodes a pod may or should run."""

    required: Annotated[NodeSelector | None, Field(alias=_REQUIRED)] = None
    preferred: Annotated[list[PreferredSchedulingTerm], Field(alias=_PREFERRED)] = []

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form, long Kubernetes keys, empty parts omitted."""
        result: dict[str, Any] = {}
        if self.required is not None:
            result[_REQUIRED] = self.required.to_kubernetes()
        if self.preferred:
            result[_PREFERRED] = [p.to_kubernetes() for p in self.preferred]
        return result


class LabelSelectorRequirement(_Requirement):
    """One condition on a pod (or namespace) label."""

    operator: LabelSelectorOperator


class LabelSelector(ConfigModel):
    """Selects pods or namespaces by label."""

    match_expressions: list[LabelSelectorRequirement] = []
    match_labels: dict[str, str] = {}

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form; empty parts dropped, so an empty selector is ``{}``."""
        result: dict[str, Any] = {}
        if self.match_expressions:
            result["matchExpressions"] = [e.to_kubernetes() for e in self.match_expressions]
        if self.match_labels:
            result["matchLabels"] = dict(self.match_labels)
        return result


class PodAffinityTerm(ConfigModel):
    """Pods (selected by labels, in some namespaces) that a pod should be near or far from."""

    label_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    namespaces: list[str] = []
    topology_key: str

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form; null selectors and empty ``namespaces`` omitted."""
        result: dict[str, Any] = {}
        if self.label_selector is not None:
            result["labelSelector"] = self.label_selector.to_kubernetes()
        if self.namespace_selector is not None:
            result["namespaceSelector"] = self.namespace_selector.to_kubernetes()
        if self.namespaces:
            result["namespaces"] = list(self.namespaces)
        result["topologyKey"] = self.topology_key
        return result


class WeightedPodAffinityTerm(ConfigModel):
    """A pod affinity preference with its weight."""

    pod_affinity_term: PodAffinityTerm
    weight: Annotated[int, Field(ge=1, le=100)]

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form."""
        return {"podAffinityTerm": self.pod_affinity_term.to_kubernetes(), "weight": self.weight}


class PodAffinity(ConfigModel):
    """Pods that a pod must or should run near."""

    required: Annotated[list[PodAffinityTerm], Field(alias=_REQUIRED)] = []
    preferred: Annotated[list[WeightedPodAffinityTerm], Field(alias=_PREFERRED)] = []

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form, long Kubernetes keys, empty lists omitted."""
        result: dict[str, Any] = {}
        if self.required:
            result[_REQUIRED] = [t.to_kubernetes() for t in self.required]
        if self.preferred:
            result[_PREFERRED] = [t.to_kubernetes() for t in self.preferred]
        return result


class PodAntiAffinity(PodAffinity):
    """Pods that a pod must or should run away from (same shape as `PodAffinity`)."""


class Affinity(ConfigModel):
    """Node and pod affinity of a pod; an empty block stays an empty ``affinity: {}``."""

    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAntiAffinity | None = None

    def to_kubernetes(self) -> dict[str, Any]:
        """The pod-spec form; null parts omitted."""
        result: dict[str, Any] = {}
        if self.node_affinity is not None:
            result["nodeAffinity"] = self.node_affinity.to_kubernetes()
        if self.pod_affinity is not None:
            result["podAffinity"] = self.pod_affinity.to_kubernetes()
        if self.pod_anti_affinity is not None:
            result["podAntiAffinity"] = self.pod_anti_affinity.to_kubernetes()
        return result
