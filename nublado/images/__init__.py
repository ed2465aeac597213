"""RSP image tags, collections, registry sources, menus and prune policy.

The tag grammar and Docker references are re-exported here: they are pure
Python and cheap to import, unlike the registry sources that use httpx.
"""

from nublado.images.reference import DockerReference, InvalidDockerReferenceError
from nublado.images.tag import DOCKER_DEFAULT_TAG, RSPImageTag, RSPImageType, SemanticVersion

__all__ = [
    "DOCKER_DEFAULT_TAG",
    "DockerReference",
    "InvalidDockerReferenceError",
    "RSPImageTag",
    "RSPImageType",
    "SemanticVersion",
]
