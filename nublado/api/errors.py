"""The API's error model: every failure a client can see, and the one place it is rendered.

Routes and services raise exceptions; nothing else in the API builds an
error body. The handlers installed by `exception_handlers` turn them into
upstream's wire formats (api.md section 2):

* `ClientRequestError` and its subclasses, the catalogue of 2.2 and the
  wrapped server failures of 2.4: ``{"detail": [{"msg", "type"(, "loc")}]}``.
* Errors raised below the API that already carry a type code
  (`UnknownImageError`, `InvalidDockerReferenceError`): mapped once by
  `FOREIGN_ERRORS`, not per route.
* `RequestValidationError`: FastAPI's 422 list (2.3), built from pydantic
  errors by `validation_error_items`.
* Starlette's `HTTPException` (routing 404/405, 2.6): FastAPI's
  ``{"detail": "..."}``.
* Anything else: plain-text ``Internal Server Error`` 500, logged (2.5).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import pydantic
from pydantic_core import PydanticSerializationError, to_jsonable_python
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import NubladoError
from ..gafaelfawr import InvalidTokenError as GafaelfawrInvalidTokenError
from ..images.reference import InvalidDockerReferenceError
from ..images.source import UnknownImageError

__all__ = [
    "FOREIGN_ERRORS",
    "Alert",
    "ClientRequestError",
    "DeleteFailedError",
    "FileServerCreateFailedError",
    "FileServerDeleteFailedError",
    "InsufficientQuotaError",
    "InvalidDockerReferenceRequestError",
    "InvalidLabSizeError",
    "InvalidPhaseError",
    "InvalidTokenError",
    "LabExistsError",
    "Location",
    "NotFoundError",
    "NotSupportedError",
    "OperationInProgressError",
    "PermissionDeniedError",
    "RequestValidationError",
    "ServerOperationError",
    "UnknownImageRequestError",
    "UnknownUserError",
    "client_error",
    "exception_handlers",
    "jsonable",
    "missing_error",
    "validation_error_items",
]

_log = logging.getLogger(__name__)

Location = Sequence[str | int]
"""Where in the request an error lies: ``("body", "options", "size")``, ``("path", "username")``."""

OPTIONS_SIZE: tuple[str, ...] = ("body", "options", "size")


class ClientRequestError(NubladoError):
    """A failure the client caused or must be told about, with a stable type code.

    Subclasses set ``error`` (the ``type`` of the body) and ``status_code``;
    the message is the ``msg``. ``location`` is the request part the error
    is tied to, rendered as ``loc`` only when given (api.md 2.1).
    """

    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 422

    def __init__(self, message: str, *, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = tuple(location) if location is not None else None

    def detail(self) -> dict[str, Any]:
        """The one element of the ``detail`` list, keys in upstream's order."""
        item: dict[str, Any] = {"msg": self.message, "type": self.error}
        if self.location is not None:
            item["loc"] = list(self.location)
        return item

    def to_response(self) -> JSONResponse:
        """The whole response: ``{"detail": [item]}`` with this error's status."""
        return JSONResponse({"detail": [self.detail()]}, status_code=self.status_code)


class InvalidTokenError(ClientRequestError):
    """Gafaelfawr rejected the delegated token (it answered 401 or 403)."""

    error = "invalid_token"
    status_code = 401

    def __init__(self, message: str = "User token is invalid") -> None:
        super().__init__(message)


class PermissionDeniedError(ClientRequestError):
    """The caller may not do this: another user's lab, no spawn quota, no UID or GID."""

    error = "permission_denied"
    status_code = 403

    def __init__(self, message: str = "Permission denied") -> None:
        super().__init__(message)


class InsufficientQuotaError(ClientRequestError):
    """The requested size needs more than the user's notebook quota."""

    error = "insufficient_quota"
    status_code = 403

    def __init__(self, message: str = "Insufficient quota to spawn requested lab") -> None:
        super().__init__(message, location=OPTIONS_SIZE)


class InvalidLabSizeError(ClientRequestError):
    """The requested size is a known size name but not one of the configured sizes."""

    error = "invalid_lab_size"
    status_code = 422

    def __init__(self, size: str) -> None:
        self.size = size
        super().__init__(f'Invalid lab size "{size}"', location=OPTIONS_SIZE)


class InvalidDockerReferenceRequestError(ClientRequestError):
    """A requested image reference cannot be used (no tag, or unparsable; DECISIONS API 4)."""

    error = "invalid_docker_reference"
    status_code = 422


class UnknownImageRequestError(ClientRequestError):
    """The requested image (reference, tag or class) is not one the image source knows."""

    error = "unknown_image"
    status_code = 400


class LabExistsError(ClientRequestError):
    """Create: the user already has a lab that is neither terminated nor failed."""

    error = "lab_exists"
    status_code = 409

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"Lab already exists for {username}")


class OperationInProgressError(ClientRequestError):
    """Create or delete: a spawn or delete for this user is already running.

    The message is written once (DECISIONS API "Fixed" 6), not upstream's
    doubled sentence.
    """

    error = "operation_in_progress"
    status_code = 409

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"Conflicting operation for {username} already in progress")


class UnknownUserError(ClientRequestError):
    """No lab (or file server) for this user; ``loc`` only where the user is a path part."""

    error = "unknown_user"
    status_code = 404

    @classmethod
    def for_path(cls, username: str) -> UnknownUserError:
        """``Unknown user <user>`` at ``["path", "username"]`` (GET/DELETE labs, events)."""
        return cls(f"Unknown user {username}", location=("path", "username"))


class NotSupportedError(ClientRequestError):
    """A route of a service disabled in the configuration (file servers)."""

    error = "not_supported"
    status_code = 404

    def __init__(self, message: str = "Fileserver is disabled in configuration") -> None:
        super().__init__(message)


class NotFoundError(ClientRequestError):
    """An object the route needs does not exist (the fsadmin pod: ``<namespace>/<name>``)."""

    error = "not_found"
    status_code = 404


class InvalidPhaseError(ClientRequestError):
    """The fsadmin pod exists but is not ``Running``; the message is its phase."""

    error = "invalid_phase"
    status_code = 404


class ServerOperationError(ClientRequestError):
    """A server-side failure already reported (logged, alerted), answered in the error shape.

    api.md 2.4: some routes turn their failure into a 500 with a type code
    instead of the plain-text 500 of an uncaught error.
    """

    status_code = 500


class DeleteFailedError(ServerOperationError):
    """Deleting a lab failed for a reason other than an unknown user or a conflict."""

    error = "delete_failed"

    def __init__(self, message: str = "Failed to delete lab") -> None:
        super().__init__(message)


class FileServerCreateFailedError(ServerOperationError):
    """Creating a user's file server failed or timed out."""

    error = "file_server_create_failed"

    def __init__(self, cause: str) -> None:
        super().__init__(f"Failed to create file server: {cause}")


class FileServerDeleteFailedError(ServerOperationError):
    """Deleting a user's file server failed for a reason other than an unknown user."""

    error = "file_server_delete_failed"

    def __init__(self, cause: str) -> None:
        super().__init__(f"Failed to delete file server: {cause}")


FOREIGN_ERRORS: Mapping[type[Exception], type[ClientRequestError]] = {
    UnknownImageError: UnknownImageRequestError,
    InvalidDockerReferenceError: InvalidDockerReferenceRequestError,
    GafaelfawrInvalidTokenError: InvalidTokenError,
}
"""Errors of lower layers the API answers as client errors, and the class that renders each.

Each class here is built from the message alone (``mapped(str(exc))``).
"""


def client_error(exc: Exception, *, location: Location | None = None) -> ClientRequestError:
    """The client error an exception of a lower layer stands for, tied to ``location``.

    The create route uses it to attach ``["body", "options", <image attr>]``
    to an image error (``raise client_error(exc, location=...) from exc``);
    without a location the handler maps the raw exception itself. Raises
    TypeError for an exception with no mapping (a bug, not a client error).
    """
    if isinstance(exc, ClientRequestError):
        if location is not None:
            exc.location = tuple(location)
        return exc
    for kind, mapped in FOREIGN_ERRORS.items():
        if isinstance(exc, kind):
            error = mapped(str(exc))
            error.location = tuple(location) if location is not None else None
            return error
    raise TypeError(f"{type(exc).__name__} is not a client request error")


class RequestValidationError(NubladoError):
    """The request does not match what the route declares: FastAPI's 422 (api.md 2.3).

    ``errors`` are already in FastAPI's shape (``type``, ``loc``, ``msg``,
    ``input`` and maybe ``ctx``), in the order FastAPI reports them.
    """

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(f"{len(errors)} validation error(s)")
        self.errors = [dict(error) for error in errors]


def _jsonable_fallback(value: Any) -> Any:
    # FastAPI's jsonable_encoder turns an object it cannot serialise into
    # its attribute dict: a ValueError in ``ctx.error`` becomes {}.
    if isinstance(value, BaseException):
        return jsonable(vars(value))
    return str(value)


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data, the way FastAPI encodes validation errors."""
    try:
        return to_jsonable_python(value, fallback=_jsonable_fallback)
    except PydanticSerializationError:
        return str(value)


def validation_error_items(exc: pydantic.ValidationError, prefix: Location) -> list[dict[str, Any]]:
    """A pydantic error as FastAPI reports it: ``loc`` under ``prefix``, no ``url``."""
    items: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "type": error["type"],
            "loc": [*prefix, *error["loc"]],
            "msg": error["msg"],
            "input": jsonable(error["input"]),
        }
        if "ctx" in error:
            item["ctx"] = jsonable(error["ctx"])
        items.append(item)
    return items


def missing_error(location: Location) -> dict[str, Any]:
    """FastAPI's error for a required parameter that is absent (a header, the body)."""
    return {"type": "missing", "loc": list(location), "msg": "Field required", "input": None}


# Handlers


async def _client_request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientRequestError)
    if isinstance(exc, ServerOperationError):
        _log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return exc.to_response()


async def _foreign_error(request: Request, exc: Exception) -> Response:
    return client_error(exc).to_response()


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": exc.errors}, status_code=422)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # FastAPI's body for Starlette's own errors; statuses that carry no body stay empty.
    if exc.status_code in (204, 205, 304) or exc.status_code < 200:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


Alert = Callable[[Request, Exception], Awaitable[None]]
"""Reports an uncaught error beyond the log (upstream: a Slack message)."""


def _uncaught_error_handler(alert: Alert | None) -> Callable[[Request, Exception], Any]:
    async def uncaught_error(request: Request, exc: Exception) -> Response:
        _log.error("Uncaught exception in %s %s", request.method, request.url.path, exc_info=exc)
        if alert is not None:
            try:
                await alert(request, exc)
            except Exception:
                _log.exception("Could not send the alert for an uncaught exception")
        return PlainTextResponse("Internal Server Error", status_code=500)

    return uncaught_error


def exception_handlers(*, alert: Alert | None = None) -> dict[Any, Any]:
    """Starlette's ``exception_handlers`` for the whole app (api.md 2.1-2.6).

    The ``Exception`` handler runs in Starlette's outermost middleware, which
    re-raises after answering so that the server logs the traceback too.
    ``alert`` is also told of each uncaught error (2.5: Slack, when configured);
    an alert that fails is logged and never changes the response.
    """
    handlers: dict[Any, Any] = {
        ClientRequestError: _client_request_error,
        RequestValidationError: _validation_error,
        HTTPException: _http_exception,
        Exception: _uncaught_error_handler(alert),
    }
    handlers.update(dict.fromkeys(FOREIGN_ERRORS, _foreign_error))
    return handlers
