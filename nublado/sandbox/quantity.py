"""Kubernetes resource quantities (``500m``, ``3Gi``, ``1e3``) for the sandbox.

Quota admission adds and compares quantities and writes them back into
messages and ``status.used`` the way apimachinery's ``Quantity.String()``
does, so the numbers a test reads are the numbers a cluster would print. The
sandbox imports nothing of the controller, so it keeps this small parser of
its own: values are exact fractions, and each quantity remembers whether it
was written in binary (``Ki``), decimal (``k``) or exponent form, because
the canonical text depends on it. Values are kept as whole nano-units, as
apimachinery rounds them (up) to nine decimal places, so arithmetic is on ints.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["BINARY", "DECIMAL", "EXPONENT", "Quantity", "QuantityError", "parse_quantity"]

BINARY = "BinarySI"
DECIMAL = "DecimalSI"
EXPONENT = "DecimalExponent"

_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12}
_DECIMAL_SUFFIXES.update({"P": 15, "E": 18})
_DECIMAL_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {power: suffix for suffix, power in _BINARY_SUFFIXES.items()}
_PATTERN = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exponent>[eE][+-]?\d+)|(?P<decimal>[numkMGTPE]?))$"
)
_GIGA = 10**9


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """A quantity in nano-units and the format its canonical text is written in."""

    nanos: int
    format: str = DECIMAL

    @classmethod
    def of(cls, value: int | Fraction, fmt: str = DECIMAL) -> Quantity:
        """The quantity ``value`` (in whole units), rounded up to nano-units."""
        return cls(math.ceil(Fraction(value) * _GIGA), fmt)

    @property
    def value(self) -> Fraction:
        """The value in whole units."""
        return Fraction(self.nanos, _GIGA)

    def __add__(self, other: Quantity) -> Quantity:
        # apimachinery keeps the left operand's format.
        return Quantity(self.nanos + other.nanos, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos - other.nanos, self.format)

    def __str__(self) -> str:
        return _canonical(self.nanos, self.format)


def parse_quantity(text: object) -> Quantity:
    """Parse a quantity as the API server does; numbers (YAML ``1.0``) are accepted too."""
    if isinstance(text, str):
        return _parse_text(text)
    if isinstance(text, bool):
        raise QuantityError(f"quantities must match the regular expression: {text!r}")
    if isinstance(text, int | float):
        text = repr(text) if isinstance(text, float) else str(text)
    if not isinstance(text, str):
        raise QuantityError(f"quantities must be strings, not {type(text).__name__}")
    return _parse_text(text)


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Quantity:
    """Parse one quantity string (cached: a cluster's objects repeat a few values)."""
    match = _PATTERN.match(text.strip())
    if match is None:
        raise QuantityError(
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        )
    number = Fraction(match["number"])
    if match["binary"]:
        return Quantity.of(number * 1024 ** _BINARY_SUFFIXES[match["binary"]], BINARY)
    if match["exponent"]:
        return Quantity.of(number * Fraction(10) ** int(match["exponent"][1:]), EXPONENT)
    return Quantity.of(number * Fraction(10) ** _DECIMAL_SUFFIXES[match["decimal"] or ""])


def _canonical(nanos: int, fmt: str) -> str:
    if nanos == 0:
        return "0"
    if fmt == BINARY and nanos % _GIGA == 0 and abs(nanos) >= 1024 * _GIGA:
        whole = nanos // _GIGA
        power = 0
        while power < 6 and whole % 1024 == 0:
            whole //= 1024
            power += 1
        return f"{whole}{_BINARY_BY_POWER.get(power, '')}"
    # Decimal: the largest exponent, a multiple of three, that leaves an integer mantissa.
    exponent = -9
    mantissa = nanos
    while exponent < 18 and mantissa % 1000 == 0:
        mantissa //= 1000
        exponent += 3
    if fmt == EXPONENT:
        return f"{mantissa}" if exponent == 0 else f"{mantissa}e{exponent}"
    return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"
