"""Kubernetes failures as our own exceptions.

The client turns every error answer into one of these, carrying the reason
and message of the Kubernetes ``Status`` body, so callers branch on a class
(``except NotFoundError``) rather than on HTTP codes, and never see the
``kubernetes`` package's exception types.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError, NubladoError

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "ExpiredError",
    "ForbiddenError",
    "InvalidError",
    "KubernetesConnectionError",
    "KubernetesError",
    "KubernetesTimeoutError",
    "MissingNamespaceError",
    "NotFoundError",
    "UnknownKindError",
    "error_from_status",
]


class KubernetesError(NubladoError):
    """The API server refused or failed a request; carries its Status fields."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.details = details or {}

    def __str__(self) -> str:
        if self.status:
            return f"{self.message} ({self.status} {self.reason})"
        return self.message


class NotFoundError(KubernetesError):
    """The object (or its namespace) does not exist."""


class ConflictError(KubernetesError):
    """409: a field-manager conflict, a stale resourceVersion, or a namespace being deleted."""


class AlreadyExistsError(ConflictError):
    """409 AlreadyExists: a create found an object with the same name."""


class InvalidError(KubernetesError):
    """422 Invalid: the object breaks a validation rule (immutable fields, pod spec changes)."""


class ForbiddenError(KubernetesError):
    """403: refused, for example creating content in a terminating namespace."""


class ExpiredError(KubernetesError):
    """410 Expired: a watch asked for a resourceVersion the server no longer has."""


class KubernetesTimeoutError(KubernetesError):
    """A bounded wait (deletion, watch, request) ran out of time."""


class KubernetesConnectionError(KubernetesError):
    """The API server could not be reached or dropped the connection."""


class UnknownKindError(InputError):
    """A manifest or a call names a kind outside the fixed table in `nublado.kube.kinds`."""


class MissingNamespaceError(InputError):
    """A call names an object of a namespaced kind but no namespace to find it in."""


_BY_STATUS: dict[int, type[KubernetesError]] = {
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: ExpiredError,
    422: InvalidError,
    504: KubernetesTimeoutError,
}


def error_from_status(status: int, body: Any, http_reason: str = "") -> KubernetesError:
    """Build the exception for an error answer, from its ``Status`` body when it has one."""
    reason = http_reason
    message = f"HTTP {status} {http_reason}".strip()
    details: dict[str, Any] = {}
    if isinstance(body, dict) and body.get("kind") == "Status":
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or message)
        details = body.get("details") or {}
        status = int(body.get("code") or status)
    if reason == "AlreadyExists":
        return AlreadyExistsError(message, status=status, reason=reason, details=details)
    if reason == "Expired" or reason == "Gone":
        return ExpiredError(message, status=status, reason=reason, details=details)
    cls = _BY_STATUS.get(status, KubernetesError)
    return cls(message, status=status, reason=reason, details=details)
