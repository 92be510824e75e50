"""Concurrent identical work computed once (Go's `singleflight`, for asyncio).

The first caller for a key (the leader) starts the work as a task and files
it under the key; callers arriving while it runs await the same task. The
entry is removed by the task's own done-callback, and only if it still
points at that task, so a finished flight can never remove a newer one (the
bug of lock dicts shared across requests). Waiters await through
`asyncio.shield`: cancelling one waiter, the leader included, leaves the
work running for the others. An exception reaches every waiter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Shares one in-flight computation per key among concurrent callers."""

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        """How many keys are in flight."""
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    async def do(self, key: K, factory: Callable[[], Awaitable[V]]) -> V:
        """The result of `factory()`, computed once for all concurrent callers of `key`."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(_call(factory))
            self._flights[key] = task
            task.add_done_callback(lambda done: self._land(key, done))
        return await asyncio.shield(task)

    def _land(self, key: K, task: asyncio.Task[V]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" log when every waiter left


async def _call(factory: Callable[[], Awaitable[V]]) -> V:
    return await factory()
