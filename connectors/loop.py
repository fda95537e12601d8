"""One event loop, in a thread of its own, for async connectors.

The runner is a blocking kafka-python consumer; an async connector's coroutines
are handed to this loop and the runner's thread waits for them. Connections an
async connector keeps (an ``httpx.AsyncClient``, say) stay on this one loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            new = asyncio.new_event_loop()
            threading.Thread(target=new.run_forever, name="dsr-connector-loop", daemon=True).start()
            _loop = new
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the shared loop and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, loop()).result(timeout)


def run_coroutines(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run several coroutines concurrently on the shared loop; results in order."""

    async def gather() -> list[T]:
        return list(await asyncio.gather(*coros))

    return run(gather())
