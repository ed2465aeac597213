"""``GET PREFIX/spawner/v1/lab-form/{username}``: the spawner's options form (api.md 4.3).

Mode A authentication (Gafaelfawr's record of the caller, whose quota limits
the sizes offered), the path-user check, then the HTML built from the image
service's menu and dropdown through templates/forms/.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute

from ..config import Config
from ..gafaelfawr import UserInfoSource
from ..render.engine import Renderer
from ..render.form import render_lab_form
from ..services.images import ImageService
from .app import api_route, prefixed
from .auth import authenticate_user, check_path_user

__all__ = ["form_routes"]


def form_routes(
    config: Config, images: ImageService, users: UserInfoSource, renderer: Renderer
) -> list[BaseRoute]:
    """The lab-form route, wired to its user source, images and renderer."""

    async def lab_form(request: Request) -> HTMLResponse:
        """The form for the caller (403 for another user's path)."""
        user = await authenticate_user(request, users)
        check_path_user(user, request.path_params["username"])
        page = render_lab_form(renderer, config, user.info, images.menu(), images.dropdown())
        return HTMLResponse(page)

    path = prefixed(config, "/spawner/v1/lab-form/{username}")
    return [api_route(path, lab_form, name="lab-form")]
