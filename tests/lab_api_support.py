"""Lab services for the API tests: a double with fixed answers, and the real one on the sandbox.

The routes' contract with the service is its public interface (PLAN-LABS.md):
``running``, ``state``, ``create``, ``delete`` and ``events``, the latter
raising before it returns its iterator. This double answers from what a test
puts in it, so each route test pins the HTTP side alone; the service's own
behaviour is tested with the real service on the sandbox, which
`serve_reference_labs` starts for the end-to-end and schemathesis tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from reference_cases import INPUTS, reference_discovery

from nublado.api.errors import UnknownUserError
from nublado.config import Config
from nublado.kube.client import KubernetesClient
from nublado.models.lab import LabSpecification, LabState
from nublado.models.user import UserInfo
from nublado.render.engine import Renderer
from nublado.services.images import ImageService
from nublado.services.labs import LabService, SpawnEvent

CONTROLLER_NAMESPACE = "nublado"


@dataclass
class LabServiceDouble:
    """Answers from ``states`` and ``streams``; ``fail_with`` makes create or delete raise."""

    states: dict[str, LabState] = field(default_factory=dict)
    streams: dict[str, list[SpawnEvent]] = field(default_factory=dict)
    fail_with: Exception | None = None
    hold: asyncio.Event | None = None
    """When set, streams stop after their first event until the event is set."""

    created: list[tuple[UserInfo, str, LabSpecification]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    closed: int = 0
    """Event iterators closed, whether finished or abandoned."""

    def running(self) -> list[str]:
        return [name for name, state in self.states.items() if state.status == "running"]

    def state(self, username: str) -> LabState | None:
        return self.states.get(username)

    async def create(self, user: UserInfo, token: str, spec: LabSpecification) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.created.append((user, token, spec))

    async def delete(self, username: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if username not in self.states:
            raise UnknownUserError.for_path(username)
        self.deleted.append(username)
        del self.states[username]

    async def events(self, username: str) -> AsyncIterator[SpawnEvent]:
        if username not in self.streams:
            raise UnknownUserError.for_path(username)
        return self._replay(list(self.streams[username]))

    async def _replay(self, events: list[SpawnEvent]) -> AsyncIterator[SpawnEvent]:
        try:
            for index, event in enumerate(events):
                if index == 1 and self.hold is not None:
                    await self.hold.wait()
                yield event
        finally:
            self.closed += 1

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def rachel_state(reference: dict[str, Any], user: dict[str, Any]) -> LabState:
    """The reference lab-status.json as a LabState owned by Gafaelfawr's rachel."""
    return LabState.model_validate({**reference, "user": user})


async def serve_reference_labs(
    config: Config, images: ImageService, client: KubernetesClient
) -> LabService:
    """A started LabService on the sandbox, with the reference source Secrets in place."""
    await client.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CONTROLLER_NAMESPACE}}
    )
    for name, values in json.loads((INPUTS / "secrets.json").read_text()).items():
        secret: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": CONTROLLER_NAMESPACE},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
        if ".dockerconfigjson" in values:
            secret["type"] = "kubernetes.io/dockerconfigjson"
        await client.create(secret)

    async def discovery() -> dict[str, Any]:
        return reference_discovery()

    await images.refresh()
    labs = LabService(
        config,
        client,
        images,
        Renderer(config.template_dirs),
        namespace=CONTROLLER_NAMESPACE,
        identity="replica-a",
        discovery=discovery,
    )
    await labs.start()
    return labs
