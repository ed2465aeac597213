"""Kubernetes resource quantities (``500m``, ``1Gi``, ``2e3``): parse, compare, print.

The sandbox needs them where kube-apiserver does: to refuse a body whose
quantity does not parse (a 400 with apimachinery's own message), to compare
requests with limits, to add up quota usage, and to print a quantity in the
canonical form the real server's messages and ``status.used`` use (``1.5`` is
``1500m``, ``1024Mi`` is ``1Gi``). Values are exact fractions, so no float
rounding sneaks into a comparison; sums keep the left operand's format, as
apimachinery's ``Add`` does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Literal

__all__ = [
    "Quantity",
    "QuantityError",
    "canonical_quantity",
    "check_quantity",
    "decode_quantity",
    "parse_quantity",
]

QuantityFormat = Literal["BinarySI", "DecimalSI", "DecimalExponent"]

_SPLIT = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_WRONG = f"quantities must match the regular expression '{_SPLIT}'"
SUFFIX_WRONG = "unable to parse quantity's suffix"
NUMERIC_WRONG = "unable to parse numeric part of quantity"

# The shape apimachinery's parseQuantityString accepts: sign, digits with at
# most one point, suffix letters, an optional signed exponent.
_SHAPE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*)([-+]?[0-9]*)")
# Every well-formed quantity, for a check that needs no value.
_VALID = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]+)?"
)
_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXPONENT = {v: k for k, v in _BINARY_SUFFIXES.items()}
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    """A quantity that does not parse; the text is apimachinery's error message."""


@dataclass(frozen=True)
class Quantity:
    """An exact quantity and the format its suffix asked for."""

    value: Fraction
    format: QuantityFormat = "DecimalSI"

    @classmethod
    def of(cls, value: int | Fraction, form: QuantityFormat = "DecimalSI") -> Quantity:
        """The quantity ``value`` in whole units (a count, a sum of ports)."""
        return cls(Fraction(value), form)

    @property
    def nanos(self) -> int:
        """The value in nano-units, rounded up as the API server stores it."""
        return math.ceil(self.value / _NANO)

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    def __str__(self) -> str:
        return self.canonical()

    def canonical(self) -> str:
        """The canonical text, as apimachinery's ``Quantity.String`` writes it."""
        value = self.value
        if value == 0:
            return "0"
        form = self.format
        if form == "BinarySI" and (-1024 < value < 1024 or value.denominator != 1):
            form = "DecimalSI"
        if form == "BinarySI":
            number = int(value)
            for exponent in (60, 50, 40, 30, 20, 10):
                if number % (1 << exponent) == 0:
                    return f"{number >> exponent}{_BINARY_BY_EXPONENT[exponent]}"
            return str(number)
        # Precision below a nano unit is rounded up, away from zero.
        scaled = value / _NANO
        mantissa = -((-scaled.numerator) // scaled.denominator) if value > 0 else int(scaled)
        exponent = -9
        while mantissa % 1000 == 0 and exponent < 18:
            mantissa //= 1000
            exponent += 3
        if form == "DecimalExponent":
            return f"{mantissa}e{exponent}" if exponent else str(mantissa)
        return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"


def check_quantity(text: str) -> None:
    """Raise `QuantityError` when ``text`` is not a quantity (cheaper than parsing it)."""
    if _VALID.fullmatch(text) is None:
        parse_quantity(text)


def parse_quantity(text: object) -> Quantity:
    """Parse a quantity as ``resource.ParseQuantity`` does, or raise `QuantityError`.

    A JSON number (``cpu: 1.5`` in YAML) is read as its text, as the API
    server's decoder does.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise QuantityError(FORMAT_WRONG)
    return _parse_text(text if isinstance(text, str) else repr(text))


def decode_quantity(value: object) -> Quantity:
    """A quantity as ``Quantity.UnmarshalJSON`` reads a JSON value: text trimmed of spaces.

    The one parser of stored values: the decoder canonicalises with it, and
    quota and limit checks read with it, so they cannot disagree.
    """
    if isinstance(value, str):
        return _parse_text(value.strip())
    return parse_quantity(value)


@lru_cache(maxsize=4096)
def canonical_quantity(text: str) -> str:
    """The text a quantity written as ``text`` is stored and returned as (``1.0`` -> ``1``)."""
    return _parse_text(text.strip()).canonical()


@lru_cache(maxsize=4096)
def _parse_text(text: str) -> Quantity:
    if not text:
        raise QuantityError(FORMAT_WRONG)
    match = _SHAPE.fullmatch(text)
    if match is None:
        raise QuantityError(FORMAT_WRONG)
    sign, whole, fraction, letters, exponent_text = match.groups()
    fraction = fraction or ""
    if not whole and not fraction:
        raise QuantityError(NUMERIC_WRONG)
    suffix = letters + exponent_text
    number = Fraction(int(whole or "0")) + (
        Fraction(int(fraction), 10 ** len(fraction)) if fraction else 0
    )
    form: QuantityFormat
    if suffix in _DECIMAL_SUFFIXES:
        number *= Fraction(10) ** _DECIMAL_SUFFIXES[suffix]
        form = "DecimalSI"
    elif suffix in _BINARY_SUFFIXES:
        number *= 1 << _BINARY_SUFFIXES[suffix]
        form = "BinarySI"
    elif letters in ("e", "E") and exponent_text.lstrip("+-").isdigit():
        number *= Fraction(10) ** int(exponent_text)
        form = "DecimalExponent"
    else:
        raise QuantityError(SUFFIX_WRONG)
    if sign == "-":
        number = -number
    # Below a nano unit the value is rounded up, as the API server stores it.
    if (number / _NANO).denominator != 1:
        scaled = number / _NANO
        number = Fraction(-((-scaled.numerator) // scaled.denominator)) * _NANO
    return Quantity(number, form)
