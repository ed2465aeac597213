"""`LoopMemo`: the running loop remembered, and asked again once another loop runs."""

from __future__ import annotations

import asyncio

import pytest

from nublado.loop import LoopMemo


def test_the_memo_follows_the_loop_that_runs() -> None:
    memo = LoopMemo()

    async def both() -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
        return memo.get(), asyncio.get_running_loop()

    first, running = asyncio.run(both())
    assert first is running
    second, running = asyncio.run(both())  # a new loop: the first is closed, not running
    assert second is running and second is not first
    with pytest.raises(RuntimeError):
        memo.get()  # no loop runs here: asyncio's own error, as before
