"""Bounded retries with exponential backoff, full jitter and ``Retry-After``.

Upstream retried GAR with fixed sleeps and an extra unconditional call, and
the Docker client not at all (DECISIONS.md: bounded, with backoff). Both
clients here share this policy. The sleep and random (``rand``) functions are fields so
that tests run instantly and deterministically.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    An unparsable value is None (fall back to backoff); a date in the past is 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now if now is not None else datetime.now(tz=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    ``attempts`` counts every try, the first included. Before try ``n + 1`` the
    delay is uniform in ``[0, min(max_delay, base_delay * 2 ** (n - 1))]``
    (full jitter), unless the server said ``Retry-After``: then that, capped at
    ``max_retry_after`` so a registry cannot stall a refresh for an hour.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a retry policy needs at least one attempt, not {self.attempts}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return self.rand() * ceiling

    def should_retry(self, attempt: int) -> bool:
        """Whether another try follows failed try number ``attempt``."""
        return attempt < self.attempts

    async def wait(self, attempt: int, retry_after: float | None = None) -> None:
        """Sleep before the next try."""
        await self.sleep(self.delay(attempt, retry_after))
