"""The fsadmin routes: ``GET``, ``POST`` and ``DELETE PREFIX/fsadmin/v1/service`` (api.md 4.14).

No authentication in the controller (mode D of api.md 1.4): the admin
ingress's ``exec:admin`` scope is the only check. Bodies:

* ``GET``: 200 ``{"start_time": "...Z"}``; 404 ``not_found`` or ``invalid_phase``.
* ``POST`` with exactly ``{"start": true}`` (extra keys ignored, anything
  else FastAPI's 422): the same answers, after starting the pod if needed.
* ``DELETE``: 204, also when there was nothing to delete.

Timeouts and Kubernetes failures escape to the app's plain 500.
"""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ..config import Config
from ..models.fsadmin import FSAdminCommand, FSAdminStatus
from ..services.fsadmin import FSAdminService
from .app import api_route, prefixed
from .validation import parse_body

__all__ = ["FSADMIN_PATH", "fsadmin_routes"]

FSADMIN_PATH = "/fsadmin/v1/service"
"""The routes' path under the configured prefix."""


def _status(start_time: datetime) -> JSONResponse:
    return JSONResponse(FSAdminStatus(start_time=start_time).model_dump(mode="json"))


def fsadmin_routes(config: Config, fsadmin: FSAdminService) -> list[BaseRoute]:
    """The three fsadmin routes under the configured prefix, wired to ``fsadmin``."""

    async def get_fsadmin(request: Request) -> JSONResponse:
        """When the running fsadmin pod started; 404 when absent or not Running."""
        return _status(await fsadmin.status())

    async def start_fsadmin(request: Request) -> JSONResponse:
        """Start fsadmin unless it runs (body exactly ``{"start": true}``) and answer its status.

        The body is checked before anything touches the cluster: a bad body
        never creates the pod.
        """
        await parse_body(request, FSAdminCommand)
        return _status(await fsadmin.start())

    async def delete_fsadmin(request: Request) -> Response:
        """Delete the pod and its PVCs, waiting until they are gone; 204 even when absent."""
        await fsadmin.delete()
        return Response(status_code=204)

    path = prefixed(config, FSADMIN_PATH)
    return [
        api_route(path, get_fsadmin, name="fsadmin"),
        api_route(path, start_fsadmin, methods=("POST",), name="start-fsadmin"),
        api_route(path, delete_fsadmin, methods=("DELETE",), name="delete-fsadmin"),
    ]
