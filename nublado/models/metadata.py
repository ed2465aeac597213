"""The controller's own pod, as the downward API describes it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["ControllerMetadata"]


@dataclass(frozen=True, slots=True)
class ControllerMetadata:
    """Name, namespace and uid of the controller pod (owner of prepull pods)."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def from_directory(cls, path: Path) -> ControllerMetadata:
        """Read the ``name``, ``namespace`` and ``uid`` files, whitespace stripped."""
        values: dict[str, str] = {}
        for field in ("name", "namespace", "uid"):
            try:
                values[field] = (path / field).read_text().strip()
            except OSError as exc:
                raise InputError(
                    f"{path / field}: cannot read controller metadata: {exc.strerror}"
                ) from exc
        return cls(**values)
