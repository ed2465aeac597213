"""The lab routes of api.md sections 3-4: list, status, create, delete, events, user-status.

Each handler checks who is calling (auth.py modes A-C, or nothing for the
hub's routes behind their ingress), asks the `LabService`, and renders the
answer; errors are raised and rendered once by errors.py. Status and list
answer from the service's cache (api.md 12.7), never from Kubernetes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import Message, Send

from ..config import Config
from ..gafaelfawr import UserInfoSource
from ..models.lab import LabSpecification
from ..services.labs import LabService, SpawnEvent
from .app import api_route, prefixed
from .auth import (
    USER_AUTH_HEADERS,
    AuthenticatedUser,
    authenticate_user,
    check_path_user,
    missing_header_errors,
    require_path_user,
    require_username,
)
from .errors import UnknownUserError
from .validation import RequestInput

__all__ = ["PING_INTERVAL", "EventStream", "event_frames", "lab_routes"]

PING_INTERVAL = 15.0
"""Seconds between keep-alive comments on an open event stream (api.md 6.1)."""

LAB_ROUTE = "lab"
"""Name of ``GET .../labs/{username}``, the target of create's ``Location``."""


def _ping() -> ServerSentEvent:
    """The keep-alive: a comment ``: ping - <UTC timestamp>``, ignored by SSE clients."""
    return ServerSentEvent(comment=f"ping - {datetime.now(UTC)}")


class EventStream(EventSourceResponse):
    """sse-starlette's response, sending without the work its unused options need.

    Two changes, neither visible to a client:

    * Without a ``send_timeout`` (ours has none), a send is not wrapped in a
      cancel scope that can never fire: the scope cost more CPU than the send.
    * The lock that keeps a ping from interleaving with the closing send is
      taken without yielding to the event loop when no ping holds it (it still
      checks for cancellation). The closing chunk then follows the terminal
      event in the same pass of the loop, so the coalescing transport
      (`nublado.httpwire`) sends both in one write.

    Disconnects, pings, shutdown and the order of frames are sse-starlette's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._send_lock = anyio.Lock(fast_acquire=True)

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is not None:
            await super()._send_with_timeout(send, message)
            return
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True  # as sse-starlette: no further send is tried
            raise


async def event_frames(events: AsyncIterator[SpawnEvent]) -> AsyncIterator[ServerSentEvent]:
    """The service's events as SSE frames: ``event`` and ``data`` only, no id or retry.

    When the client goes away mid-stream, the service's iterator is closed
    at once (not whenever it is collected), so it stops waiting for events.
    """
    try:
        async for event in events:
            yield ServerSentEvent(data=event.data(), event=event.event)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def lab_routes(
    config: Config, labs: LabService, users: UserInfoSource, *, ping: float = PING_INTERVAL
) -> list[BaseRoute]:
    """The lab routes under the configured prefix, wired to ``labs`` and ``users``.

    ``ping`` is the keep-alive interval of the event stream (tests shorten it).
    """

    async def list_labs(request: Request) -> JSONResponse:
        """Users whose lab is running, in the order the controller first saw them."""
        return JSONResponse(labs.running())

    async def get_lab(request: Request) -> JSONResponse:
        """One user's lab state from the cache; 404 ``unknown_user`` at the path."""
        username: str = request.path_params["username"]
        state = labs.state(username)
        if state is None:
            raise UnknownUserError.for_path(username)
        return JSONResponse(state.to_json())

    async def create_lab(request: Request) -> JSONResponse:
        """Start a spawn, in FastAPI's checking order (api.md 1.4, 4.6 step 1).

        Unparsable JSON first; then the auth headers, whose absence is
        reported with the body's errors in one 422; then Gafaelfawr (401,
        403); then the body model; then the path user; then the service.
        """
        username: str = request.path_params["username"]
        data = await RequestInput.read(request)
        missing = missing_header_errors(request, *USER_AUTH_HEADERS)
        user: AuthenticatedUser | None = None
        if missing:
            data.errors.extend(missing)
        else:
            user = await authenticate_user(request, users)
        spec = data.body(LabSpecification)
        data.check()
        assert user is not None
        assert spec is not None
        check_path_user(user, username)
        await labs.create(user.info, user.token, spec)
        # What request.url_for gives, without trying every route of the app before this one.
        location = lab_route.url_path_for(LAB_ROUTE, username=username).make_absolute_url(
            request.base_url
        )
        return JSONResponse(None, status_code=201, headers={"Location": str(location)})

    async def delete_lab(request: Request) -> Response:
        """Delete the lab and wait until it is gone (api.md 4.7): 204, empty body."""
        await labs.delete(request.path_params["username"])
        return Response(status_code=204)

    async def lab_events(request: Request) -> EventStream:
        """The lab's operation events as SSE; a missing record is a 404 before the stream."""
        username: str = request.path_params["username"]
        require_path_user(request, username)
        events = await labs.events(username)
        return EventStream(event_frames(events), ping=ping, ping_message_factory=_ping)

    async def user_status(request: Request) -> JSONResponse:
        """The caller's own lab state; 404 ``unknown_user`` without ``loc``."""
        username = require_username(request)
        state = labs.state(username)
        if state is None:
            raise UnknownUserError(f"Unknown user {username}")
        return JSONResponse(state.to_json())

    labs_path = prefixed(config, "/spawner/v1/labs")
    lab_path = f"{labs_path}/{{username}}"
    lab_route = api_route(lab_path, get_lab, name=LAB_ROUTE)
    return [
        api_route(labs_path, list_labs, name="labs"),
        lab_route,
        api_route(lab_path, delete_lab, methods=("DELETE",), name="delete-lab"),
        api_route(f"{lab_path}/create", create_lab, methods=("POST",), name="create-lab"),
        api_route(f"{lab_path}/events", lab_events, name="lab-events"),
        api_route(prefixed(config, "/spawner/v1/user-status"), user_status, name="user-status"),
    ]
