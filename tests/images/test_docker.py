"""The Docker Registry v2 client against respx: pagination, auth, retries, bad answers."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from nublado.config.images import DockerSourceConfig
from nublado.images.credentials import DockerCredential, DockerCredentials
from nublado.images.docker import (
    MANIFEST_ACCEPT,
    MAX_TAG_PAGES,
    AuthChallenge,
    DockerRegistryClient,
    parse_challenges,
    parse_link_header,
)
from nublado.images.errors import (
    InvalidLinkURLError,
    NoCredentialsError,
    RegistryAuthError,
    RegistryHTTPError,
    RegistryResponseError,
    RepeatedPageURLError,
    TooManyPagesError,
)
from nublado.images.retry import RetryPolicy

REGISTRY = "registry.example.com"
SOURCE = DockerSourceConfig(type="docker", registry=REGISTRY, repository="lsst/sciplat-lab")
BASE = f"https://{REGISTRY}/v2/lsst/sciplat-lab"
TAGS_URL = f"{BASE}/tags/list"
CREDENTIALS = DockerCredentials({REGISTRY: DockerCredential("ken", "p/q2-q4!a")})
BASIC = "Basic " + base64.b64encode(b"ken:p/q2-q4!a").decode()
DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def registry() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def retry(sleeps: list[float]) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    # rand() == 1 makes full jitter its ceiling: 1, 2, 4, ... capped at 4
    return RetryPolicy(attempts=3, base_delay=1.0, max_delay=4.0, sleep=sleep, rand=lambda: 1.0)


@pytest.fixture
async def client(retry: RetryPolicy) -> DockerRegistryClient:
    return DockerRegistryClient(httpx.AsyncClient(), CREDENTIALS, retry)


# ---------------------------------------------------------------- header parsers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="Registry"', [AuthChallenge("basic", {"realm": "Registry"})]),
        (
            'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
            'scope="repository:lsst/sciplat-lab:pull,push"',
            [
                AuthChallenge(
                    "bearer",
                    {
                        "realm": "https://auth.example.com/token",
                        "service": "registry.example.com",
                        "scope": "repository:lsst/sciplat-lab:pull,push",
                    },
                )
            ],
        ),
        (
            r'BEARER Realm = "https://a/t" , scope="say \"hi\", then \\ go", error=bad_scope',
            [
                AuthChallenge(
                    "bearer",
                    {
                        "realm": "https://a/t",
                        "scope": 'say "hi", then \\ go',
                        "error": "bad_scope",
                    },
                )
            ],
        ),
        (
            'Negotiate, Basic realm="x", Bearer realm="https://a/t",service=s',
            [
                AuthChallenge("negotiate"),
                AuthChallenge("basic", {"realm": "x"}),
                AuthChallenge("bearer", {"realm": "https://a/t", "service": "s"}),
            ],
        ),
        ("Newauth abc123==", [AuthChallenge("newauth")]),
    ],
    ids=["basic", "bearer-comma-scope", "escapes-and-spaces", "several", "token68"],
)
def test_parse_challenges(header: str, expected: list[AuthChallenge]) -> None:
    assert parse_challenges(header) == expected


@pytest.mark.parametrize("header", ['Bearer realm="unterminated', 'Bearer realm="a" junk', "=x"])
def test_parse_challenges_refuses_garbage(header: str) -> None:
    with pytest.raises(ValueError):
        parse_challenges(header)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('<?page=2>; rel="next"', [("?page=2", {"rel": "next"})]),
        ("</v2/x/tags/list?last=b>;rel=next", [("/v2/x/tags/list?last=b", {"rel": "next"})]),
        (
            '<https://h/a?x=1,2>; rel="prev"; title="a, b", <https://h/b>; REL="next last"',
            [
                ("https://h/a?x=1,2", {"rel": "prev", "title": "a, b"}),
                ("https://h/b", {"rel": "next last"}),
            ],
        ),
        ("<a>; crossorigin; rel=previous", [("a", {"crossorigin": "", "rel": "previous"})]),
    ],
    ids=["quoted-relative", "token-path", "commas-inside", "valueless-param"],
)
def test_parse_link_header(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    links = parse_link_header(header)
    assert [(link.target, link.params) for link in links] == expected


def test_link_rels_are_lower_cased_and_previous_is_prev() -> None:
    (link,) = parse_link_header('<a>; rel="Next PREVIOUS"')
    assert link.rels == {"next", "prev"}


@pytest.mark.parametrize("header", ["?page=2; rel=next", "<unterminated", "<a> rel=next"])
def test_parse_link_header_refuses_garbage(header: str) -> None:
    with pytest.raises(ValueError):
        parse_link_header(header)


# ---------------------------------------------------------------- tag listing


async def test_list_tags_one_page(registry: respx.MockRouter, client: DockerRegistryClient) -> None:
    route = registry.get(TAGS_URL).respond(json={"name": "lsst/sciplat-lab", "tags": ["a", "b"]})

    assert await client.list_tags(SOURCE) == ["a", "b"]
    assert route.calls.last.request.headers["Accept"] == "application/json"


@pytest.mark.parametrize(
    ("link", "second"),
    [
        ('<?page=2>; rel="next"', f"{TAGS_URL}?page=2"),
        ("</v2/lsst/sciplat-lab/tags/list?n=2&last=b>; rel=next", f"{TAGS_URL}?n=2&last=b"),
        (f'<{TAGS_URL}?page=2>; rel="next"', f"{TAGS_URL}?page=2"),
        (f'<{TAGS_URL}?page=0>; rel="prev", <?page=2>; rel="next"', f"{TAGS_URL}?page=2"),
    ],
    ids=["relative-query", "absolute-path-token-rel", "absolute-url", "prev-then-next"],
)
async def test_list_tags_follows_next_links(
    registry: respx.MockRouter, client: DockerRegistryClient, link: str, second: str
) -> None:
    url = httpx.URL(second)
    registry.get(url).respond(json={"tags": ["b", "c"]})  # query-exact route, added first
    registry.get(TAGS_URL).respond(json={"tags": ["a", "b"]}, headers={"Link": link})

    assert await client.list_tags(SOURCE) == ["a", "b", "c"]


async def test_list_tags_null_tags_is_empty(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    registry.get(TAGS_URL).respond(json={"name": "lsst/sciplat-lab", "tags": None})

    assert await client.list_tags(SOURCE) == []


@pytest.mark.parametrize(
    "target",
    [
        "https://elsewhere.example.com/v2/lsst/sciplat-lab/tags/list?page=2",
        f"http://{REGISTRY}/v2/lsst/sciplat-lab/tags/list?page=2",
        f"https://{REGISTRY}.evil.com/v2/x",
    ],
    ids=["other-host", "plain-http", "host-prefix"],
)
async def test_list_tags_refuses_links_off_the_registry(
    registry: respx.MockRouter, client: DockerRegistryClient, target: str
) -> None:
    registry.get(TAGS_URL).respond(
        json={"tags": ["a"]}, headers={"Link": f'<{target}>; rel="next"'}
    )

    with pytest.raises(InvalidLinkURLError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == f"Docker Link URL not relative to {REGISTRY}: {target}"


async def test_list_tags_refuses_a_repeated_page(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    registry.get(f"{TAGS_URL}?page=2").respond(
        json={"tags": ["b"]}, headers={"Link": '<?page=2>; rel="next"'}
    )
    registry.get(TAGS_URL).respond(json={"tags": ["a"]}, headers={"Link": '<?page=2>; rel="next"'})

    with pytest.raises(RepeatedPageURLError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == f"Repeated tag page URL: {TAGS_URL}?page=2"


async def test_list_tags_refuses_a_link_back_to_the_first_page(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    registry.get(TAGS_URL).respond(
        json={"tags": ["a"]}, headers={"Link": f"<{TAGS_URL}>; rel=next"}
    )

    with pytest.raises(RepeatedPageURLError, match="^Repeated tag page URL: "):
        await client.list_tags(SOURCE)


def endless_pages(request: httpx.Request) -> httpx.Response:
    """Every page names a next page never fetched before: ?page=n+1."""
    page = int(request.url.params.get("page", "1"))
    return httpx.Response(
        200, json={"tags": [f"t{page}"]}, headers={"Link": f'<?page={page + 1}>; rel="next"'}
    )


@pytest.mark.parametrize("cap", [1, 3])
async def test_list_tags_stops_at_the_page_cap(
    registry: respx.MockRouter, retry: RetryPolicy, cap: int
) -> None:
    route = registry.get(url__startswith=TAGS_URL).mock(side_effect=endless_pages)
    client = DockerRegistryClient(httpx.AsyncClient(), CREDENTIALS, retry, max_tag_pages=cap)

    with pytest.raises(TooManyPagesError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == (
        f"Tag listing of {TAGS_URL} stopped after {cap} pages (the cap):"
        f" the registry still names a next page, {TAGS_URL}?page={cap + 1}"
    )
    assert route.call_count == cap


async def test_list_tags_follows_pages_up_to_the_cap(
    registry: respx.MockRouter, retry: RetryPolicy
) -> None:
    def three_pages(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "3":
            return httpx.Response(200, json={"tags": ["t3"]})
        return endless_pages(request)

    registry.get(url__startswith=TAGS_URL).mock(side_effect=three_pages)
    client = DockerRegistryClient(httpx.AsyncClient(), CREDENTIALS, retry, max_tag_pages=3)

    assert await client.list_tags(SOURCE) == ["t1", "t2", "t3"]


async def test_the_default_page_cap_is_generous(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    route = registry.get(url__startswith=TAGS_URL).mock(side_effect=endless_pages)

    with pytest.raises(TooManyPagesError, match=f"stopped after {MAX_TAG_PAGES} pages"):
        await client.list_tags(SOURCE)
    assert route.call_count == MAX_TAG_PAGES == 1000


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            httpx.Response(200, text='{"tags": [', headers={"Content-Type": "application/json"}),
            f"Cannot parse response from Docker registry: GET {TAGS_URL}: not JSON"
            " (application/json): '{\"tags\": ['",
        ),
        (
            httpx.Response(200, html="<html><body>Sign in</body></html>"),
            f"Cannot parse response from Docker registry: GET {TAGS_URL}: not JSON"
            " (text/html; charset=utf-8): '<html><body>Sign in</body></html>'",
        ),
        (
            httpx.Response(200, json={"tags": "a,b"}),
            f'Cannot parse response from Docker registry: GET {TAGS_URL}: "tags" is not a list'
            " of strings",
        ),
        (
            httpx.Response(200, json=["a"]),
            f'Cannot parse response from Docker registry: GET {TAGS_URL}: "tags" is not a list'
            " of strings",
        ),
        (
            httpx.Response(200, json={"tags": ["a"]}, headers={"Link": "?page=2; rel=next"}),
            f"Cannot parse response from Docker registry: GET {TAGS_URL}: bad Link header:"
            " expected '<' at character 1",
        ),
    ],
    ids=["malformed-json", "html", "tags-not-list", "body-not-object", "bad-link"],
)
async def test_list_tags_bad_answers_are_registry_errors(
    registry: respx.MockRouter,
    client: DockerRegistryClient,
    response: httpx.Response,
    message: str,
) -> None:
    registry.get(TAGS_URL).mock(return_value=response)

    with pytest.raises(RegistryResponseError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == message
    assert (info.value.method, info.value.url) == ("GET", TAGS_URL)


# ---------------------------------------------------------------- authentication


async def test_basic_challenge_then_cached(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != BASIC:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry"'})
        return httpx.Response(200, json={"tags": ["a"]})

    route = registry.get(TAGS_URL).mock(side_effect=answer)

    assert await client.list_tags(SOURCE) == ["a"]
    assert await client.list_tags(SOURCE) == ["a"]
    # one 401, then the cached header goes with every request
    assert [call.response.status_code for call in route.calls] == [401, 200, 200]


@pytest.mark.parametrize(
    ("scope", "token_key"),
    [
        ('"repository:lsst/sciplat-lab:pull,push"', "token"),
        (r'"repository:say \"hi\":pull"', "access_token"),
    ],
    ids=["comma-in-scope", "escaped-quotes"],
)
async def test_bearer_challenge(
    registry: respx.MockRouter, client: DockerRegistryClient, scope: str, token_key: str
) -> None:
    realm = "https://auth.example.com/token"
    challenge = f'Bearer realm="{realm}",service="registry.example.com",scope={scope}'
    expected_scope = parse_challenges(challenge)[0].params["scope"]
    assert "," in expected_scope or '"' in expected_scope

    def token(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == BASIC
        assert dict(request.url.params) == {
            "realm": realm,
            "service": "registry.example.com",
            "scope": expected_scope,
        }
        return httpx.Response(200, json={token_key: "tok3n"})

    registry.get(realm).mock(side_effect=token)
    route = registry.head(f"{BASE}/manifests/w_2077_43")
    route.side_effect = [
        httpx.Response(401, headers={"WWW-Authenticate": challenge}),
        httpx.Response(200, headers={"Docker-Content-Digest": DIGEST}),
    ]

    assert await client.get_digest(SOURCE, "w_2077_43") == DIGEST
    retried = route.calls.last.request
    assert retried.headers["Authorization"] == "Bearer tok3n"
    assert retried.headers["Accept"] == MANIFEST_ACCEPT


@pytest.mark.parametrize(
    "realm",
    ["http://auth.example.com/token", f"http://{REGISTRY}/token", "ftp://auth.example.com/t"],
    ids=["http-elsewhere", "http-same-host", "other-scheme"],
)
async def test_bearer_realm_must_be_https(
    registry: respx.MockRouter, client: DockerRegistryClient, realm: str
) -> None:
    token = registry.route(url__startswith=realm).respond(json={"token": "t"})
    challenge = f'Bearer realm="{realm}",service="registry.example.com"'
    registry.head(f"{BASE}/manifests/w_2077_43").respond(
        401, headers={"WWW-Authenticate": challenge}
    )

    with pytest.raises(RegistryAuthError) as info:
        await client.get_digest(SOURCE, "w_2077_43")
    assert str(info.value) == (
        f"Docker API bearer challenge from {REGISTRY} names a realm that is not https,"
        f" refusing to send credentials to it: {realm}"
    )
    assert not token.called


async def test_credentials_rejected_after_one_authentication(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    route = registry.delete(f"{BASE}/manifests/{DIGEST}").respond(
        401, headers={"WWW-Authenticate": "Basic"}
    )

    with pytest.raises(RegistryAuthError) as info:
        await client.delete_image(SOURCE, DIGEST)
    assert str(info.value) == f"Authentication credentials for {REGISTRY} rejected"
    assert route.call_count == 2


async def test_token_endpoint_refusing_is_credentials_rejected(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    registry.get("https://auth.example.com/token").respond(401)
    registry.get(TAGS_URL).respond(
        401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example.com/token"'}
    )

    with pytest.raises(
        RegistryAuthError, match=f"^Authentication credentials for {REGISTRY} rejected$"
    ):
        await client.list_tags(SOURCE)


async def test_token_reply_without_token(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    registry.get("https://auth.example.com/token").respond(json={"expires_in": 60})
    registry.get(TAGS_URL).respond(
        401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example.com/token"'}
    )

    with pytest.raises(RegistryResponseError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == (
        "Cannot parse response from Docker registry: GET https://auth.example.com/token:"
        " no token in the reply"
    )


async def test_no_credentials_for_the_host(registry: respx.MockRouter, retry: RetryPolicy) -> None:
    other = DockerCredentials({"elsewhere.com": DockerCredential("a", "b")})
    client = DockerRegistryClient(httpx.AsyncClient(), other, retry)
    registry.get(TAGS_URL).respond(401, headers={"WWW-Authenticate": "Basic"})

    with pytest.raises(NoCredentialsError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == f"No Docker API credentials available for {REGISTRY}"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, f"Docker API 401 response from {REGISTRY} contains no challenge"),
        (
            {"WWW-Authenticate": " , "},
            f"Docker API 401 response from {REGISTRY} contains no challenge",
        ),
        (
            {"WWW-Authenticate": "Negotiate abc=="},
            'Unknown Docker authentication challenge "negotiate"',
        ),
        (
            {"WWW-Authenticate": 'Bearer realm="x'},
            f"Docker API 401 response from {REGISTRY} has an unreadable challenge:"
            " unterminated quoted string",
        ),
        (
            {"WWW-Authenticate": "Bearer service=x"},
            f"Docker API bearer challenge from {REGISTRY} has no realm",
        ),
    ],
    ids=["no-challenge", "empty-challenge", "unknown-scheme", "unreadable", "no-realm"],
)
async def test_unusable_challenges(
    registry: respx.MockRouter, client: DockerRegistryClient, headers: dict[str, str], message: str
) -> None:
    registry.get(TAGS_URL).respond(401, headers=headers)

    with pytest.raises(RegistryAuthError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == message


# ---------------------------------------------------------------- status codes and retries


@pytest.mark.parametrize("status", [400, 403, 404, 405])
async def test_other_client_errors_fail_at_once(
    registry: respx.MockRouter, client: DockerRegistryClient, sleeps: list[float], status: int
) -> None:
    route = registry.get(TAGS_URL).respond(status, json={"errors": [{"code": "NAME_UNKNOWN"}]})

    with pytest.raises(RegistryHTTPError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == f"GET {TAGS_URL}: status {status}"
    assert (info.value.status, route.call_count, sleeps) == (status, 1, [])


def http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(tz=UTC) + delta, usegmt=True)


@pytest.mark.parametrize(
    ("first", "expected_sleep"),
    [
        (httpx.Response(429, headers={"Retry-After": "7"}), 7.0),
        (httpx.Response(429, headers={"Retry-After": "86400"}), 60.0),  # capped
        (httpx.Response(503, headers={"Retry-After": http_date(timedelta(hours=-1))}), 0.0),
        (httpx.Response(429), 1.0),  # no Retry-After: backoff
        (httpx.Response(500, text="oops"), 1.0),
        (httpx.Response(502, headers={"Retry-After": "soon"}), 1.0),  # unparsable: backoff
    ],
    ids=["429-seconds", "429-capped", "503-date-past", "429-bare", "500", "502-bad-retry-after"],
)
async def test_transient_failure_then_success(
    registry: respx.MockRouter,
    client: DockerRegistryClient,
    sleeps: list[float],
    first: httpx.Response,
    expected_sleep: float,
) -> None:
    registry.get(TAGS_URL).side_effect = [first, httpx.Response(200, json={"tags": ["a"]})]

    assert await client.list_tags(SOURCE) == ["a"]
    assert sleeps == [expected_sleep]


async def test_retry_after_http_date_in_the_future(
    registry: respx.MockRouter, client: DockerRegistryClient, sleeps: list[float]
) -> None:
    later = httpx.Response(429, headers={"Retry-After": http_date(timedelta(seconds=30))})
    registry.get(TAGS_URL).side_effect = [later, httpx.Response(200, json={"tags": []})]

    await client.list_tags(SOURCE)
    assert 25 < sleeps[0] <= 30


async def test_retries_are_bounded(
    registry: respx.MockRouter, client: DockerRegistryClient, sleeps: list[float]
) -> None:
    route = registry.get(TAGS_URL).respond(503)

    with pytest.raises(RegistryHTTPError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == f"GET {TAGS_URL}: status 503 after 3 tries"
    assert route.call_count == 3
    assert sleeps == [1.0, 2.0]  # exponential, jitter ceiling (rand() == 1)


@pytest.mark.parametrize(
    ("error", "what"),
    [
        (httpx.ReadTimeout("slow"), "timed out (ReadTimeout)"),
        (httpx.ConnectTimeout("slow"), "timed out (ConnectTimeout)"),
        (httpx.ConnectError("refused"), "connection failed: refused"),
    ],
    ids=["read-timeout", "connect-timeout", "connect-error"],
)
async def test_network_failures(
    registry: respx.MockRouter,
    client: DockerRegistryClient,
    sleeps: list[float],
    error: Exception,
    what: str,
) -> None:
    route = registry.get(TAGS_URL)
    route.side_effect = [error, httpx.Response(200, json={"tags": ["a"]})]
    assert await client.list_tags(SOURCE) == ["a"]
    assert sleeps == [1.0]

    route.side_effect = error
    with pytest.raises(RegistryHTTPError) as info:
        await client.list_tags(SOURCE)
    assert str(info.value) == f"GET {TAGS_URL}: {what} after 3 tries"


async def test_jitter_is_uniform_below_the_ceiling(registry: respx.MockRouter) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=3.0, sleep=sleep, rand=lambda: 0.5)
    client = DockerRegistryClient(httpx.AsyncClient(), None, policy)
    registry.get(TAGS_URL).respond(500)

    with pytest.raises(RegistryHTTPError):
        await client.list_tags(SOURCE)
    assert delays == [0.5, 1.0, 1.5]  # half of 1, 2, then 4 capped at 3


# ---------------------------------------------------------------- digests and deletes


async def test_get_digest_sends_the_manifest_accept_list(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    route = registry.head(f"{BASE}/manifests/w_2077_43").respond(
        200, headers={"Docker-Content-Digest": DIGEST}
    )

    assert await client.get_digest(SOURCE, "w_2077_43") == DIGEST
    assert route.calls.last.request.headers["Accept"] == (
        "application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.docker.distribution.manifest.list.v2+json, "
        "application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.oci.image.index.v1+json, "
        "application/json;q=0.5"
    )


async def test_get_digest_without_the_header(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    registry.head(f"{BASE}/manifests/w_2077_43").respond(200)

    with pytest.raises(RegistryResponseError) as info:
        await client.get_digest(SOURCE, "w_2077_43")
    assert str(info.value) == (
        "Cannot get image digest from Docker registry: HEAD"
        f" {BASE}/manifests/w_2077_43: no Docker-Content-Digest header"
    )


async def test_get_digest_of_a_missing_tag(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    registry.head(f"{BASE}/manifests/nope").respond(404)

    with pytest.raises(RegistryHTTPError, match=f"^HEAD {BASE}/manifests/nope: status 404$"):
        await client.get_digest(SOURCE, "nope")


async def test_delete_image_202(registry: respx.MockRouter, client: DockerRegistryClient) -> None:
    route = registry.delete(f"{BASE}/manifests/{DIGEST}").respond(202)

    await client.delete_image(SOURCE, DIGEST)
    assert route.call_count == 1
    assert route.calls.last.request.headers["Accept"] == "application/json"


def scoped_token(request: httpx.Request) -> httpx.Response:
    """The token service: the token names the scope it was asked for."""
    return httpx.Response(200, json={"token": f"for {request.url.params['scope']}"})


def bearer(scope: str) -> dict[str, str]:
    realm = "https://auth.example.com/token"
    return {"WWW-Authenticate": f'Bearer realm="{realm}",service="r",scope="{scope}"'}


async def test_a_delete_after_a_listing_gets_a_token_for_its_scope(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    token_route = registry.get("https://auth.example.com/token").mock(side_effect=scoped_token)

    def tags(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != "Bearer for repository:x:pull":
            return httpx.Response(401, headers=bearer("repository:x:pull"))
        return httpx.Response(200, json={"tags": ["a"]})

    def delete(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != "Bearer for repository:x:delete":
            return httpx.Response(401, headers=bearer("repository:x:delete"))
        return httpx.Response(202)

    registry.get(TAGS_URL).mock(side_effect=tags)
    delete_route = registry.delete(f"{BASE}/manifests/{DIGEST}").mock(side_effect=delete)

    assert await client.list_tags(SOURCE) == ["a"]
    await client.delete_image(SOURCE, DIGEST)

    assert [call.response.status_code for call in delete_route.calls] == [401, 202]
    assert token_route.call_count == 2


async def test_a_new_scope_is_tried_once_per_request(
    registry: respx.MockRouter, client: DockerRegistryClient
) -> None:
    token_route = registry.get("https://auth.example.com/token").mock(side_effect=scoped_token)
    registry.get(TAGS_URL).respond(401, headers=bearer("repository:x:pull"))
    registry.delete(f"{BASE}/manifests/{DIGEST}").respond(
        401, headers=bearer("repository:x:delete")
    )

    with pytest.raises(RegistryAuthError, match="^Authentication credentials for .* rejected$"):
        await client.list_tags(SOURCE)  # pull token refused: same scope, no second token
    assert token_route.call_count == 1

    with pytest.raises(RegistryAuthError, match="^Authentication credentials for .* rejected$"):
        await client.delete_image(SOURCE, DIGEST)  # one new token for delete, then refused
    assert token_route.call_count == 2


async def test_the_token_request_is_retried_too(
    registry: respx.MockRouter, client: DockerRegistryClient, sleeps: list[float]
) -> None:
    registry.get("https://auth.example.com/token").side_effect = [
        httpx.Response(503, headers={"Retry-After": "2"}),
        httpx.Response(200, json={"token": "t"}),
    ]
    registry.get(TAGS_URL).side_effect = [
        httpx.Response(401, headers=bearer("repository:x:pull")),
        httpx.Response(200, json={"tags": ["a"]}),
    ]

    assert await client.list_tags(SOURCE) == ["a"]
    assert sleeps == [2.0]
