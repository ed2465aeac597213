"""A lab image resolved to a digest."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ResolvedImage"]


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """An image a lab runs: where it lives, which tag was chosen and its digest."""

    registry: str
    repository: str
    tag: str
    digest: str
    display_name: str

    @property
    def reference(self) -> str:
        """``registry/repository:tag``."""
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def reference_with_digest(self) -> str:
        """``registry/repository:tag@digest``, what a pod pulls."""
        return f"{self.reference}@{self.digest}"
