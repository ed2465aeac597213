"""Where the controller reports failures nobody is waiting for (api.md 11).

A spawn runs after its 201 was sent; when it fails, the user sees the
``failed`` event, but operators should hear of it too. Services report
through an `Alerts`; production sends them to a Slack incoming webhook when
one is configured (`SlackAlerts`), otherwise they are only logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from .kube.errors import KubernetesError

if TYPE_CHECKING:
    from starlette.requests import Request

    from .config import Config

__all__ = [
    "SLACK_TIMEOUT",
    "Alerts",
    "NoAlerts",
    "SlackAlerts",
    "alerts_from_config",
    "route_alert",
    "slack_message",
]

_log = logging.getLogger(__name__)

SLACK_TIMEOUT = 10.0
"""Seconds one post to the webhook may take, connection and answer included."""

# Slack refuses a message whose section text is over 3,000 characters, or a
# field over 2,000; the whole post fails then, so long text is cut.
_BLOCK_LIMIT = 3000
_FIELD_LIMIT = 2000
_TRUNCATED = "\n... truncated ..."


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


def _escape(text: str) -> str:
    """Slack mrkdwn's three control characters (``&``, ``<``, ``>``) as entities."""
    return text.strip().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut_end(text: str, limit: int) -> str:
    text = _escape(text)
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _cut_start(text: str, limit: int) -> str:
    """Keep the end: of an error text or a traceback, the last lines say the most."""
    text = _escape(text)
    return text if len(text) <= limit else "... truncated ...\n" + text[-(limit - 18) :]


def _text(heading: str, text: str, limit: int) -> dict[str, Any]:
    head = f"*{heading}*\n"
    return {"type": "mrkdwn", "text": head + _cut_end(text, limit - len(head)), "verbatim": True}


def _code(heading: str, code: str) -> dict[str, Any]:
    head = f"*{heading}*\n"
    body = _cut_start(code, _BLOCK_LIMIT - len(head) - 8)
    return {"type": "mrkdwn", "text": f"{head}```\n{body}\n```", "verbatim": True}


def _failed_at(now: datetime) -> str:
    """UTC, to the millisecond, without a zone suffix (as upstream's alerts show it)."""
    return now.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")


def _kubernetes_object(error: KubernetesError) -> str | None:
    """``<Kind> <namespace>/<name>`` of the object a Kubernetes error is about, if known.

    Our errors may carry ``kind``, ``namespace`` and ``name`` attributes; else
    the Status ``details`` name the object (by its resource, ``pods``).
    """
    kind = getattr(error, "kind", None) or error.details.get("kind")
    name = getattr(error, "name", None) or error.details.get("name")
    namespace = getattr(error, "namespace", None)
    if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
        return None
    return (
        f"{kind} {namespace}/{name}"
        if isinstance(namespace, str) and namespace
        else f"{kind} {name}"
    )


def slack_message(
    summary: str,
    *,
    application: str = "Nublado",
    user: str | None = None,
    error: BaseException | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Block Kit message for one failure (api.md 11).

    A section ``Error in <application>: <summary>``; fields ``Exception
    type``, ``Failed at`` and ``User`` (and ``Status`` for a Kubernetes
    error); for a Kubernetes error the ``Object`` it concerns; the error's
    text as an ``Error`` code block; a divider. Every text is marked
    verbatim, so a username or message cannot mention a channel.
    """
    now = now or datetime.now(tz=UTC)
    text = _cut_end(f"Error in {application}: {summary}", _BLOCK_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
    ]
    fields = []
    if error is not None:
        fields.append(_text("Exception type", type(error).__name__, _FIELD_LIMIT))
    fields.append(_text("Failed at", _failed_at(now), _FIELD_LIMIT))
    if user:
        fields.append(_text("User", user, _FIELD_LIMIT))
    sections: list[dict[str, Any]] = []
    if isinstance(error, KubernetesError):
        if error.status:
            fields.append(_text("Status", str(error.status), _FIELD_LIMIT))
        target = _kubernetes_object(error)
        if target is not None:
            sections.append(_text("Object", target, _BLOCK_LIMIT))
        detail = f"{error.reason}: {error.message}" if error.reason else error.message
        if detail:
            sections.append(_code("Error", detail))
    elif error is not None and str(error):
        sections.append(_code("Error", str(error)))
    blocks.append({"type": "section", "fields": fields})
    blocks.extend({"type": "section", "text": section} for section in sections)
    blocks.append({"type": "divider"})
    return {"blocks": blocks}


class SlackAlerts:
    """Posts each failure to a Slack incoming webhook (``NUBLADO_SLACK_WEBHOOK``).

    ``http`` is the app's shared client. A post is bounded by ``timeout``
    seconds in all; a webhook that is slow, down, refuses the message or is
    not even a valid URL is logged and otherwise ignored: an alert must never
    fail or hold up the work that reports it.
    """

    def __init__(
        self,
        webhook: str,
        http: httpx.AsyncClient,
        *,
        application: str = "Nublado",
        timeout: float = SLACK_TIMEOUT,
    ) -> None:
        self._webhook = webhook
        self._http = http
        self._application = application
        self._timeout = timeout

    async def report(
        self, summary: str, *, user: str | None = None, error: BaseException | None = None
    ) -> None:
        """Post one message; never raises (cancellation excepted)."""
        message = slack_message(summary, application=self._application, user=user, error=error)
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.post(self._webhook, json=message, timeout=self._timeout)
                response.raise_for_status()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            _log.warning("Could not post alert to Slack: no answer within %gs", self._timeout)
        except Exception as exc:
            # The webhook URL is a secret: name the failure, never the URL.
            reason = (
                f"status {exc.response.status_code}"
                if isinstance(exc, httpx.HTTPStatusError)
                else type(exc).__name__
            )
            _log.warning("Could not post alert to Slack: %s", reason)


def alerts_from_config(config: Config, http: httpx.AsyncClient) -> Alerts:
    """`SlackAlerts` when ``NUBLADO_SLACK_WEBHOOK`` is set, else `NoAlerts`."""
    if config.slack_webhook is None:
        return NoAlerts()
    webhook = config.slack_webhook.get_secret_value()
    return SlackAlerts(webhook, http, application=config.name)


def route_alert(alerts: Alerts) -> Callable[[Request, Exception], Awaitable[None]]:
    """The ``alert=`` of `nublado.api.app.create_app`: an uncaught route error to ``alerts``.

    The summary names the request (method and path, no query: it could hold
    secrets); the user is the ingress's ``X-Auth-Request-User`` when present.
    """

    async def alert(request: Request, exc: Exception) -> None:
        summary = f"Uncaught exception in {request.method} {request.url.path}"
        user = request.headers.get("X-Auth-Request-User")
        await alerts.report(summary, user=user, error=exc)

    return alert
