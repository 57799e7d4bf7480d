"""The Redis connection our own code uses (job store, worker registry) and its error boundary.

Celery opens its own broker connections from the same URL; this module is only for keys we
own. Every Redis call goes through ``translate_redis_errors`` so callers see domain errors
(``StoreUnavailable``, ``JobStoreError``), never ``redis.exceptions``.

The API's pool also goes through a ``CircuitBreaker``: once a command timed out or a
connection was refused, every command fails at once (``CircuitOpen``, a 503) for ``open_s``;
then one command tries Redis again, and its answer closes the breaker. So a hung Redis
(SIGSTOP, a partition: the socket stays open and nothing answers) costs the first request one
short timeout and the others nothing, instead of each holding a request thread for timeout x
retries. The API's async reads (``RedisJobFeed.job``) pass the same breaker through
``guarded``: there the trial is one asyncio task, not the event loop's one thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.connection
import redis.exceptions
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker.core.errors import JobStoreError, StoreUnavailable
from worker.core.settings import Settings


class CircuitOpen(redis.exceptions.RedisError):
    """Refused without asking Redis: it failed moments ago (see ``CircuitBreaker``).

    Not a ``ConnectionError``, so redis-py's retry does not retry it."""


class CircuitBreaker:
    """Closed, open for ``open_s`` after a failure, then half-open: one trial call at a time.

    Thread-safe; shared by every connection of a pool (``connect(..., breaker=...)``) and the
    async reads that pass it (``guarded``). The trial is a thread, or the asyncio task of an
    async read (every task of the event loop shares its thread).
    """

    def __init__(self, open_s: float, clock: Any = time.monotonic) -> None:
        self._open_s = open_s
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0: closed
        self._trial: object = None  # the thread (or task) whose call tries Redis again
        self.trips = 0

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until != 0.0 and self._clock() < self._open_until

    def before_call(self) -> None:
        """Raise ``CircuitOpen`` while open; past the window, let this call be the trial (the
        others still fail fast until it answers)."""
        with self._lock:
            if self._open_until == 0.0:
                return
            me = _caller()
            if self._trial == me:
                return
            now = self._clock()
            if now < self._open_until:
                raise CircuitOpen(f"Redis failed less than {self._open_s:g} s ago; not asked")
            self._open_until = now + self._open_s
            self._trial = me

    def failed(self) -> None:
        with self._lock:
            if self._open_until == 0.0:
                self.trips += 1
            self._open_until = self._clock() + self._open_s
            self._trial = None

    def succeeded(self) -> None:
        with self._lock:
            self._open_until = 0.0
            self._trial = None


def _caller() -> object:
    """Who is calling: the running asyncio task, else the thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop
        task = None
    return threading.get_ident() if task is None else task


_FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
T = TypeVar("T")


async def guarded(breaker: CircuitBreaker | None, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()`` through ``breaker`` (as the sync pool's connections do): refused at
    once while it is open, a timeout or refused connection opens it, an answer closes it."""
    if breaker is None:
        return await call()
    breaker.before_call()
    try:
        value = await call()
    except _FAILURES:
        breaker.failed()
        raise
    except redis.exceptions.ResponseError:
        breaker.succeeded()  # Redis answered (with an error of the command)
        raise
    breaker.succeeded()
    return value


class _Guarded:
    """Mixin for a redis-py connection class: every command passes the pool's breaker."""

    breaker: CircuitBreaker

    def connect(self) -> None:
        self.breaker.before_call()
        try:
            super().connect()  # type: ignore[misc]
        except _FAILURES:
            self.breaker.failed()
            raise

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.breaker.before_call()
        try:
            super().send_packed_command(command, check_health)  # type: ignore[misc]
        except _FAILURES:
            self.breaker.failed()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except _FAILURES:
            self.breaker.failed()
            raise
        except redis.exceptions.ResponseError:
            self.breaker.succeeded()  # Redis answered (with an error of the command)
            raise
        self.breaker.succeeded()
        return response


def _guarded_class(url: str, breaker: CircuitBreaker) -> type:
    scheme = urlsplit(url).scheme
    base: type = {"rediss": redis.connection.SSLConnection,
                  "unix": redis.connection.UnixDomainSocketConnection}.get(
        scheme, redis.connection.Connection)
    return type(f"Guarded{base.__name__}", (_Guarded, base), {"breaker": breaker})


# Errors that mean "Redis cannot serve us right now" rather than "we sent a bad command".
_UNAVAILABLE = (
    CircuitOpen,
    redis.exceptions.ConnectionError,  # includes BusyLoadingError (starting up)
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica, or a failover in progress
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
)


def connect(settings: Settings, *, socket_timeout_s: float | None = None,
            breaker: CircuitBreaker | None = None) -> redis.Redis:
    """A pooled client with short timeouts; ``decode_responses`` so we read ``str``.

    Two quick retries ride out a dropped connection; past that the caller gets
    ``StoreUnavailable`` (a 503) fast instead of a request that hangs. The API passes its
    shorter request timeout and a ``breaker``.
    """
    extra: dict[str, Any] = {}
    if breaker is not None:
        extra["connection_class"] = _guarded_class(settings.redis_url, breaker)
    return redis.Redis.from_url(
        settings.redis_url, retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        **_options(settings, socket_timeout_s), **extra,
    )


def _options(settings: Settings, socket_timeout_s: float | None) -> dict[str, Any]:
    """What both clients share: ``str`` replies, short timeouts, a health check when idle."""
    timeout = socket_timeout_s or settings.redis_socket_timeout_s
    return {"decode_responses": True, "socket_timeout": timeout, "health_check_interval": 30,
            "socket_connect_timeout": min(settings.redis_connect_timeout_s,
                                          socket_timeout_s or settings.redis_connect_timeout_s)}


def connect_async(settings: Settings, *, socket_timeout_s: float | None = None,
                  retries: int = 2) -> redis.asyncio.Redis:
    """The asyncio twin of ``connect`` (server-sent events wait on pub/sub without a thread).

    ``retries=0`` for calls made through ``guarded``: as in the sync pool, where a retry
    after a failure meets the breaker it opened, one timeout is all a call waits."""
    return redis.asyncio.Redis.from_url(
        settings.redis_url,
        retry=AsyncRetry(ExponentialBackoff(cap=0.2, base=0.02), retries=retries),
        **_options(settings, socket_timeout_s),
    )


@contextmanager
def translate_redis_errors() -> Iterator[None]:
    """Re-raise Redis errors as domain errors (``raise ... from exc``)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"job store unavailable: {type(exc).__name__}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise JobStoreError(f"job store error: {type(exc).__name__}: {exc}") from exc
