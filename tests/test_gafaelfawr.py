"""The Gafaelfawr user-info client against respx: answers, failures, discovery, cache."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from nublado.config import load_config
from nublado.errors import InputError
from nublado.gafaelfawr import (
    GafaelfawrClient,
    GafaelfawrError,
    InvalidTokenError,
    TrustedUsers,
    UserInfoSource,
    gafaelfawr_url_from_discovery,
)
from nublado.models.user import UserInfo

REFERENCE = Path(__file__).parent / "data" / "reference" / "inputs"
RACHEL: dict[str, Any] = json.loads((REFERENCE / "users" / "rachel.json").read_text())
DISCOVERY: dict[str, Any] = json.loads((REFERENCE / "discovery.json").read_text())

BASE = "https://data.example.com/auth/api/v1"
"""Gafaelfawr's v1 base as the reference discovery document gives it."""

USER_INFO = f"{BASE}/user-info"
REPERTOIRE = "https://data.example.com/repertoire"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gafaelfawr(http: httpx.AsyncClient, clock: FakeClock) -> GafaelfawrClient:
    return GafaelfawrClient(http, BASE, clock=clock)


async def test_user_info_sends_the_token_and_parses_the_reference_user(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient
) -> None:
    route = mock.get(USER_INFO).respond(200, json=RACHEL)
    info = await gafaelfawr.user_info("gt-token.secret")
    assert info == UserInfo.model_validate(RACHEL)
    assert info.uid == 1101
    assert info.supplemental_groups == [1101, 2028, 2001, 2021, 2029]
    assert info.quota is not None and info.quota.notebook is not None
    assert info.quota.notebook.memory == 27
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer gt-token.secret"
    # Every call is bounded: upstream's 20 s, for each phase of the request.
    assert request.extensions["timeout"] == {
        "connect": 20.0,
        "read": 20.0,
        "write": 20.0,
        "pool": 20.0,
    }


async def test_user_info_accepts_the_full_section_8_answer(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient
) -> None:
    answer = {
        "username": "rachel",
        "name": "Rachel (?)",
        "email": "rachel@example.com",
        "uid": 1101,
        "gid": 1101,
        "groups": [{"name": "rachel", "id": 1101}, {"name": "lunatics", "id": 2028}],
        "quota": {
            "api": {"datalinker": 1000},
            "disk": {},
            "notebook": {"cpu": 9.0, "memory": 27, "spawn": True},
            "tap": {"qserv": {"concurrent": 5}},
        },
    }
    mock.get(USER_INFO).respond(200, json=answer)
    info = await gafaelfawr.user_info("token")
    assert info.email == "rachel@example.com"
    assert info.quota is not None and info.quota.notebook is not None
    assert info.quota.notebook.spawn is True


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_token_is_invalid_token(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient, status: int
) -> None:
    mock.get(USER_INFO).respond(status, json={"detail": [{"msg": "nope", "type": "x"}]})
    with pytest.raises(InvalidTokenError) as excinfo:
        await gafaelfawr.user_info("bad")
    assert str(excinfo.value) == "User token is invalid"
    assert excinfo.value.error == "invalid_token"
    assert excinfo.value.status_code == 401


@pytest.mark.parametrize("token", ["", "gt-a b", "gt-\u00e9", "gt-a\nb"])
async def test_unsendable_token_is_invalid_without_asking(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient, token: str
) -> None:
    route = mock.get(USER_INFO).respond(200, json=RACHEL)
    with pytest.raises(InvalidTokenError):
        await gafaelfawr.user_info(token)
    assert route.call_count == 0


@pytest.mark.parametrize("status", [500, 502, 404, 302])
async def test_other_statuses_are_server_errors(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient, status: int
) -> None:
    mock.get(USER_INFO).respond(status, text="oops")
    with pytest.raises(GafaelfawrError, match=f"Gafaelfawr answered {status} from {USER_INFO}"):
        await gafaelfawr.user_info("token")


@pytest.mark.parametrize(
    ("content", "content_type", "problem"),
    [
        (b'{"username": "rachel"', "application/json", "is not a user: Invalid JSON"),
        (b"<html><body>Sign in</body></html>", "text/html", "is not a user: Invalid JSON"),
        (b'["rachel"]', "application/json", "is not a user: Input should be"),
        (b'{"name": "Rachel"}', "application/json", "is not a user: username: Field required"),
        (b'{"username": "Rachel!"}', "application/json", "username: Value error, invalid"),
        (b'{"username": "rachel", "uid": "x"}', "application/json", "uid: Input should be"),
    ],
    ids=["truncated", "html", "list", "no-username", "bad-username", "bad-uid"],
)
async def test_unparsable_answers_are_server_errors(
    mock: respx.MockRouter,
    gafaelfawr: GafaelfawrClient,
    content: bytes,
    content_type: str,
    problem: str,
) -> None:
    mock.get(USER_INFO).respond(200, content=content, content_type=content_type)
    with pytest.raises(GafaelfawrError, match=problem):
        await gafaelfawr.user_info("token")


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("timed out")], ids=["conn", "read"]
)
async def test_network_failures_are_server_errors(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient, error: Exception
) -> None:
    mock.get(USER_INFO).mock(side_effect=error)
    with pytest.raises(GafaelfawrError, match=f"Cannot reach Gafaelfawr at {USER_INFO}"):
        await gafaelfawr.user_info("token")


async def test_a_dripping_gafaelfawr_is_cut_at_twice_the_timeout(
    http: httpx.AsyncClient,
) -> None:
    """A server that sends one byte at a time never trips httpx's per-read timeout."""

    async def drip(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        try:
            for _ in range(1000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = GafaelfawrClient(http, f"http://127.0.0.1:{port}/auth/api/v1", timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(GafaelfawrError, match=r"no complete answer within 0\.4s"):
            await asyncio.wait_for(client.user_info("token"), timeout=5)
    finally:
        server.close()
    assert time.monotonic() - started < 2


async def test_discovery_failure_is_shared_by_concurrent_requests(
    mock: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    async def slow_failure(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.2)
        return httpx.Response(503)

    route = mock.get("https://rep.test/discovery").mock(side_effect=slow_failure)
    client = GafaelfawrClient(http, repertoire_url="https://rep.test")
    started = time.monotonic()

    results = await asyncio.gather(
        *(client.user_info(f"token{i}") for i in range(6)), return_exceptions=True
    )

    assert all(isinstance(r, GafaelfawrError) for r in results)
    assert route.call_count == 1
    assert time.monotonic() - started < 1


async def test_a_silent_gafaelfawr_times_out_instead_of_hanging(http: httpx.AsyncClient) -> None:
    """A real socket that accepts and never answers: the call fails within the timeout."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = GafaelfawrClient(http, f"http://127.0.0.1:{port}/auth/api/v1", timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(GafaelfawrError, match="ReadTimeout"):
            await asyncio.wait_for(client.user_info("token"), timeout=5)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started < 2
    assert accepted


async def test_failures_are_not_cached(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient
) -> None:
    route = mock.get(USER_INFO)
    route.side_effect = [httpx.Response(503), httpx.Response(401), httpx.Response(200, json=RACHEL)]
    with pytest.raises(GafaelfawrError):
        await gafaelfawr.user_info("token")
    with pytest.raises(InvalidTokenError):
        await gafaelfawr.user_info("token")
    assert (await gafaelfawr.user_info("token")).username == "rachel"
    assert route.call_count == 3


# -- cache ---------------------------------------------------------------------


async def test_same_token_is_asked_once(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient
) -> None:
    route = mock.get(USER_INFO).respond(200, json=RACHEL)
    first = await gafaelfawr.user_info("token")
    second = await gafaelfawr.user_info("token")
    assert first == second
    assert route.call_count == 1


async def test_different_tokens_are_asked_separately(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient
) -> None:
    route = mock.get(USER_INFO).respond(200, json=RACHEL)
    await gafaelfawr.user_info("one")
    await gafaelfawr.user_info("two")
    assert [call.request.headers["Authorization"] for call in route.calls] == [
        "Bearer one",
        "Bearer two",
    ]


async def test_cache_expires_after_five_minutes(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient, clock: FakeClock
) -> None:
    route = mock.get(USER_INFO)
    changed = {**RACHEL, "name": "Rachel Changed"}
    route.side_effect = [httpx.Response(200, json=RACHEL), httpx.Response(200, json=changed)]
    assert (await gafaelfawr.user_info("token")).name == "Rachel (?)"
    clock.now += 299.9
    assert (await gafaelfawr.user_info("token")).name == "Rachel (?)"
    assert route.call_count == 1
    clock.now += 0.1
    assert (await gafaelfawr.user_info("token")).name == "Rachel Changed"
    assert route.call_count == 2


async def test_cache_holds_at_most_cache_size_tokens(
    mock: respx.MockRouter, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    route = mock.get(USER_INFO).respond(200, json=RACHEL)
    client = GafaelfawrClient(http, BASE, cache_size=2, clock=clock)
    for token in ("a", "b", "c"):  # "a" is the oldest and goes
        await client.user_info(token)
    await client.user_info("b")
    await client.user_info("c")
    assert route.call_count == 3
    await client.user_info("a")
    assert route.call_count == 4


async def test_default_cache_is_1000_tokens(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient
) -> None:
    route = mock.get(USER_INFO).respond(200, json=RACHEL)
    for index in range(1001):
        await gafaelfawr.user_info(f"t{index}")
    await gafaelfawr.user_info("t1000")
    await gafaelfawr.user_info("t1")
    assert route.call_count == 1001
    await gafaelfawr.user_info("t0")
    assert route.call_count == 1002


async def test_concurrent_requests_for_one_token_share_a_call(
    mock: respx.MockRouter, gafaelfawr: GafaelfawrClient
) -> None:
    release = asyncio.Event()

    async def slow(_request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json=RACHEL)

    route = mock.get(USER_INFO).mock(side_effect=slow)
    waiters = [asyncio.create_task(gafaelfawr.user_info("token")) for _ in range(5)]
    await asyncio.sleep(0.01)
    waiters[0].cancel()  # one caller going away does not cancel the others' call
    release.set()
    results = await asyncio.gather(*waiters[1:])
    assert {info.username for info in results} == {"rachel"}
    assert route.call_count == 1


# -- discovery -----------------------------------------------------------------


def test_url_from_the_reference_discovery_document() -> None:
    assert gafaelfawr_url_from_discovery(DISCOVERY) == BASE


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {},
        {"services": []},
        {"services": {"internal": {}}},
        {"services": {"internal": {"gafaelfawr": {"url": "https://x/auth/api"}}}},
        {"services": {"internal": {"gafaelfawr": {"versions": {"v1": {"url": 3}}}}}},
        {"services": {"internal": {"gafaelfawr": {"versions": {"v1": {"url": ""}}}}}},
    ],
)
def test_url_absent_from_other_documents(document: Any) -> None:
    assert gafaelfawr_url_from_discovery(document) is None


async def test_discovered_through_repertoire_once(
    mock: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    discovery = mock.get(f"{REPERTOIRE}/discovery").respond(200, json=DISCOVERY)
    user_info = mock.get(USER_INFO).respond(200, json=RACHEL)
    client = GafaelfawrClient(http, repertoire_url=f"{REPERTOIRE}/")
    await asyncio.gather(client.user_info("one"), client.user_info("two"))
    await client.user_info("three")
    assert discovery.call_count == 1
    assert user_info.call_count == 3
    assert await client.base_url() == BASE


async def test_configured_url_wins_over_discovery(
    mock: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    discovery = mock.get(f"{REPERTOIRE}/discovery").respond(200, json=DISCOVERY)
    other = mock.get("https://other.example.com/auth/api/v1/user-info").respond(200, json=RACHEL)
    client = GafaelfawrClient(
        http, "https://other.example.com/auth/api/v1/", repertoire_url=REPERTOIRE
    )
    await client.user_info("token")
    assert other.call_count == 1
    assert discovery.call_count == 0


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (httpx.Response(500), "HTTPStatusError"),
        (httpx.Response(404), "HTTPStatusError"),
        (httpx.Response(200, text="<html></html>"), "JSONDecodeError"),
        (httpx.Response(200, json={"services": {}}), "has no services.internal.gafaelfawr"),
        (httpx.ConnectTimeout("slow"), "ConnectTimeout: slow"),
    ],
    ids=["500", "404", "html", "no-gafaelfawr", "timeout"],
)
async def test_discovery_failures_are_server_errors_and_retried(
    mock: respx.MockRouter, http: httpx.AsyncClient, response: Any, problem: str
) -> None:
    route = mock.get(f"{REPERTOIRE}/discovery")
    route.side_effect = [response, httpx.Response(200, json=DISCOVERY)]
    mock.get(USER_INFO).respond(200, json=RACHEL)
    client = GafaelfawrClient(http, repertoire_url=REPERTOIRE)
    with pytest.raises(GafaelfawrError, match=f"Service discovery at {REPERTOIRE}/discovery"):
        try:
            await client.user_info("token")
        except GafaelfawrError as exc:
            assert problem in str(exc)
            raise
    assert (await client.user_info("token")).username == "rachel"
    assert route.call_count == 2


async def test_no_url_at_all_is_a_server_error(http: httpx.AsyncClient) -> None:
    client = GafaelfawrClient(http)
    with pytest.raises(GafaelfawrError, match="REPERTOIRE_BASE_URL is not set"):
        await client.user_info("token")


async def test_malformed_repertoire_url_is_a_server_error(http: httpx.AsyncClient) -> None:
    client = GafaelfawrClient(http, repertoire_url="http://[bad")
    with pytest.raises(GafaelfawrError, match="Service discovery at http://\\[bad/discovery"):
        await client.user_info("token")


# -- sandbox users -------------------------------------------------------------


async def test_trusted_users_answer_by_header_username() -> None:
    users = TrustedUsers.from_file(REFERENCE / "users" / "rachel.json")
    source: UserInfoSource = users
    info = await source.user_info("anything", username="rachel")
    assert info == UserInfo.model_validate(RACHEL)
    assert users.usernames == ["rachel"]


@pytest.mark.parametrize("username", ["someone", None])
async def test_trusted_users_reject_others(username: str | None) -> None:
    users = TrustedUsers([UserInfo.model_validate(RACHEL)])
    with pytest.raises(InvalidTokenError):
        await users.user_info("token", username=username)


def test_trusted_users_file_may_list_users(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text(json.dumps([RACHEL, {"username": "wendy", "uid": 1102}]))
    assert TrustedUsers.from_file(path).usernames == ["rachel", "wendy"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "users file is not JSON"),
        ('"rachel"', "must hold a user or a list of users"),
        ('[{"username": "rachel"}, {"uid": 3}]', "user 1: username: Field required"),
    ],
)
def test_bad_users_files_are_input_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "users.json"
    path.write_text(text)
    with pytest.raises(InputError, match=problem):
        TrustedUsers.from_file(path)


def test_missing_users_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read users file"):
        TrustedUsers.from_file(tmp_path / "absent.json")


# -- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "called"),
    [
        ({"GAFAELFAWR_URL": BASE, "REPERTOIRE_BASE_URL": "https://nowhere.example"}, "direct"),
        ({"REPERTOIRE_BASE_URL": REPERTOIRE}, "discovery"),
    ],
    ids=["configured", "discovered"],
)
async def test_client_from_config(
    mock: respx.MockRouter, http: httpx.AsyncClient, environ: dict[str, str], called: str
) -> None:
    config = load_config(REFERENCE / "config" / "standard.yaml", environ=environ)
    discovery = mock.get(f"{REPERTOIRE}/discovery").respond(200, json=DISCOVERY)
    mock.get(USER_INFO).respond(200, json=RACHEL)
    client = GafaelfawrClient.from_config(http, config)
    assert (await client.user_info("token")).username == "rachel"
    assert discovery.call_count == (1 if called == "discovery" else 0)


def test_gafaelfawr_url_is_a_configuration_key(tmp_path: Path) -> None:
    config = yaml.safe_load((REFERENCE / "config" / "standard.yaml").read_text())
    config["gafaelfawrUrl"] = BASE
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    template_dirs = config.get("templateDirs")
    assert not template_dirs  # relative template folders would not resolve from tmp_path
    assert load_config(path, environ={}).gafaelfawr_url == BASE


def test_the_example_user_file_serves_the_sandbox() -> None:
    example = Path(__file__).parents[1] / "examples" / "user.json"
    assert TrustedUsers.from_file(example).usernames == ["rachel"]
