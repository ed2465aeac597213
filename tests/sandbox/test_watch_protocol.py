"""The watch protocol over raw HTTP: bookmarks, sendInitialEvents, resourceVersion, 422s."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nublado.sandbox.server import Sandbox, SandboxSettings

PATH = "/api/v1/namespaces/p/configmaps"
INITIAL = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    """Bookmarks every 50 ms instead of every minute."""
    return SandboxSettings(bookmark_interval=0.05)


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A plain HTTP client on the served sandbox, with namespaces ``p`` and ``q``."""
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        for name in ("p", "q"):
            response = client.post("/api/v1/namespaces", json={"metadata": {"name": name}})
            assert response.status_code == 201
        yield client


def _cm(name: str, namespace: str = "p", **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def _events(http: httpx.Client, params: dict[str, str], count: int | None = None) -> list[Any]:
    """The events of one watch: ``count`` of them, or all until the server ends it."""
    events = []
    with http.stream("GET", PATH, params={"watch": "true", **params}) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line:
                events.append(json.loads(line))
            if count is not None and len(events) >= count:
                break
    return events


def _later(seconds: float, action: Any) -> threading.Timer:
    """Run ``action`` on another thread after ``seconds`` (a write while a watch is open)."""
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def _bookmark(revision: int, *, end: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {
        "type": "BOOKMARK",
        "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": metadata},
    }


def test_no_bookmark_is_sent_without_allow_watch_bookmarks(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    timer = _later(0.3, lambda: sandbox.create(_cm("a")))
    events = _events(http, {"resourceVersion": str(sandbox.revision), "timeoutSeconds": "30"}, 1)
    timer.join()

    assert [e["type"] for e in events] == ["ADDED"]


def test_bookmarks_carry_the_current_revision_and_nothing_else(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    start = sandbox.revision
    sandbox.create(_cm("elsewhere", "q"))  # outside the watch's view; moves the revision
    params = {"resourceVersion": str(start), "allowWatchBookmarks": "true", "timeoutSeconds": "30"}

    events = _events(http, params, 2)

    assert events == [_bookmark(start + 1), _bookmark(start + 1)]


def test_a_bookmark_comes_after_the_changes_it_covers(http: httpx.Client, sandbox: Sandbox) -> None:
    timer = _later(0.2, lambda: sandbox.create(_cm("a")))
    params = {
        "watch": "true",
        "resourceVersion": str(sandbox.revision),
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "30",
    }
    events: list[Any] = []
    with http.stream("GET", PATH, params=params) as stream:
        for line in stream.iter_lines():
            if line:
                events.append(json.loads(line))
            if len(events) >= 2 and events[-2]["type"] == "ADDED":
                break
    timer.join()

    *before, added, after = events
    revision = int(added["object"]["metadata"]["resourceVersion"])
    assert all(e["type"] == "BOOKMARK" for e in before)
    assert all(int(e["object"]["metadata"]["resourceVersion"]) < revision for e in before)
    assert after == _bookmark(revision)


def test_a_bookmark_comes_two_seconds_before_the_watch_times_out(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.settings.bookmark_interval = 60.0
    params = {"allowWatchBookmarks": "true", "timeoutSeconds": "3"}
    started = time.monotonic()

    events = _events(http, {"resourceVersion": str(sandbox.revision), **params})

    assert events == [_bookmark(sandbox.revision)]
    assert 2.9 <= time.monotonic() - started < 5


def test_send_initial_events_then_the_initial_events_end_bookmark_then_changes(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    a = sandbox.create(_cm("a", v="1"))
    b = sandbox.create(_cm("b", v="1"))
    current = sandbox.revision
    timer = _later(0.2, lambda: sandbox.create(_cm("c", v="1")))
    params = {**INITIAL, "allowWatchBookmarks": "true", "timeoutSeconds": "1"}

    events = _events(http, params, 4)
    timer.join()

    assert events[:3] == [
        {"type": "ADDED", "object": a},
        {"type": "ADDED", "object": b},
        _bookmark(current, end=True),
    ]
    assert events[3]["type"] == "ADDED"
    assert events[3]["object"]["metadata"]["name"] == "c"


def test_send_initial_events_without_bookmarks_sends_no_end_bookmark(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.create(_cm("a"))
    timer = _later(0.1, lambda: sandbox.create(_cm("b")))
    events = _events(http, {**INITIAL, "timeoutSeconds": "30"}, 2)
    timer.join()

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


def test_send_initial_events_from_an_old_version_is_the_current_state_not_a_410(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    old = sandbox.revision
    sandbox.create(_cm("a", v="1"))
    sandbox.compact()

    params = {**INITIAL, "resourceVersion": str(old), "allowWatchBookmarks": "true"}
    events = _events(http, {**params, "timeoutSeconds": "30"}, 2)

    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1] == _bookmark(sandbox.revision, end=True)


def test_send_initial_events_false_from_no_version_starts_now(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.create(_cm("a"))
    timer = _later(0.2, lambda: sandbox.create(_cm("b")))
    params = {"sendInitialEvents": "false", "resourceVersionMatch": "NotOlderThan"}
    events = _events(http, {**params, "timeoutSeconds": "30"}, 1)
    timer.join()

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b")]


@pytest.mark.parametrize("version", ["", "0"])
def test_a_watch_from_no_version_or_zero_starts_with_the_current_objects(
    http: httpx.Client, sandbox: Sandbox, version: str
) -> None:
    a = sandbox.create(_cm("a"))
    events = _events(http, {"resourceVersion": version, "timeoutSeconds": "30"}, 1)
    assert events == [{"type": "ADDED", "object": a}]


def test_a_watch_from_a_compacted_version_is_410_naming_the_oldest(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    old = sandbox.revision
    sandbox.create(_cm("a"))
    sandbox.compact()

    events = _events(http, {"resourceVersion": str(old)})

    assert events == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {old} ({sandbox.revision})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]


def test_a_watch_waits_briefly_for_a_version_not_reached_yet(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    wanted = sandbox.revision + 1

    def write() -> None:
        sandbox.create(_cm("a"))
        sandbox.create(_cm("b"))

    timer = _later(0.05, write)
    events = _events(http, {"resourceVersion": str(wanted), "timeoutSeconds": "30"}, 1)
    timer.join()

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b")]


def test_send_initial_events_from_a_future_version_is_too_large(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    future = sandbox.revision + 10
    started = time.monotonic()

    events = _events(http, {**INITIAL, "resourceVersion": str(future)})

    assert time.monotonic() - started >= sandbox.settings.resource_version_wait
    assert events == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"Timeout: Too large resource version: {future}, "
                f"current: {sandbox.revision}",
                "reason": "Timeout",
                "details": {
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
                "code": 504,
            },
        }
    ]


_FORBIDDEN_MATCH = (
    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless "
    "sendInitialEvents is provided"
)
_NEEDS_NOT_OLDER_THAN = (
    "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch "
    "to NotOlderThan"
)
_EXACT_NOT_SUPPORTED = (
    'resourceVersionMatch: Unsupported value: "Exact": supported values: "NotOlderThan"'
)
_MATCH_WITH_CONTINUE = (
    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided"
)


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"sendInitialEvents": "true"}, [_NEEDS_NOT_OLDER_THAN]),
        ({"sendInitialEvents": "false"}, [_NEEDS_NOT_OLDER_THAN]),
        ({"resourceVersionMatch": "NotOlderThan"}, [_FORBIDDEN_MATCH]),
        (
            {"sendInitialEvents": "true", "resourceVersionMatch": "Exact"},
            [_NEEDS_NOT_OLDER_THAN, _EXACT_NOT_SUPPORTED],
        ),
        ({**INITIAL, "continue": "abc"}, [_MATCH_WITH_CONTINUE]),
    ],
)
def test_invalid_watch_options_are_422_as_validate_list_options_words_them(
    http: httpx.Client, params: dict[str, str], errors: list[str]
) -> None:
    response = http.get(PATH, params={"watch": "true", **params})

    assert response.status_code == 422
    text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    causes = []
    for error in errors:
        field, detail = error.split(": ", 1)
        reason = "FieldValueForbidden" if "Forbidden" in detail else "FieldValueNotSupported"
        causes.append({"reason": reason, "message": detail, "field": field})
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'ListOptions.meta.k8s.io "" is invalid: {text}',
        "reason": "Invalid",
        "details": {"group": "meta.k8s.io", "kind": "ListOptions", "causes": causes},
        "code": 422,
    }


def test_a_watch_resource_version_that_is_not_a_number_is_500_from_the_cache(
    http: httpx.Client,
) -> None:
    response = http.get(PATH, params={"watch": "true", "resourceVersion": "abc"})

    assert response.status_code == 500
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": '
        "invalid syntax",
        "code": 500,
    }
