"""The Redis connection our own code uses (job store, worker registry) and its error boundary.

Celery opens its own broker connections from the same URL; this module is only for keys we
own. Every Redis call goes through ``translate_redis_errors`` so callers see domain errors
(``StoreUnavailable``, ``JobStoreError``), never ``redis.exceptions``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker.core.errors import JobStoreError, StoreUnavailable
from worker.core.settings import Settings

# Errors that mean "Redis cannot serve us right now" rather than "we sent a bad command".
_UNAVAILABLE = (
    redis.exceptions.ConnectionError,  # includes BusyLoadingError (starting up)
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica, or a failover in progress
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
)


def connect(settings: Settings) -> redis.Redis:
    """A pooled client with short timeouts; ``decode_responses`` so we read ``str``.

    Two quick retries ride out a dropped connection; past that the caller gets
    ``StoreUnavailable`` (a 503) fast instead of a request that hangs.
    """
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        socket_timeout=settings.redis_socket_timeout_s,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
    )


def connect_async(settings: Settings) -> redis.asyncio.Redis:
    """The asyncio twin of ``connect`` (server-sent events wait on pub/sub without a thread)."""
    return redis.asyncio.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        socket_timeout=settings.redis_socket_timeout_s,
        health_check_interval=30,
        retry=AsyncRetry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
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
