"""The file-server routes (api.md 4.12, 4.13): ``GET FILES`` and the admin routes.

``GET FILES`` (exactly that path: a user's own ``FILES/<user>`` is routed
to their file server by its ingress) authenticates the caller fully (mode
A), creates their file server synchronously and answers an HTML page
saying where it is. The admin routes under ``PREFIX/fileserver/v1`` trust
their ingress (mode D), except ``user-status`` (mode C). With file servers
disabled, every one of them answers 404 ``not_supported`` (DECISIONS API
Fixed item 6), ``GET FILES`` after authenticating the caller as upstream.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute

from ..config import Config
from ..gafaelfawr import UserInfoSource
from ..services.fileservers import FileServerService
from .app import api_route, prefixed
from .auth import authenticate_user, require_username
from .errors import NotSupportedError, UnknownUserError

__all__ = ["FILESERVER_TEMPLATE", "WEBDAV_GUIDE", "fileserver_routes"]

FILESERVER_TEMPLATE = "forms/fileserver.html"
"""The page ``GET FILES`` answers once the server runs."""

WEBDAV_GUIDE = "https://rsp.lsst.io/guides/webdav/index.html"
"""Where the page sends users for how to use WebDAV."""


def fileserver_routes(
    config: Config, fileservers: FileServerService, users: UserInfoSource
) -> list[BaseRoute]:
    """``GET FILES`` and the ``PREFIX/fileserver/v1`` routes, wired to the service."""
    files_path = config.fileserver.path_prefix or "/"
    base_url = config.base_url.rstrip("/")

    def check_enabled() -> None:
        if not config.fileserver.enabled:
            raise NotSupportedError

    def status(username: str) -> JSONResponse:
        if not fileservers.is_running(username):
            raise UnknownUserError("No file server running")
        return JSONResponse({"running": True})

    async def user_files(request: Request) -> HTMLResponse:
        """Create the caller's file server (or find it running) and say where it is."""
        user = await authenticate_user(request, users)
        check_enabled()
        await fileservers.ensure(user.info)
        url = f"{base_url}{config.fileserver.path_prefix}/{user.username}"
        page = fileservers.renderer.render_html(
            FILESERVER_TEMPLATE, {"page": {"url": url, "guide": WEBDAV_GUIDE}}
        )
        return HTMLResponse(page)

    async def list_users(request: Request) -> JSONResponse:
        """Users whose file server is running."""
        check_enabled()
        return JSONResponse(fileservers.running())

    async def get_user(request: Request) -> JSONResponse:
        """``{"running": true}``, or 404 ``No file server running``."""
        check_enabled()
        return status(request.path_params["username"])

    async def delete_user(request: Request) -> Response:
        """Delete the user's file server and wait until it is gone: 204."""
        check_enabled()
        await fileservers.delete(request.path_params["username"])
        return Response(status_code=204)

    async def user_status(request: Request) -> JSONResponse:
        """The caller's own file server, as ``users/{username}``."""
        username = require_username(request)
        check_enabled()
        return status(username)

    base = prefixed(config, "/fileserver/v1")
    return [
        api_route(files_path, user_files, name="fileserver-files"),
        api_route(f"{base}/users", list_users, name="fileserver-users"),
        api_route(f"{base}/users/{{username}}", get_user, name="fileserver-user"),
        api_route(
            f"{base}/users/{{username}}",
            delete_user,
            methods=("DELETE",),
            name="fileserver-delete-user",
        ),
        api_route(f"{base}/user-status", user_status, name="fileserver-user-status"),
    ]
