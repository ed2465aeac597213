"""List resourceVersion semantics over raw HTTP: Any, NotOlderThan, Exact, 410 / 422 / 504."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from nublado.sandbox.server import Sandbox

PATH = "/api/v1/namespaces/p/configmaps"


def _cm(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "p"},
        "data": data,
    }


def _status(code: int, reason: str | None, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason is not None:
        body["reason"] = reason
    body.update(extra)
    body["code"] = code
    return body


def _names(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i["metadata"]["name"], i["data"]["v"]) for i in body["items"]]


@pytest.fixture
def history(sandbox: Sandbox) -> int:
    """a=1, b=1, then (after the returned revision) a=2, b deleted, c=1."""
    sandbox.create(_cm("a", v="1"))
    sandbox.create(_cm("b", v="1"))
    revision = sandbox.revision
    sandbox.apply(_cm("a", v="2"))
    sandbox.delete("ConfigMap", "b", "p")
    sandbox.create(_cm("c", v="1"))
    return revision


def test_exact_lists_the_collection_as_it_was_at_that_version(
    http: httpx.Client, history: int
) -> None:
    params = {"resourceVersion": str(history), "resourceVersionMatch": "Exact"}
    body = http.get(PATH, params=params).json()

    assert body["metadata"] == {"resourceVersion": str(history)}
    assert _names(body) == [("a", "1"), ("b", "1")]


def test_a_version_with_limit_and_no_match_is_exact_and_pages_at_it(
    http: httpx.Client, history: int
) -> None:
    first = http.get(PATH, params={"resourceVersion": str(history), "limit": "1"}).json()
    rest = http.get(PATH, params={"continue": first["metadata"]["continue"]}).json()

    assert _names(first) == [("a", "1")]
    assert first["metadata"]["resourceVersion"] == str(history)
    assert first["metadata"]["remainingItemCount"] == 1
    assert _names(rest) == [("b", "1")]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"resourceVersion": "0"},
        {"resourceVersion": "1"},
        {"resourceVersion": "1", "resourceVersionMatch": "NotOlderThan"},
        {"resourceVersion": "0", "resourceVersionMatch": "NotOlderThan"},
    ],
)
def test_most_recent_any_and_not_older_than_list_the_current_collection(
    http: httpx.Client, sandbox: Sandbox, history: int, params: dict[str, str]
) -> None:
    body = http.get(PATH, params=params).json()

    assert body["metadata"] == {"resourceVersion": str(sandbox.revision)}
    assert _names(body) == [("a", "2"), ("c", "1")]


def test_resource_version_zero_is_served_from_the_cache_which_ignores_limit(
    http: httpx.Client, history: int
) -> None:
    body = http.get(PATH, params={"resourceVersion": "0", "limit": "1"}).json()

    assert _names(body) == [("a", "2"), ("c", "1")]
    assert "continue" not in body["metadata"]


def test_exact_before_the_history_is_410(
    http: httpx.Client, sandbox: Sandbox, history: int
) -> None:
    sandbox.compact()
    response = http.get(
        PATH, params={"resourceVersion": str(history), "resourceVersionMatch": "Exact"}
    )

    assert response.status_code == 410
    assert response.json() == _status(
        410, "Expired", "The resourceVersion for the provided list is too old."
    )


def test_exact_after_the_current_version_is_etcds_future_revision_error(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    future = sandbox.revision + 5
    response = http.get(PATH, params={"resourceVersion": future, "resourceVersionMatch": "Exact"})

    assert response.status_code == 500
    assert response.json() == _status(
        500, None, "etcdserver: mvcc: required revision is a future revision"
    )


_TOO_LARGE_CAUSES = [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]


@pytest.mark.parametrize("match", ["NotOlderThan", ""])
def test_not_older_than_a_future_version_waits_then_is_504(
    http: httpx.Client, sandbox: Sandbox, match: str
) -> None:
    current = sandbox.revision
    future = current + 5
    started = time.monotonic()

    response = http.get(PATH, params={"resourceVersion": future, "resourceVersionMatch": match})

    assert time.monotonic() - started >= sandbox.settings.resource_version_wait
    assert response.status_code == 504
    assert response.json() == _status(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {future}, current: {current}",
        details={"causes": _TOO_LARGE_CAUSES, "retryAfterSeconds": 1},
    )


def test_not_older_than_a_future_version_with_limit_is_504_at_once_from_etcd(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    current = sandbox.revision
    future = current + 5
    params = {"resourceVersion": future, "resourceVersionMatch": "NotOlderThan", "limit": 10}

    response = http.get(PATH, params=params)

    assert response.status_code == 504
    assert response.json() == _status(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {future}, current: {current}",
        details={"causes": _TOO_LARGE_CAUSES},
    )


def test_not_older_than_a_version_reached_during_the_wait_answers(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    wanted = sandbox.revision + 1
    timer = threading.Timer(0.05, lambda: sandbox.create(_cm("a", v="1")))
    timer.start()

    response = http.get(
        PATH, params={"resourceVersion": wanted, "resourceVersionMatch": "NotOlderThan"}
    )
    timer.join()

    assert response.status_code == 200
    assert _names(response.json()) == [("a", "1")]


_LIST_OPTIONS_INVALID = 'ListOptions.meta.k8s.io "" is invalid: '


@pytest.mark.parametrize(
    ("params", "field", "reason", "detail"),
    [
        (
            {"resourceVersionMatch": "Exact"},
            "resourceVersionMatch",
            "FieldValueForbidden",
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            {"resourceVersionMatch": "Exact", "resourceVersion": "0"},
            "resourceVersionMatch",
            "FieldValueForbidden",
            'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
        ),
        (
            {"resourceVersionMatch": "Newest", "resourceVersion": "1"},
            "resourceVersionMatch",
            "FieldValueNotSupported",
            'Unsupported value: "Newest": supported values: "Exact", "NotOlderThan", ""',
        ),
        (
            {"resourceVersionMatch": "NotOlderThan", "resourceVersion": "1", "continue": "x"},
            "resourceVersionMatch",
            "FieldValueForbidden",
            "Forbidden: resourceVersionMatch is forbidden when continue is provided",
        ),
        (
            {"sendInitialEvents": "true"},
            "sendInitialEvents",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents is forbidden for list",
        ),
    ],
)
def test_invalid_list_options_are_422(
    http: httpx.Client, params: dict[str, str], field: str, reason: str, detail: str
) -> None:
    response = http.get(PATH, params=params)

    assert response.status_code == 422
    assert response.json() == _status(
        422,
        "Invalid",
        f"{_LIST_OPTIONS_INVALID}{field}: {detail}",
        details={
            "group": "meta.k8s.io",
            "kind": "ListOptions",
            "causes": [{"reason": reason, "message": detail, "field": field}],
        },
    )


def test_every_invalid_list_option_is_reported_at_once(http: httpx.Client) -> None:
    response = http.get(PATH, params={"resourceVersionMatch": "Exact", "continue": "x"})

    assert response.status_code == 422
    assert response.json()["message"] == (
        f"{_LIST_OPTIONS_INVALID}[resourceVersionMatch: Forbidden: resourceVersionMatch is "
        "forbidden unless resourceVersion is provided, resourceVersionMatch: Forbidden: "
        "resourceVersionMatch is forbidden when continue is provided]"
    )
    assert len(response.json()["details"]["causes"]) == 2


_NOT_A_NUMBER = (
    'resourceVersion: Invalid value: "v2": strconv.ParseUint: parsing "v2": invalid syntax'
)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # The watch cache's path hands the storage error back unmapped: a 500.
        ({"resourceVersion": "v2"}, _status(500, None, _NOT_A_NUMBER)),
        (
            {"resourceVersion": str(2**64)},
            _status(
                500,
                None,
                f'resourceVersion: Invalid value: "{2**64}": strconv.ParseUint: parsing '
                f'"{2**64}": value out of range',
            ),
        ),
        # etcd's path (paged or Exact) wraps it in a 400.
        (
            {"resourceVersion": "v2", "limit": "5"},
            _status(400, "BadRequest", f"invalid resource version: {_NOT_A_NUMBER}"),
        ),
        (
            {"resourceVersion": "v2", "resourceVersionMatch": "Exact"},
            _status(400, "BadRequest", f"invalid resource version: {_NOT_A_NUMBER}"),
        ),
    ],
)
def test_a_resource_version_that_is_not_a_number(
    http: httpx.Client, params: dict[str, str], expected: dict[str, Any]
) -> None:
    response = http.get(PATH, params=params)

    assert response.status_code == expected["code"]
    assert response.json() == expected


def test_continue_with_a_resource_version_is_400(http: httpx.Client, sandbox: Sandbox) -> None:
    for name in ("a", "b"):
        sandbox.create(_cm(name, v="1"))
    token = http.get(PATH, params={"limit": "1"}).json()["metadata"]["continue"]

    refused = http.get(PATH, params={"continue": token, "resourceVersion": "3"})
    zero = http.get(PATH, params={"continue": token, "resourceVersion": "0"})

    assert refused.status_code == 400
    assert refused.json() == _status(
        400, "BadRequest", "specifying resource version is not allowed when using continue"
    )
    assert _names(zero.json()) == [("b", "1")]


def test_pages_come_from_the_first_pages_collection_while_it_changes(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    """Later pages show the collection as of the first page (as etcd does), whatever is
    written meanwhile; and the whole collection is not rebuilt for each page."""
    for name in ("a", "b", "c", "d", "e"):
        http.post(PATH, json=_cm(name, v="1"))
    first = http.get(PATH, params={"limit": "2"}).json()
    http.put(f"{PATH}/c", json=_cm("c", v="2"))
    http.delete(f"{PATH}/d")
    http.post(PATH, json=_cm("bb", v="1"))
    http.post(PATH, json=_cm("f", v="1"))
    rebuilt = 0
    objects_at = sandbox.cluster.store.objects_at

    def counting(*args: Any) -> Any:
        nonlocal rebuilt
        rebuilt += 1
        return objects_at(*args)

    sandbox.cluster.store.objects_at = counting  # type: ignore[method-assign]
    second = http.get(PATH, params={"limit": "2", "continue": first["metadata"]["continue"]})
    third = http.get(PATH, params={"limit": "2", "continue": second.json()["metadata"]["continue"]})
    now = http.get(PATH).json()

    assert _names(first) == [("a", "1"), ("b", "1")]
    assert _names(second.json()) == [("c", "1"), ("d", "1")]
    assert _names(third.json()) == [("e", "1")]
    assert second.json()["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second.json()["metadata"]["remainingItemCount"] == 1
    assert "continue" not in third.json()["metadata"]
    assert rebuilt == 0
    assert _names(now) == [("a", "1"), ("b", "1"), ("bb", "1"), ("c", "2"), ("e", "1"), ("f", "1")]


def test_a_continue_past_compaction_expires_even_with_its_pages_kept(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    for name in ("a", "b", "c"):
        http.post(PATH, json=_cm(name, v="1"))
    first = http.get(PATH, params={"limit": "1"}).json()
    http.put(f"{PATH}/b", json=_cm("b", v="2"))
    sandbox.compact()

    response = http.get(PATH, params={"limit": "1", "continue": first["metadata"]["continue"]})

    assert response.status_code == 410
    assert response.json()["reason"] == "Expired"
