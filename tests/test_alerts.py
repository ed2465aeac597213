"""Slack alerts (api.md 11): message blocks, the webhook call, never raising, bounded in time."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr

from nublado.alerts import (
    NoAlerts,
    SlackAlerts,
    alerts_from_config,
    route_alert,
    slack_message,
)
from nublado.config import Config
from nublado.config.loader import load_config
from nublado.kube.errors import KubernetesError, error_from_status

WEBHOOK = "https://hooks.slack.test/services/T0/B0/secret"
NOW = datetime(2077, 10, 23, 12, 34, 56, 789000, tzinfo=UTC)
EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "config.yaml"


def text(heading: str, body: str) -> dict[str, object]:
    return {"type": "mrkdwn", "text": f"*{heading}*\n{body}", "verbatim": True}


def section(summary: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": summary, "verbatim": True}}


@pytest.fixture
def slack() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def test_kubernetes_error_message_has_status_object_and_error_block() -> None:
    error = KubernetesError(
        'pods "rachel-nb" is forbidden: exceeded quota',
        status=403,
        reason="Forbidden",
        details={"name": "rachel-nb", "kind": "pods"},
    )
    error.kind = "Pod"  # type: ignore[attr-defined]
    error.namespace = "userlabs-rachel"  # type: ignore[attr-defined]

    message = slack_message("Lab spawn failed", user="rachel", error=error, now=NOW)

    assert message == {
        "blocks": [
            section("Error in Nublado: Lab spawn failed"),
            {
                "type": "section",
                "fields": [
                    text("Exception type", "KubernetesError"),
                    text("Failed at", "2077-10-23 12:34:56.789"),
                    text("User", "rachel"),
                    text("Status", "403"),
                ],
            },
            {"type": "section", "text": text("Object", "Pod userlabs-rachel/rachel-nb")},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": '*Error*\n```\nForbidden: pods "rachel-nb" is forbidden:'
                    " exceeded quota\n```",
                    "verbatim": True,
                },
            },
            {"type": "divider"},
        ]
    }


def test_kubernetes_error_from_a_status_names_the_object_from_its_details() -> None:
    error = error_from_status(
        409,
        {
            "kind": "Status",
            "code": 409,
            "reason": "AlreadyExists",
            "message": 'namespaces "userlabs-rachel" already exists',
            "details": {"name": "userlabs-rachel", "kind": "namespaces"},
        },
    )

    blocks = slack_message("Lab spawn failed", user="rachel", error=error, now=NOW)["blocks"]

    assert blocks[2] == {"type": "section", "text": text("Object", "namespaces userlabs-rachel")}
    assert blocks[1]["fields"][0] == text("Exception type", "AlreadyExistsError")
    assert blocks[1]["fields"][3] == text("Status", "409")


def test_other_errors_have_their_text_and_no_status() -> None:
    message = slack_message(
        "Lab spawn timed out", application="RSP", error=TimeoutError("after 10.0s"), now=NOW
    )

    assert message == {
        "blocks": [
            section("Error in RSP: Lab spawn timed out"),
            {
                "type": "section",
                "fields": [
                    text("Exception type", "TimeoutError"),
                    text("Failed at", "2077-10-23 12:34:56.789"),
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Error*\n```\nafter 10.0s\n```",
                    "verbatim": True,
                },
            },
            {"type": "divider"},
        ]
    }


def test_no_error_gives_summary_time_and_user_only() -> None:
    message = slack_message("Reconcile found orphans", user="ada", now=NOW)

    assert message["blocks"][1] == {
        "type": "section",
        "fields": [text("Failed at", "2077-10-23 12:34:56.789"), text("User", "ada")],
    }
    assert message["blocks"][2] == {"type": "divider"}


def test_mrkdwn_control_characters_are_escaped_and_long_text_cut() -> None:
    error = RuntimeError("<!channel> & " + "x" * 5000)

    message = slack_message("<@U123> broke", user="a<b", error=error, now=NOW)

    blocks = message["blocks"]
    assert blocks[0]["text"]["text"] == "Error in Nublado: &lt;@U123&gt; broke"
    assert blocks[1]["fields"][2] == text("User", "a&lt;b")
    code = blocks[2]["text"]["text"]
    assert len(code) <= 3000
    assert code.startswith("*Error*\n```\n... truncated ...\n")
    assert code.endswith("x\n```")
    assert "<!channel>" not in json.dumps(message)


async def test_report_posts_the_message_to_the_webhook(
    slack: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = slack.post(WEBHOOK).respond(200, text="ok")
    alerts = SlackAlerts(WEBHOOK, http)

    await alerts.report("Lab spawn failed", user="rachel", error=RuntimeError("boom"))

    assert route.call_count == 1
    body = json.loads(route.calls[0].request.content)
    assert body["blocks"][0] == section("Error in Nublado: Lab spawn failed")
    assert body["blocks"][1]["fields"][2] == text("User", "rachel")
    assert body["blocks"][2]["text"]["text"] == "*Error*\n```\nboom\n```"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="no"),
        httpx.Response(404, text="no_service"),
        httpx.ConnectError("refused"),
    ],
)
async def test_a_failing_webhook_is_logged_never_raised(
    slack: respx.MockRouter,
    http: httpx.AsyncClient,
    answer: httpx.Response | Exception,
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = slack.post(WEBHOOK)
    if isinstance(answer, Exception):
        route.side_effect = answer
    else:
        route.return_value = answer
    alerts = SlackAlerts(WEBHOOK, http)

    with caplog.at_level(logging.WARNING, logger="nublado.alerts"):
        await alerts.report("Lab spawn failed", user="rachel")

    assert route.call_count == 1
    [record] = [r for r in caplog.records if r.name == "nublado.alerts"]
    assert record.getMessage().startswith("Could not post alert to Slack: ")
    assert "secret" not in record.getMessage()  # the webhook URL is a secret


async def test_an_invalid_webhook_url_is_logged_never_raised(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = SlackAlerts("not a url", http)

    with caplog.at_level(logging.WARNING, logger="nublado.alerts"):
        await alerts.report("Lab spawn failed")

    assert any("Could not post alert" in r.getMessage() for r in caplog.records)


async def test_a_webhook_that_never_answers_costs_at_most_the_timeout(
    slack: respx.MockRouter, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    slack.post(WEBHOOK).mock(side_effect=hang)
    alerts = SlackAlerts(WEBHOOK, http, timeout=0.2)

    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="nublado.alerts"):
        await alerts.report("Lab spawn failed")

    assert time.monotonic() - start < 2
    assert any("no answer within 0.2s" in r.getMessage() for r in caplog.records)


def config_with(webhook: str | None) -> Config:
    config = load_config(EXAMPLE_CONFIG, environ={})
    return config.model_copy(
        update={"slack_webhook": SecretStr(webhook) if webhook else None, "name": "RSP"}
    )


async def test_alerts_from_config_is_slack_only_with_a_webhook(
    slack: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    route = slack.post(WEBHOOK).respond(200)

    assert isinstance(alerts_from_config(config_with(None), http), NoAlerts)
    alerts = alerts_from_config(config_with(WEBHOOK), http)
    assert isinstance(alerts, SlackAlerts)
    await alerts.report("x")
    assert json.loads(route.calls[0].request.content)["blocks"][0] == section("Error in RSP: x")


def test_the_webhook_comes_from_the_environment() -> None:
    config = load_config(EXAMPLE_CONFIG, environ={"NUBLADO_SLACK_WEBHOOK": WEBHOOK})

    assert config.slack_webhook is not None
    assert config.slack_webhook.get_secret_value() == WEBHOOK


async def test_route_alert_names_request_and_user_without_the_query() -> None:
    reports: list[tuple[str, str | None, BaseException | None]] = []

    class Recorder:
        async def report(
            self, summary: str, *, user: str | None = None, error: BaseException | None = None
        ) -> None:
            reports.append((summary, user, error))

    from starlette.requests import Request

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/nublado/spawner/v1/labs/rachel/create",
        "query_string": b"token=secret",
        "headers": [(b"x-auth-request-user", b"rachel")],
    }
    error = RuntimeError("boom")

    await route_alert(Recorder())(Request(scope), error)

    assert reports == [
        ("Uncaught exception in POST /nublado/spawner/v1/labs/rachel/create", "rachel", error)
    ]
