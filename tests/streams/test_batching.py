"""``streams.batching``: an agent's batches, on Faust's in-memory channels."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from streams import batching

#: Only against a hang: every wait here is on a condition.
HANG_S = 30


class Handled:
    """An agent that records each batch it is handed and holds it until let go."""

    def __init__(self, max_: int) -> None:
        self.app = faust.App(
            "test-batching", store="memory://", web_enabled=False, Stream=batching.Stream
        )
        self.batches: list[list[Any]] = []
        self.holding = asyncio.Event()
        self.let_go = asyncio.Event()
        self.failed = asyncio.Event()

        async def handle(stream: faust.StreamT[Any]) -> None:
            async for events in batching.ready(stream, max_):
                self.batches.append(events)
                self.holding.set()
                await self.let_go.wait()
                self.let_go.clear()
                if any(e.value == "poison" for e in events):
                    self.failed.set()
                    raise RuntimeError("this batch cannot be handled")

        self.agent = self.app.agent(self.app.channel())(handle)

    async def next_batch(self) -> list[Any]:
        await asyncio.wait_for(self.holding.wait(), HANG_S)
        self.holding.clear()
        return [e.value for e in self.batches[-1]]


def run(scenario: Callable[[Handled], Awaitable[None]]) -> Handled:
    """``scenario`` on an agent taking batches of at most 3, in an event loop of its own."""

    async def main() -> Handled:
        handled = Handled(max_=3)
        await scenario(handled)
        return handled

    return asyncio.run(main())


def test_an_event_alone_is_handed_over_without_waiting_for_more() -> None:
    async def scenario(handled: Handled) -> None:
        async with handled.agent.test_context() as agent:
            await agent.put("a", wait=False)
            assert await handled.next_batch() == ["a"]

    run(scenario)


def test_what_arrives_during_a_batch_comes_next_at_most_max_at_once() -> None:
    async def scenario(handled: Handled) -> None:
        async with handled.agent.test_context() as agent:
            await agent.put("a", wait=False)
            assert await handled.next_batch() == ["a"]
            for value in "bcdef":
                await agent.put(value, wait=False)
            handled.let_go.set()
            assert await handled.next_batch() == ["b", "c", "d"]
            handled.let_go.set()
            assert await handled.next_batch() == ["e", "f"]

    run(scenario)


def test_a_batch_is_acknowledged_only_when_the_next_is_asked_for() -> None:
    async def scenario(handled: Handled) -> None:
        async with handled.agent.test_context() as agent:
            await agent.put("a", wait=False)
            await handled.next_batch()
            [first] = handled.batches[0]
            assert not first.message.acked  # being handled: its offset is not committed
            await agent.put("b", wait=False)
            handled.let_go.set()
            await handled.next_batch()
            assert first.message.acked

    run(scenario)


def test_a_batch_whose_handling_fails_is_never_acknowledged() -> None:
    async def scenario(handled: Handled) -> None:
        async with handled.agent.test_context() as agent:
            await agent.put("poison", wait=False)
            await handled.next_batch()
            handled.let_go.set()
            await asyncio.wait_for(handled.failed.wait(), HANG_S)
            await agent.put("after", wait=False)

    handled = run(scenario)
    # and stopped: the batch stays unacknowledged, so it is delivered again
    assert [e.message.acked for e in handled.batches[0]] == [False]
