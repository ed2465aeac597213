"""metav1.Time and metav1.MicroTime as apimachinery decodes and writes them.

``Time.UnmarshalJSON`` reads a value with Go's ``time.Parse(time.RFC3339, …)``
and ``MicroTime.UnmarshalJSON`` with the layout
``2006-01-02T15:04:05.000000Z07:00``, which demands exactly six fractional
digits (a Lease renewTime of ``…00Z`` or ``…00.123Z`` is refused). Both are
written back in UTC: a Time to the second (``…05Z``), a MicroTime with six
digits (``…05.000000Z``). A value that does not parse gets Go's own error
text (``parsing time "…" as "…": cannot parse "Z" as ".000000"``), which
kube-apiserver returns in its 400.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache

__all__ = ["MICRO_LAYOUT", "RFC3339", "TimeParseError", "canonical_time"]

RFC3339 = "2006-01-02T15:04:05Z07:00"
MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"


class TimeParseError(ValueError):
    """A value Go's time.Parse refuses; the text is Go's."""


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _digit(text: str, index: int) -> bool:
    return index < len(text) and "0" <= text[index] <= "9"


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


@lru_cache(maxsize=4096)
def canonical_time(value: str, micro: bool) -> str:
    """The value as a metav1.Time (``micro`` False) or MicroTime writes it, or `TimeParseError`."""
    layout = MICRO_LAYOUT if micro else RFC3339

    def cannot(rest: str, element: str) -> TimeParseError:
        return TimeParseError(
            f"parsing time {_quote(value)} as {_quote(layout)}: cannot parse "
            f"{_quote(rest)} as {_quote(element)}"
        )

    def out_of_range(what: str) -> TimeParseError:
        return TimeParseError(f"parsing time {_quote(value)}: {what} out of range")

    def literal(rest: str, text: str) -> str:
        if not rest.startswith(text):
            raise cannot(rest, text)
        return rest[len(text) :]

    def number(rest: str, element: str, fixed: bool) -> tuple[int, str]:
        if not _digit(rest, 0):
            raise cannot(rest, element)
        if not _digit(rest, 1):
            if fixed:
                raise cannot(rest, element)
            return int(rest[0]), rest[1:]
        return int(rest[:2]), rest[2:]

    rest = value
    if len(rest) < 4 or not rest[:4].isdigit():
        raise cannot(rest, "2006")
    year, rest = int(rest[:4]), rest[4:]
    rest = literal(rest, "-")
    month, rest = number(rest, "01", True)
    if not 1 <= month <= 12:
        raise out_of_range("month")
    rest = literal(rest, "-")
    day, rest = number(rest, "02", True)
    rest = literal(rest, "T")
    hour, rest = number(rest, "15", False)
    if hour >= 24:
        raise out_of_range("hour")
    rest = literal(rest, ":")
    minute, rest = number(rest, "04", True)
    if minute >= 60:
        raise out_of_range("minute")
    rest = literal(rest, ":")
    second, rest = number(rest, "05", True)
    if second >= 60:
        raise out_of_range("second")
    micros = 0
    if micro:
        if len(rest) < 7 or rest[0] not in ".," or not rest[1:7].isdigit():
            raise cannot(rest, ".000000")
        micros, rest = int(rest[1:7]), rest[7:]
    elif len(rest) >= 2 and rest[0] in ".," and _digit(rest, 1):
        # time.Parse takes any fraction after the seconds; a Time keeps none of it.
        end = 2
        while _digit(rest, end):
            end += 1
        rest = rest[end:]
    offset = 0
    if rest.startswith("Z"):
        rest = rest[1:]
    else:
        zone = rest
        if len(zone) < 6 or zone[3] != ":" or zone[0] not in "+-":
            raise cannot(zone, "Z07:00")
        if not (zone[1:3].isdigit() and zone[4:6].isdigit()):
            raise cannot(zone, "Z07:00")
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 24:
            raise out_of_range("time zone offset hour")
        if minutes > 60:
            raise out_of_range("time zone offset minute")
        offset = (hours * 60 + minutes) * (1 if zone[0] == "+" else -1)
        rest = zone[6:]
    if rest:
        raise TimeParseError(f"parsing time {_quote(value)}: extra text: {_quote(rest)}")
    if not 1 <= day <= _days_in(month, year):
        raise out_of_range("day")
    try:
        moment = datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)
        moment -= timedelta(minutes=offset)
    except (ValueError, OverflowError):
        return value  # year 0 and the like: beyond what the sandbox needs to rewrite
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    return f"{text}.{moment.microsecond:06d}Z" if micro else f"{text}Z"
