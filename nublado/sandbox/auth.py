"""Bearer-token authentication for the sandbox's RBAC mode (``SandboxSettings.rbac``).

Two kinds of token, as a cluster has them:

- the *admin* token, made once per `Sandbox`, written into the kubeconfig it
  writes: user ``sandbox-admin`` in ``system:masters``, which bypasses
  authorization, so tests, kubectl and the operator keep every right;
- *ServiceAccount* tokens, issued by the TokenRequest subresource
  (``POST .../serviceaccounts/NAME/token``): user
  ``system:serviceaccount:NS:NAME`` in ``system:serviceaccounts``,
  ``system:serviceaccounts:NS`` and ``system:authenticated``. Like a bound
  token, one stops working when it expires or when its ServiceAccount is
  deleted (a new one of the same name has another uid).

A request without an ``Authorization`` header is anonymous
(``system:anonymous``) only on the health endpoints, as kube-apiserver 1.32
with anonymous authentication limited to them (KEP-4633); anywhere else it,
and a request with a token the sandbox did not issue, is answered 401
Unauthorized.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from .clock import now_timestamp
from .rbac import ANONYMOUS, PRIVILEGED_GROUP, Identity, service_account_identity
from .store import ApiError, Store, status_body

__all__ = [
    "ADMIN",
    "ANONYMOUS_PATHS",
    "DEFAULT_AUDIENCE",
    "Tokens",
    "token_request_response",
    "unauthorized",
]

Object = dict[str, Any]

ADMIN = Identity("sandbox-admin", (PRIVILEGED_GROUP, "system:authenticated"))
"""Whom the admin token authenticates."""

ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
"""Where a request without credentials is served as ``system:anonymous``."""

DEFAULT_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
"""The API server's audience, a TokenRequest's when it names none."""

_DEFAULT_EXPIRATION = 3600
_MIN_EXPIRATION = 600
_MAX_EXPIRATION = 2**32  # kube's limit (seconds), beyond which it is refused


def unauthorized() -> Object:
    """kube-apiserver's 401 body."""
    return status_body(401, "Unauthorized", "Unauthorized")


@dataclass(frozen=True)
class _Bound:
    """A ServiceAccount token: whose, until when (epoch seconds), for whom."""

    namespace: str
    name: str
    uid: str
    expires: float
    audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)


class Tokens:
    """The tokens a sandbox issued, and who each one is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.admin_token = f"sandbox-admin.{secrets.token_urlsafe(24)}"
        self._bound: dict[str, _Bound] = {}

    def issue(
        self,
        namespace: str,
        name: str,
        uid: str,
        expiration_seconds: int,
        audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,),
    ) -> str:
        """A new token for the ServiceAccount ``namespace/name`` (uid ``uid``).

        ``audiences`` are the token's; the sandbox accepts it only if one of
        them is its own (`DEFAULT_AUDIENCE`), as kube-apiserver accepts only
        tokens for one of its ``--api-audiences``.
        """
        token = f"sa.{secrets.token_urlsafe(32)}"
        expires = time.time() + expiration_seconds
        with self._lock:
            self._bound[token] = _Bound(namespace, name, uid, expires, audiences)
        return token

    def authenticate(self, store: Store, authorization: str, path: str) -> Identity:
        """Who sent a request with this ``Authorization`` header; `ApiError` 401 if nobody.

        The scheme is case-insensitive (the in-cluster loader sends
        ``bearer``). A ServiceAccount token is checked against ``store``:
        its ServiceAccount must still exist with the same uid, and one of
        its audiences must be the API server's (a token made for Vault is
        not a credential for the API).
        """
        header = authorization.strip()
        parts = header.split(" ", 2)
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            if not header and path in ANONYMOUS_PATHS:
                return ANONYMOUS
            raise ApiError(401, "Unauthorized", "Unauthorized")
        token = parts[1]
        if secrets.compare_digest(token, self.admin_token):
            return ADMIN
        with self._lock:
            bound = self._bound.get(token)
        if bound is None or bound.expires <= time.time() or DEFAULT_AUDIENCE not in bound.audiences:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        with store.lock:
            account = store.get("ServiceAccount", bound.namespace, bound.name)
        if account is None or account["metadata"].get("uid") != bound.uid:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return service_account_identity(bound.namespace, bound.name)


def _expiration(spec: Object, name: str) -> int:
    """The requested lifetime: at least ten minutes, an hour by default."""
    value = spec.get("expirationSeconds")
    if value is None:
        return _DEFAULT_EXPIRATION
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError.bad_request(
            'TokenRequest in version "v1" cannot be handled as a TokenRequest: '
            "json: cannot unmarshal into Go struct field TokenRequestSpec.spec.expirationSeconds "
            "of type int64"
        )
    problem = ""
    if value < _MIN_EXPIRATION:
        problem = "may not specify a duration less than 10 minutes"
    elif value > _MAX_EXPIRATION:
        problem = "may not specify a duration larger than 2^32 seconds"
    if problem:
        raise ApiError(
            422,
            "Invalid",
            f'TokenRequest.authentication.k8s.io "{name}" is invalid: '
            f"spec.expirationSeconds: Invalid value: {value}: {problem}",
            {
                "name": name,
                "group": "authentication.k8s.io",
                "kind": "TokenRequest",
                "causes": [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {value}: {problem}",
                        "field": "spec.expirationSeconds",
                    }
                ],
            },
        )
    return value


def token_request_response(
    tokens: Tokens, store: Store, namespace: str, name: str, body: Object
) -> Object:
    """Serve ``POST .../serviceaccounts/NAME/token``: the TokenRequest with its token.

    The ServiceAccount must exist (404 as for any missing object); the body
    is an ``authentication.k8s.io/v1`` TokenRequest whose spec may name
    audiences and a lifetime (600 s or more; 3600 s by default).
    """
    if body.get("kind") not in (None, "TokenRequest") or body.get("apiVersion") not in (
        None,
        "authentication.k8s.io/v1",
    ):
        raise ApiError.bad_request(
            f'no kind "{body.get("kind")}" is registered for version '
            f'"{body.get("apiVersion")}" in scheme "pkg/api/legacyscheme/scheme.go:30"'
        )
    with store.lock:
        account = store.get("ServiceAccount", namespace, name)
    if account is None:
        raise ApiError(
            404,
            "NotFound",
            f'serviceaccounts "{name}" not found',
            {"name": name, "kind": "serviceaccounts"},
        )
    given = body.get("spec")
    spec: Object = given if isinstance(given, dict) else {}
    seconds = _expiration(spec, name)
    audiences = spec.get("audiences") or [DEFAULT_AUDIENCE]
    token = tokens.issue(
        namespace, name, account["metadata"]["uid"], seconds, tuple(str(a) for a in audiences)
    )
    expires = now_timestamp(seconds)
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": {
            "audiences": audiences,
            "expirationSeconds": seconds,
            "boundObjectRef": spec.get("boundObjectRef"),
        },
        "status": {"token": token, "expirationTimestamp": expires},
    }
