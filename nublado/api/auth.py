"""Who is calling: the authentication modes A-D of api.md section 1.4, for route handlers.

The controller trusts the Gafaelfawr ingress in front of it (api.md 1.1): it
never looks at ``Authorization``; it reads ``X-Auth-Request-User`` (the user
the ingress authenticated) and, for full user authentication,
``X-Auth-Request-Token`` (the delegated token). Starlette has no dependency
injection, so each mode is a small function the route calls first:

======  ==========================================  =====================================
Mode    Routes                                      Call
======  ==========================================  =====================================
A       lab-form, create, ``FILES``                 ``await authenticate_user(request, source)``
                                                    then `check_path_user` where the path
                                                    has ``{username}``
B       events                                      ``require_path_user(request, username)``
C       ``spawner/v1/user-status``,                 ``require_username(request)``
        ``fileserver/v1/user-status``
D       labs list, lab status, delete, images,      nothing: the ingress's scope rules
        prepulls, file-server admin, fsadmin, index  are the only check (api.md 1.2)
======  ==========================================  =====================================

Errors raised, each with ``error`` (the body's ``type``) and ``status_code``
so the API's single error handler can map them:

* `MissingHeadersError` -> 422, FastAPI's validation body; its ``errors``
  are the ``detail`` entries, one per absent header, in the order upstream
  declares them (user, then token).
* `InvalidTokenError` -> 401, ``msg`` "User token is invalid", ``type`` ``invalid_token``.
* `PermissionDeniedError` -> 403, ``msg`` "Permission denied", ``type`` ``permission_denied``.
  Both in the one-entry ClientRequestError body (api.md 2.1), no ``loc``.
* `nublado.gafaelfawr.GafaelfawrError` -> the plain 500 of an uncaught error.

Ordering, which upstream's FastAPI wiring fixes and clients can observe
(api.md 1.4); route authors with a JSON body (create) must follow it:

1. A body that is not JSON at all: 422 ``json_invalid`` alone, before
   anything else, headers included.
2. Absent auth headers: no Gafaelfawr call; one 422 carrying the header
   entries (`missing_header_errors`) *followed by* the body model's
   validation entries, if any.
3. Headers present: `authenticate_user` (Gafaelfawr; 401 / 403 from here).
4. Body model validation: 422. So an invalid token with an invalid body is
   401, a valid token with an invalid body is 422.
5. `check_path_user`: 403. It runs after body validation, so another user's
   path with a valid token and an invalid body is 422, not 403.

Routes without a body just call `authenticate_user` then `check_path_user`.
An empty header value counts as present (as in FastAPI); with several values
the first is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ..gafaelfawr import UserInfoSource
from ..models.user import UserInfo
from .errors import PermissionDeniedError, RequestValidationError, missing_error

__all__ = [
    "TOKEN_HEADER",
    "USER_AUTH_HEADERS",
    "USER_HEADER",
    "AuthenticatedUser",
    "MissingHeadersError",
    "PermissionDeniedError",
    "authenticate_user",
    "check_path_user",
    "missing_header_errors",
    "require_headers",
    "require_path_user",
    "require_username",
]

USER_HEADER = "x-auth-request-user"
"""The username Gafaelfawr authenticated (lower case, as FastAPI reports it in ``loc``)."""

TOKEN_HEADER = "x-auth-request-token"
"""The delegated token Gafaelfawr issued for this request."""

USER_AUTH_HEADERS = (USER_HEADER, TOKEN_HEADER)
"""Mode A's headers, in upstream's declaration order (the order of its 422 entries)."""


class MissingHeadersError(RequestValidationError):
    """Required headers are absent: FastAPI's 422 body, one ``missing`` entry per header.

    ``names`` are the lower-case header names, in declaration order.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        super().__init__([missing_error(("header", name)) for name in self.names])


@dataclass(frozen=True)
class AuthenticatedUser:
    """Mode A's result: Gafaelfawr's record of the caller and the token that proved it.

    The token is kept because a create stores it in the lab's Secret.
    """

    info: UserInfo
    token: str

    @property
    def username(self) -> str:
        """The caller's username (equal to ``X-Auth-Request-User``)."""
        return self.info.username


def missing_header_errors(request: Request, *names: str) -> list[dict[str, Any]]:
    """FastAPI-style 422 entries for those of ``names`` the request lacks (empty: none).

    For routes that must merge them with body validation errors (ordering step 2).
    """
    return [missing_error(("header", name)) for name in names if name not in request.headers]


def require_headers(request: Request, *names: str) -> list[str]:
    """The values of ``names``, in order; `MissingHeadersError` naming every absent one."""
    missing = [name for name in names if name not in request.headers]
    if missing:
        raise MissingHeadersError(missing)
    return [request.headers[name] for name in names]


async def authenticate_user(request: Request, source: UserInfoSource) -> AuthenticatedUser:
    """Mode A: headers, Gafaelfawr's record of the token, and the two usernames agreeing.

    Raises `MissingHeadersError` (no Gafaelfawr call then), `InvalidTokenError`,
    `PermissionDeniedError` (the token belongs to someone other than the
    header's user) or `GafaelfawrError`.
    """
    username, token = require_headers(request, *USER_AUTH_HEADERS)
    info = await source.user_info(token, username=username)
    if info.username != username:
        raise PermissionDeniedError
    return AuthenticatedUser(info=info, token=token)


def check_path_user(user: AuthenticatedUser | str, username: str) -> None:
    """Step 6 of mode A (and mode B): the path's ``{username}`` must be the caller."""
    caller = user.username if isinstance(user, AuthenticatedUser) else user
    if caller != username:
        raise PermissionDeniedError


def require_username(request: Request) -> str:
    """Mode C: the caller's username from ``X-Auth-Request-User``; no Gafaelfawr call."""
    (username,) = require_headers(request, USER_HEADER)
    return username


def require_path_user(request: Request, username: str) -> str:
    """Mode B: ``X-Auth-Request-User`` must equal the path's ``{username}``; no Gafaelfawr call."""
    caller = require_username(request)
    check_path_user(caller, username)
    return caller
