"""Tell a Slack channel that a purger run failed.

The purger runs unattended as a CronJob, so a failure nobody reads in the pod
log is a failure nobody sees. When ``NUBLADO_ALERT_HOOK`` names a Slack
incoming webhook, every failed run posts one message there. Posting is best
effort: a Slack outage is logged and never hides the purger's own error.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from .purger import PurgeFailedError

__all__ = ["ALERT_HOOK_ENV_VAR", "APP_NAME", "build_alert", "post_alert"]

ALERT_HOOK_ENV_VAR = "NUBLADO_ALERT_HOOK"
"""Environment variable holding the Slack webhook URL (a secret)."""

APP_NAME = "Nublado File Purger"
"""Application name shown in the alert."""

_MAX_TEXT = 2900
"""Slack refuses section texts over 3000 characters."""


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def build_alert(exc: BaseException, *, now: datetime | None = None) -> dict[str, Any]:
    """The Slack message (Block Kit) for a failed run."""
    now = now or datetime.now(tz=UTC)
    message = f"Error in {APP_NAME}: {exc}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(message)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Exception type*\n{type(exc).__name__}"},
                {"type": "mrkdwn", "text": f"*Failed at*\n{now:%Y-%m-%d %H:%M:%S}"},
            ],
        },
    ]
    if isinstance(exc, PurgeFailedError):
        details = _truncate(exc.details())
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Failed Files*\n{details}"}}
        )
    blocks.append({"type": "divider"})
    return {"text": _truncate(message), "blocks": blocks}


def post_alert(hook: str, exc: BaseException, *, logger: logging.Logger) -> None:
    """Post the alert for ``exc`` to ``hook``; log, never raise, if that fails."""
    import httpx  # only a failing run with a hook configured pays for the import

    try:
        response = httpx.post(hook, json=build_alert(exc), timeout=10.0)
        response.raise_for_status()
    except Exception as error:
        # Anything at all (a malformed hook URL raises InvalidURL, not an
        # HTTPError): the alert must never hide the real failure or change the
        # exit status.
        logger.warning(f"Could not post alert to Slack: {type(error).__name__}: {error}")
