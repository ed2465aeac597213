"""The sandbox's clock: timestamps as Kubernetes writes them, and event names.

A leaf module (standard library only), so the cluster and its controllers can
all read the time without importing each other.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

__all__ = [
    "TIME_FORMAT",
    "event_name",
    "format_micro_time",
    "now_micro_time",
    "now_timestamp",
    "shifted_timestamp",
    "unix_nano",
]

# metav1.Time on the wire: RFC 3339, whole seconds, UTC.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_lock = threading.Lock()
_last_nano = 0


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def now_timestamp(offset: float = 0.0) -> str:
    """The time ``offset`` seconds from now, as Kubernetes writes timestamps.

    The text of the current second is kept: a write reads the time several
    times (creation, managed fields, events), and formatting costs more than
    the rest of reading the clock.
    """
    global _second  # one clock for the process; replacing a tuple is atomic
    if offset:
        return (datetime.now(UTC) + timedelta(seconds=offset)).strftime(TIME_FORMAT)
    second = int(time.time())  # datetime.now's clock, truncated as the format truncates
    cached = _second
    if cached[0] == second:
        return cached[1]
    text = datetime.fromtimestamp(second, UTC).strftime(TIME_FORMAT)
    _second = (second, text)
    return text


def shifted_timestamp(timestamp: str, seconds: float) -> str:
    """A timestamp moved by ``seconds`` (a shortened grace period moves a deadline)."""
    moment = datetime.strptime(timestamp, TIME_FORMAT).replace(tzinfo=UTC)
    return (moment + timedelta(seconds=seconds)).strftime(TIME_FORMAT)


def format_micro_time(moment: datetime) -> str:
    """A time as metav1.MicroTime writes it (RFC 3339, six fractional digits, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_micro_time() -> str:
    """The current time as a MicroTime (an Event's eventTime, a Lease's renewTime)."""
    return format_micro_time(datetime.now(UTC))


def unix_nano() -> int:
    """The current time in nanoseconds since the epoch, strictly increasing across calls.

    Two events recorded within the clock's resolution would otherwise share a
    name; bumping by one keeps names unique and in the order they were made.
    """
    global _last_nano  # one clock for the process, as the recorders have
    with _lock:
        _last_nano = max(time.time_ns(), _last_nano + 1)
        return _last_nano


def event_name(involved_name: str) -> str:
    """An Event's name as client-go's recorder makes it: ``<object name>.<hex of UnixNano>``.

    Names so made sort in the order the events were recorded, so a list (by
    name) comes in time order, as `kubectl describe` shows it.
    """
    return f"{involved_name}.{unix_nano():x}"
