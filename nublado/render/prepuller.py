"""Context builder of the prepuller set: one pod that pulls one image onto one node."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..models.image import ResolvedImage
from ..models.metadata import ControllerMetadata
from .common import CATEGORY_LABEL, tolerations

__all__ = ["PrepullContext", "build_prepull_context", "prepull_pod_name"]

_NOT_NAME = re.compile(r"[^a-z0-9.-]")
_DOT_RUN = re.compile(r"[.-]*\.[.-]+|[.-]+\.[.-]*")
_MAX_NAME = 253


def prepull_pod_name(tag: str, node: str) -> str:
    """A valid DNS-1123 pod name for pulling ``tag`` onto ``node``.

    Upstream kept upper case and could end a cut name with a dash; Kubernetes
    rejects both (DECISIONS 4), so the name is lower-cased and trimmed.
    """
    mangled = _NOT_NAME.sub("", tag.replace("_", "-").lower())
    name = f"prepull-{mangled}-{node.lower()}"
    # A dot must sit between two alphanumerics: "a..b" or "a.-b" would not be a name.
    return _DOT_RUN.sub("-", name)[:_MAX_NAME].rstrip("-.")


@dataclass(frozen=True, slots=True)
class PrepullContext:
    """Everything templates/prepuller/ needs, under the name ``prepull``."""

    name: str
    namespace: str
    labels: dict[str, str]
    owner: ControllerMetadata
    image: str
    node: str
    pull_secret: str | None
    tolerations: list[dict[str, Any]]


def build_prepull_context(
    config: Config, metadata: ControllerMetadata, image: ResolvedImage, node: str
) -> dict[str, Any]:
    """The template context ``{"prepull": PrepullContext}`` for one (image, node) pair."""
    context = PrepullContext(
        name=prepull_pod_name(image.tag, node),
        namespace=metadata.namespace,
        labels={CATEGORY_LABEL: "prepuller"},
        owner=metadata,
        image=image.reference_with_digest,
        node=node,
        pull_secret=config.lab.pull_secret,
        tolerations=tolerations(config.lab.tolerations),
    )
    return {"prepull": context}
