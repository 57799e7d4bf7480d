"""Settings shared by every process (worker, service, CLI): Redis, retention, limits, budgets.

Torch-free. Read from the environment once per process (``get_settings``) and validated at
start, so a bad value stops the process before it takes work. Variables carry the prefix
``TRAINABILITY_`` (``TRAINABILITY_MAX_PARAMETERS=...``) except the Redis URL, which is the
conventional ``REDIS_URL``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

QueueName = Literal["cpu", "gpu"]
#: Every queue the service can route to; a local worker consumes all of them.
QUEUES: tuple[QueueName, ...] = ("cpu", "gpu")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Settings(BaseSettings):
    """Configuration every process reads; the service extends it (``ServiceSettings``)."""

    model_config = SettingsConfigDict(
        env_prefix="TRAINABILITY_", extra="ignore", frozen=True, validate_default=True,
        validate_by_name=True, validate_by_alias=True, hide_input_in_errors=True,
    )

    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("REDIS_URL", "TRAINABILITY_REDIS_URL"),
        description="Broker and job store (one Redis).",
    )
    redis_socket_timeout_s: float = Field(5.0, gt=0, le=60)
    redis_connect_timeout_s: float = Field(2.0, gt=0, le=60)
    key_prefix: str = Field("trainability", pattern=r"^[A-Za-z0-9_.-]+$")
    retention_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="TTL of job records and indexes, refreshed on writes."
    )

    # Time limits of one job, innermost first. The training loop stops itself at
    # ``job_time_limit_s`` (a spec may ask for less) and returns partial results; Celery's soft
    # limit raises in the task if that did not happen, and its hard limit kills the child.
    job_time_limit_s: int = Field(3300, ge=1, description="Server maximum training time.")
    job_soft_time_limit_s: int = Field(3540, ge=2)
    job_hard_time_limit_s: int = Field(3600, ge=3)
    # Redis redelivers an unacknowledged task after this; it must exceed the hard limit or a
    # long job runs twice (celery#5935).
    broker_visibility_timeout_s: int = Field(7200, ge=3)

    # Queue routing: ``cpu`` -> cpu, ``cuda`` -> gpu, ``auto`` -> this queue.
    auto_queue: QueueName = "cpu"
    torch_threads: int | None = Field(
        None, ge=1, le=1024,
        description="CPU threads per training process (None: torch's default, all cores). "
        "Set 1 when several workers share a host: tiny models slow down badly when "
        "processes' thread pools compete for the same cores.",
    )
    progress_interval_s: float = Field(0.5, ge=0, le=60, description="Min seconds between writes.")
    worker_heartbeat_interval_s: float = Field(5.0, gt=0, le=300)
    worker_heartbeat_ttl_s: int = Field(30, ge=2, le=3600)

    # Budgets: a spec over one of them is a 422 that names the limit.
    max_parameters: int = Field(5_000_000, ge=1)
    max_steps_x_batch: int = Field(50_000_000, ge=1)
    max_sequence_length: int = Field(
        1000, ge=1, description="Longest sequence (adding, copy, parity as sequence, inline)."
    )
    max_inline_bytes: int = Field(
        1_000_000, ge=1, description="Largest inline data: bytes of x and y as compact JSON."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        if self.job_time_limit_s >= self.job_soft_time_limit_s:
            raise ValueError("job_time_limit_s must be below job_soft_time_limit_s")
        if self.job_soft_time_limit_s >= self.job_hard_time_limit_s:
            raise ValueError("job_soft_time_limit_s must be below job_hard_time_limit_s")
        if self.broker_visibility_timeout_s <= self.job_hard_time_limit_s:
            raise ValueError("broker_visibility_timeout_s must exceed job_hard_time_limit_s")
        if self.worker_heartbeat_ttl_s <= self.worker_heartbeat_interval_s:
            raise ValueError("worker_heartbeat_ttl_s must exceed worker_heartbeat_interval_s")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
