"""Query parameters every sandbox handler parses the way kube-apiserver does.

Kept apart from the HTTP app so that the list and watch code
(`nublado.sandbox.watch`) and `nublado.sandbox.protocol` share them without
importing each other.
"""

from __future__ import annotations

from .store import ApiError

__all__ = ["parse_bool", "parse_timeout_seconds"]

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(value: str | None, name: str) -> bool:
    """Go's strconv.ParseBool, as the API server parses boolean query parameters."""
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax ({name})')


def parse_timeout_seconds(text: str | None, default: float) -> float:
    """timeoutSeconds of a list or watch: a whole number of seconds, else 400."""
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError.bad_request(
            f'invalid value for timeoutSeconds: strconv.ParseInt: parsing "{text}": invalid syntax'
        ) from None
    return float(value) if value > 0 else default
