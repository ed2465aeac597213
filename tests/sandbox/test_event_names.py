"""Events are named as client-go's recorder names them: ``<object name>.<hex of UnixNano>``.

So names are unique and sort in the order the events were recorded, and a
list (which comes in name order) shows a pod's story from Scheduled on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from nublado.sandbox.clock import event_name, unix_nano
from nublado.sandbox.server import Sandbox


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    assert sandbox.url is not None
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": "p"}}).is_success
        yield client


def test_event_name_is_object_name_dot_hex_unix_nano() -> None:
    before = time.time_ns()
    name = event_name("lab-nb")
    after = time.time_ns()

    match = re.fullmatch(r"lab-nb\.([0-9a-f]+)", name)
    assert match is not None
    assert before <= int(match.group(1), 16) <= after + 1


def test_unix_nano_strictly_increases() -> None:
    stamps = [unix_nano() for _ in range(1000)]

    assert stamps == sorted(set(stamps))


def test_pod_events_list_in_the_order_they_happened(http: httpx.Client, sandbox: Sandbox) -> None:
    pod = {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "lab:1"}]}}
    assert http.post("/api/v1/namespaces/p/pods", json=pod).status_code == 201
    sandbox.wait_for(lambda: (sandbox.get("Pod", "x", "p") or {})["status"]["phase"] == "Running")

    events = http.get("/api/v1/namespaces/p/events").json()["items"]

    names = [e["metadata"]["name"] for e in events]
    assert all(re.fullmatch(r"x\.[0-9a-f]+", n) for n in names)
    assert len(set(names)) == len(names)
    reasons = [e["reason"] for e in events]
    assert reasons[0] == "Scheduled"
    assert reasons[-2:] == ["Created", "Started"]
