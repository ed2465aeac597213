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
    "validate_create",
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


_LIMITS = {"reportingInstance": 128, "action": 128, "reason": 128}
_NOTE_LIMIT = 1024


def _required(field: str) -> tuple[str, str, str]:
    return field, "FieldValueRequired", "Required value"


def _invalid(field: str, detail: str, value: str = "") -> tuple[str, str, str]:
    return field, "FieldValueInvalid", f'Invalid value: "{value}": {detail}'


def _legacy_errors(event: Object, namespace: str) -> list[tuple[str, str, str]]:
    """What kube-apiserver checks of every Event, whatever version creates it."""
    errors: list[tuple[str, str, str]] = []
    involved_namespace = (event.get("involvedObject") or {}).get("namespace") or ""
    mismatch = _invalid("involvedObject.namespace", "does not match event.namespace")
    if not event.get("eventTime"):
        if involved_namespace and involved_namespace != namespace:
            errors.append(
                _invalid(
                    "involvedObject.namespace", "does not match event.namespace", involved_namespace
                )
            )
        elif not involved_namespace and namespace not in ("", "default"):
            errors.append(mismatch)
        return errors
    if not involved_namespace and namespace not in ("default", "kube-system"):
        errors.append(mismatch)
    if not event.get("reportingComponent"):
        errors.append(_required("reportingController"))
    for field, limit in _LIMITS.items():
        value = str(event.get(field) or "")
        if not value:
            errors.append(_required(field))
        elif len(value) > limit:
            errors.append(_invalid(field, f"can have at most {limit} characters"))
    if len(str(event.get("message") or "")) > _NOTE_LIMIT:
        errors.append(_invalid("message", f"can have at most {_NOTE_LIMIT} characters"))
    return errors


def validate_create(event: Object, namespace: str) -> None:
    """events.k8s.io/v1's checks of a new Event (given in its stored, core form).

    The newer API is strict where core v1 stays lenient for old clients: an
    ``eventTime``, a ``Normal`` or ``Warning`` type, a well-formed series and
    none of the deprecated fields. 422 with every failed field, as
    kube-apiserver answers.
    """
    errors = _legacy_errors(event, namespace)
    series = event.get("series")
    if series is not None:
        if int(series.get("count") or 0) < 2:
            errors.append(_invalid("series.count", "should be at least 2"))
        if not series.get("lastObservedTime"):
            errors.append(_required("series.lastObservedTime"))
    if not event.get("eventTime"):
        errors.append(_required("eventTime"))
    event_type = event.get("type") or ""
    if event_type not in ("Normal", "Warning"):
        errors.append(_invalid("type", f"has invalid value: {event_type}"))
    for field in ("firstTimestamp", "lastTimestamp"):
        if event.get(field):
            errors.append(_invalid(field, "needs to be unset"))
    if event.get("count"):
        errors.append(_invalid("count", "needs to be unset"))
    source = event.get("source") or {}
    if source.get("component") or source.get("host"):
        errors.append(_invalid("source", "needs to be unset"))
    if not errors:
        return
    name = (event.get("metadata") or {}).get("name") or ""
    listed = [f"{field}: {detail}" for field, _, detail in errors]
    summary = listed[0] if len(listed) == 1 else f"[{', '.join(listed)}]"
    raise ApiError(
        422,
        "Invalid",
        f'Event.events.k8s.io "{name}" is invalid: {summary}',
        {
            "name": name,
            "group": "events.k8s.io",
            "kind": "Event",
            "causes": [
                {"reason": reason, "message": detail, "field": field}
                for field, reason, detail in errors
            ],
        },
    )


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
