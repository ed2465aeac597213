"""Docker image references: `registry/repository[:tag][@digest]`.

The lab form, the dry-run renderer and node image inventories name images by
reference. One parser with upstream's grammar (images-tools.md section 2.5)
splits them, and reports a string it cannot split as bad input rather than a
crash. Pure Python: it is imported on the CLI's fast path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nublado.errors import InputError

__all__ = ["DockerReference", "InvalidDockerReferenceError"]

# The first path segment is always the registry (even "library/foo"), so a
# reference needs at least one "/". "." never matches a newline.
_REFERENCE = re.compile(
    r"(?P<registry>[^/\n]+)/(?P<repository>[^:@\n]+)(?::(?P<tag>[^@\n]+))?(?:@(?P<digest>.+))?"
)


def _printable(text: str) -> str:
    """Escape control characters so that an error message stays on one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class InvalidDockerReferenceError(InputError):
    """A string that is not a Docker reference was given where an image reference is expected.

    The API answers it with 422 ``invalid_docker_reference``; the CLI prints it.
    ``message`` replaces the default one, for a reference that parses but
    lacks a part the caller needs (an image source needs a tag).
    """

    error = "invalid_docker_reference"

    def __init__(self, reference: str, message: str | None = None) -> None:
        self.reference = reference
        super().__init__(
            message
            if message is not None
            else f'Invalid Docker reference "{_printable(reference)}"'
            " (expected registry/repository[:tag][@digest])"
        )


@dataclass(frozen=True, slots=True)
class DockerReference:
    """A parsed Docker image reference; its string form reassembles only the parts present."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def from_str(cls, reference: str) -> DockerReference:
        """Parse ``registry/repository[:tag][@digest]``; raise `InvalidDockerReferenceError`."""
        match = _REFERENCE.fullmatch(reference)
        if not match:
            raise InvalidDockerReferenceError(reference)
        return cls(
            registry=match["registry"],
            repository=match["repository"],
            tag=match["tag"],
            digest=match["digest"],
        )

    @property
    def image(self) -> str:
        """Registry and repository: what must match a configured image source."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference_without_digest(self) -> str:
        """The reference with any digest dropped, as people read and type it."""
        return f"{self.image}:{self.tag}" if self.tag else self.image

    @property
    def reference_with_digest(self) -> str:
        """The full reference, digest included when known: what a pod should pull."""
        without_digest = self.reference_without_digest
        return f"{without_digest}@{self.digest}" if self.digest else without_digest

    def __str__(self) -> str:
        return self.reference_with_digest
