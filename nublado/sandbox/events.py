"""events.k8s.io/v1 Events: the core v1 Events seen through another version.

kube-apiserver stores one Event resource and serves it as both ``v1`` and
``events.k8s.io/v1``, converting fields at the edge: ``note`` is the core
``message``, ``regarding`` the ``involvedObject``, ``reportingController`` the
``reportingComponent``, and the core fields the newer API retired come back as
``deprecatedSource``, ``deprecatedFirstTimestamp``, ``deprecatedLastTimestamp``
and ``deprecatedCount``. The sandbox stores core Events only (the store keys
objects by kind name); the HTTP layer converts bodies going in and objects
coming out with these functions, so either version sees the other's writes.
"""

from __future__ import annotations

import re
from typing import Any

from .store import ApiError

__all__ = [
    "EVENTS_API_VERSION",
    "EVENTS_PREFIX",
    "from_stored",
    "selector_to_stored",
    "to_stored",
    "view_error",
]

Object = dict[str, Any]

EVENTS_API_VERSION = "events.k8s.io/v1"
EVENTS_PREFIX = "/apis/events.k8s.io/"

# events.k8s.io/v1 field -> core v1 field, where the names differ.
_TO_CORE = {
    "note": "message",
    "regarding": "involvedObject",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_FROM_CORE = {core: view for view, core in _TO_CORE.items()}


def to_stored(body: Object) -> Object:
    """An events.k8s.io/v1 Event (or a patch of one) as the core v1 Event it stores as.

    Top-level names move; everything else is shared. The apiVersion becomes
    ``v1`` when the body names one.
    """
    stored = {_TO_CORE.get(key, key): value for key, value in body.items()}
    if "apiVersion" in stored:
        stored["apiVersion"] = "v1"
    return stored


def from_stored(event: Object) -> Object:
    """A stored core v1 Event as events.k8s.io/v1 serves it."""
    view: Object = {"kind": "Event", "apiVersion": EVENTS_API_VERSION}
    for key, value in event.items():
        if key in ("kind", "apiVersion"):
            continue
        view[_FROM_CORE.get(key, key)] = value
    view.setdefault("eventTime", None)
    return view


def view_error(exc: ApiError) -> ApiError:
    """An error about a stored core Event, named as events.k8s.io names its resource.

    ``events "x" not found`` becomes ``events.events.k8s.io "x" not found``
    (and the same for conflicts), with the group in the details.
    """
    details = exc.details or {}
    if details.get("kind") != "events" or "group" in details:
        return exc
    message = exc.message.replace('events "', 'events.events.k8s.io "', 1)
    return ApiError(exc.code, exc.reason, message, {**details, "group": "events.k8s.io"})


_SELECTOR_FIELD = re.compile(r"(^|,)\s*(!?)([A-Za-z.]+)")


def selector_to_stored(selector: str | None) -> str | None:
    """A field selector on events.k8s.io names (``regarding.name=x``) in core names."""
    if not selector:
        return selector

    def rename(match: re.Match[str]) -> str:
        field = match.group(3)
        head, dot, rest = field.partition(".")
        core = _TO_CORE.get(head, head)
        if core == "source" and rest:
            # The core selector has one ``source`` field: the component.
            return f"{match.group(1)}{match.group(2)}source"
        return f"{match.group(1)}{match.group(2)}{core}{dot}{rest}"

    return _SELECTOR_FIELD.sub(rename, selector)
