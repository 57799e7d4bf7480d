"""Drawing plots and report pages off the request threads: bounded, deduplicated, cached.

matplotlib is CPU-bound and not thread-safe (``service/reports/plots.py`` holds a lock), so a
plot drawn in a request thread holds that thread, and with it a share of the thread pool
that every sync route (and, before, ``/healthz``) waits on. ``PlotRenderer`` instead:

- draws on **one thread of its own** (the async routes await it; no request thread waits);
- lets at most ``max_pending`` drawings wait; one more is ``PlotsBusy`` (a 503 with
  Retry-After), so a burst cannot queue minutes of work;
- draws each key **once at a time**: concurrent requests for the same plot share one drawing;
- **caches the bytes** of immutable drawings (a final job's result never changes), least
  recently used first out past ``cache_bytes``. The key says what the bytes depend on; a
  caller passes ``None`` for a drawing that must not be cached.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

from worker.core.errors import Unavailable


class PlotsBusy(Unavailable):
    """Too many plots are waiting to be drawn; retry shortly (503)."""


class PlotRenderer:
    """See the module docstring. One per app; ``close()`` at shutdown."""

    def __init__(self, *, max_pending: int, cache_bytes: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plots")
        self._max_pending = max_pending
        self._cache_bytes = cache_bytes
        self._cache: OrderedDict[Hashable, bytes] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, asyncio.Future[bytes]] = {}
        self._pending = 0
        self.drawn = 0  # drawings made (cache misses), for tests and curiosity

    def cached(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._cache.get(key)
            if body is not None:
                self._cache.move_to_end(key)
            return body

    def _remember(self, key: Hashable, body: bytes) -> None:
        if len(body) > self._cache_bytes:
            return
        with self._lock:
            if key in self._cache:
                return
            self._cache[key] = body
            self._cached += len(body)
            while self._cached > self._cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached -= len(old)

    async def render(self, key: Hashable | None, draw: Callable[[], bytes]) -> bytes:
        """The bytes ``draw()`` makes, drawn on the renderer's thread (or from the cache)."""
        if key is not None:
            if (body := self.cached(key)) is not None:
                return body
            if (shared := self._inflight.get(key)) is not None:
                return await asyncio.shield(shared)
        if self._pending >= self._max_pending:
            raise PlotsBusy(f"{self._pending} plots are waiting to be drawn; retry shortly")
        loop = asyncio.get_running_loop()
        self._pending += 1
        future = loop.run_in_executor(self._executor, self._draw, draw)
        if key is not None:
            self._inflight[key] = future

        def done(finished: asyncio.Future[bytes]) -> None:
            # here, not after the await: a client that went away must not free the slot of
            # a drawing that still runs
            self._pending -= 1
            if key is not None:
                self._inflight.pop(key, None)
                if not finished.cancelled() and finished.exception() is None:
                    self._remember(key, finished.result())

        future.add_done_callback(done)
        return await asyncio.shield(future)

    def _draw(self, draw: Callable[[], bytes]) -> bytes:
        self.drawn += 1
        return draw()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
