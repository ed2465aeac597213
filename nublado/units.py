"""Quantities people write in configuration files: memory, CPU, sizes, durations.

Every parser here takes what a person typed (a string, or a number YAML gave us)
and returns one canonical value: bytes as `int`, CPU as `float` cores, durations
as `timedelta`. Each raises `ValueError` with a message naming the value and
the reason, so the configuration loader can prefix it with the field's path.

The accepted grammars are those of the upstream controller (spec/images-tools.md
sections 5.2, 7.1 and 7.3), so existing configurations keep their meaning.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

__all__ = [
    "bytes_to_si",
    "cpu_to_cores",
    "format_cpu",
    "format_duration",
    "human_size_to_bytes",
    "memory_to_bytes",
    "parse_cli_duration",
    "parse_duration",
]

_PREFIX_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_BINARY_UNITS = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"]


def _reject_bool(value: object, what: str) -> None:
    """YAML turns ``yes``/``true`` into booleans; they are never quantities."""
    if isinstance(value, bool):
        raise ValueError(f"not {what}: {value!r} (a boolean)")


def _parse_number(text: str) -> int | float | None:
    """Parse a finite plain number (int literal first, for exactness), else None."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def memory_to_bytes(value: str | int | float) -> int:
    """Convert a memory quantity (``3Gi``, ``500M``, ``1e9``) to a whole number of bytes.

    Single-letter prefixes are decimal (``k``, ``M``, ``G``; ``m`` also means mega),
    a prefix followed by ``i`` is binary; a trailing ``B``/``b`` after a prefix is
    ignored, a unit that is only ``b``/``bit(s)`` means bits. Fractions of a byte
    are truncated.
    """
    _reject_bool(value, "a quantity")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a quantity: {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"not a quantity: {value!r}")
    text = value.strip()
    plain = _parse_number(text)
    if plain is not None:
        return int(plain)
    first_letter = next((i for i, c in enumerate(text) if c.isalpha()), None)
    if first_letter is None or first_letter == 0:
        raise ValueError(f"not a quantity: {value!r}")
    number = _parse_number(text[:first_letter])
    unit = text[first_letter:]
    if number is None:
        raise ValueError(f"not a quantity: {value!r}")
    if unit in ("b", "bit", "bits"):
        return int(number / 8)
    if unit == "B" or unit.lower() in ("byte", "bytes"):
        return int(number)
    prefix = unit.rstrip("Bb").lower()
    if len(prefix) == 1 and prefix in _PREFIX_POWERS:
        return int(number * 1000 ** _PREFIX_POWERS[prefix])
    if len(prefix) == 2 and prefix[0] in _PREFIX_POWERS and prefix[1] == "i":
        return int(number * 1024 ** _PREFIX_POWERS[prefix[0]])
    raise ValueError(f"not a quantity: {value!r}")


def bytes_to_si(n: int) -> str:
    """Write a byte count the way lab size labels show it (``3Gi``, ``117.738Mi``).

    Despite the (upstream) name the prefixes are binary: the largest power of 1024
    that keeps the value at least 1, at most six significant digits. Counts below
    1024 are the bare number, and 0 is ``0b`` as upstream prints it.
    """
    if n == 0:
        return "0b"
    magnitude = abs(n)
    if magnitude < 1024:
        return f"{n:g}"
    power = 0
    while power < len(_BINARY_UNITS) and magnitude >= 1024 ** (power + 1):
        power += 1
    return f"{n / 1024**power:g}{_BINARY_UNITS[power - 1]}"


_CPU_ERROR = (
    "CPU must be specified as a whole number of milli-cores, like 500m, or a decimal"
    " number with no more than three places of precision, like 1.234"
)
_MILLICORES = re.compile(r"[0-9]+m")


def cpu_to_cores(value: str | int | float) -> float:
    """Convert a CPU quantity (``450m``, ``1``, ``1.234``) to cores."""
    _reject_bool(value, "a CPU quantity")
    text = str(value).strip()
    if _MILLICORES.fullmatch(text):
        return int(text[:-1]) / 1000
    try:
        cores = float(text)
    except ValueError:
        raise ValueError(f"not a CPU quantity: {value!r}: {_CPU_ERROR}") from None
    if not math.isfinite(cores):
        raise ValueError(f"not a CPU quantity: {value!r}: {_CPU_ERROR}")
    if "." in text:
        fraction = re.match(r"[0-9]*", text.split(".", 1)[1])
        if fraction is None or len(fraction.group()) > 3:
            raise ValueError(f"not a CPU quantity: {value!r}: {_CPU_ERROR}")
    return cores


def format_cpu(cores: float) -> str:
    """Write cores as lab size labels and ``CPU_LIMIT`` do: Python's float text (``1.0``)."""
    return str(float(cores))


_DECIMAL_SUFFIXES = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}
_DECIMAL_SUFFIXES |= {"T": 10**12, "P": 10**15, "E": 10**18}
_BINARY_SUFFIXES = {"ki": 2**10, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
_BINARY_SUFFIXES |= {"Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def human_size_to_bytes(value: str | int | float) -> int:
    """Convert a purger size threshold (``10B``, ``1.5k``, ``1Mi``) to bytes.

    Suffixes are case-sensitive (``m`` is refused rather than guessed). Unlike
    upstream, booleans and negative sizes are refused: a threshold of ``yes`` or
    ``-5`` is always a typo.
    """
    _reject_bool(value, "a size")
    if isinstance(value, int):
        return _non_negative_size(value, value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"Could not convert {value!r} to integer")
        return _non_negative_size(int(value), value)
    if not isinstance(value, str):
        raise ValueError(f"not a size: {value!r}")
    text = value.strip()
    if text.endswith(("B", "b")):
        text = text[:-1].strip()
    try:
        whole = int(text)
    except ValueError:
        pass
    else:
        return _non_negative_size(whole, value)
    multiplier = 1
    for suffix, factor in (_DECIMAL_SUFFIXES | _BINARY_SUFFIXES).items():
        if text.endswith(suffix):
            multiplier = factor
            text = text[: -len(suffix)].strip()
            break
    try:
        mantissa = float(text)
    except ValueError:
        raise ValueError(f"Could not convert {value!r} to integer") from None
    if not math.isfinite(mantissa):
        raise ValueError(f"Could not convert {value!r} to integer")
    if mantissa < 0:
        raise ValueError(f"size must not be negative: {value!r}")
    result = mantissa * multiplier
    if multiplier % 10 != 0:
        result = float(int(result + 0.5))
    if not result.is_integer():
        raise ValueError(f"Could not convert {value!r} to integer")
    return _non_negative_size(int(result), value)


def _non_negative_size(size: int, original: object) -> int:
    if size < 0:
        raise ValueError(f"size must not be negative: {original!r}")
    return size


_DURATION_UNITS: list[tuple[str, str]] = [
    ("weeks", "weeks|week|w"),
    ("days", "days|day|d"),
    ("hours", "hours|hour|hr|h"),
    ("minutes", "minutes|minute|mins|min|m"),
    ("seconds", "seconds|second|secs|sec|s"),
]
_DURATION = re.compile(
    r"\s*"
    + r"\s*".join(rf"(?:(?P<{name}>[0-9]+)\s*(?:{units}))?" for name, units in _DURATION_UNITS)
    + r"\s*"
)


def _timedelta(original: object, **parts: float) -> timedelta:
    try:
        return timedelta(**parts)
    except OverflowError:
        raise ValueError(f"duration too long: {original!r}") from None


def parse_cli_duration(value: str) -> timedelta:
    """Parse the unit form of a duration (``8d``, ``4h 3minutes``, ``5w4d``).

    Groups are whole numbers followed by a unit, largest unit first; bare numbers
    are refused (on a command line ``-t 5`` is ambiguous).
    """
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or not any(match.groupdict().values()):
        raise ValueError(
            f"not a duration: {value!r} (expected groups like 1w 2d 3h 4m 5s, largest first)"
        )
    parts = {name: int(amount) for name, amount in match.groupdict().items() if amount}
    return _timedelta(value, **parts)


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse a configuration duration: a number of seconds, or the unit form (``1h 30m``)."""
    _reject_bool(value, "a duration")
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"not a duration: {value!r}")
        return _timedelta(value, seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    seconds = _parse_number(value)
    if seconds is not None:
        return _timedelta(value, seconds=seconds)
    return parse_cli_duration(value)


def format_duration(duration: timedelta) -> str:
    """Write a duration in the unit form `parse_duration` reads back (``1h30m``).

    Fractions of a second are kept by writing plain seconds (``1.5``).
    """
    if duration.microseconds:
        return str(duration.total_seconds())
    total = int(duration.total_seconds())
    if total < 0:
        return str(total)
    if total == 0:
        return "0s"
    text = ""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            text += f"{amount}{unit}"
    return text
