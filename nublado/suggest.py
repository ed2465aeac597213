"""A "did you mean" for a misspelt key: the known key it is closest to, if any.

Kept apart from the configuration package, which imports pydantic, so that
light commands (the purger) can use it too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest_name"]


def closest_name(key: str, known: Iterable[str]) -> str | None:
    """The name in ``known`` that ``key`` most likely meant (case aside), if one is close."""
    by_lower = {name.lower(): name for name in known if name != key}
    close = difflib.get_close_matches(key.lower(), by_lower, 1, 0.75)
    return by_lower[close[0]] if close else None
