"""Users' labs: create, delete, status and spawn events, with their state in the cluster.

Interface only; the implementation follows /work/wt/PLAN-LABS.md (issue #9).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..alerts import Alerts
from ..config import Config
from ..kube.client import KubernetesClient
from ..metrics import Metrics
from ..models.lab import LabSpecification, LabState
from ..models.user import UserInfo
from ..render.engine import Renderer
from .images import ImageService

__all__ = ["LabService", "SpawnEvent"]


@dataclass(frozen=True, slots=True)
class SpawnEvent:
    """One event of a lab operation's stream (api.md 6.2)."""

    event: str
    message: str
    progress: int | None = None

    def data(self) -> str:
        """The SSE ``data`` line: ``json.dumps`` defaults, progress only when set."""
        body: dict[str, Any] = {"message": self.message}
        if self.progress is not None:
            body["progress"] = self.progress
        return json.dumps(body)


class LabService:
    """Every user's lab, with state read from the cluster."""

    def __init__(
        self,
        config: Config,
        kube: KubernetesClient,
        images: ImageService,
        renderer: Renderer,
        *,
        namespace: str,
        identity: str | None = None,
        discovery: Callable[[], Awaitable[Mapping[str, Any] | None]] | None = None,
        metrics: Metrics | None = None,
        alerts: Alerts | None = None,
        lease_duration: float = 15.0,
    ) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def running(self) -> list[str]:
        raise NotImplementedError

    def state(self, username: str) -> LabState | None:
        raise NotImplementedError

    async def create(self, user: UserInfo, token: str, spec: LabSpecification) -> None:
        raise NotImplementedError

    async def delete(self, username: str) -> None:
        raise NotImplementedError

    async def events(self, username: str) -> AsyncIterator[SpawnEvent]:
        raise NotImplementedError
