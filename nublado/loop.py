"""The running event loop, remembered rather than asked for at every call."""

from __future__ import annotations

import asyncio

__all__ = ["LoopMemo"]


class LoopMemo:
    """The event loop running here, asked of asyncio only when it changed.

    ``asyncio.get_running_loop`` makes a getpid system call on Python 3.11 (a
    fork check) each time, and system calls are dear on the kind of VM the
    benchmarks run on; hot paths (a Kubernetes request, a lab service wait)
    need the loop once each. The remembered loop is still the one running
    here whenever it runs at all: a loop runs in one thread at a time and its
    owner is used from one thread, so a remembered loop that is not running
    means another loop took over (a test's next loop, say) and asyncio is
    asked again.
    """

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
        return loop
