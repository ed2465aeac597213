"""Where the controller reports failures nobody is waiting for (api.md 11).

A spawn runs after its 201 was sent; when it fails, the user sees the
``failed`` event, but operators should hear of it too. Services report
through an `Alerts`; production sends them to a Slack incoming webhook when
one is configured (`SlackAlerts`), otherwise they are only logged.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Alerts", "NoAlerts"]


class Alerts(Protocol):
    """Receives failures of background work, once each."""

    async def report(
        self, summary: str, *, user: str | None = None, error: BaseException | None = None
    ) -> None:
        """Tell operators; never raises (a dead webhook must not break a spawn)."""


class NoAlerts:
    """No alert channel configured: the failure is in the logs only."""

    async def report(
        self, summary: str, *, user: str | None = None, error: BaseException | None = None
    ) -> None:
        """Nothing to do."""
