"""The API process's settings: the shared ``Settings`` plus what only HTTP needs."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from worker.core.settings import PLACEHOLDER_SECRETS, Settings


class ApiKey(BaseModel):
    """One API key: its name (the owner of its jobs), the SHA-256 of the key, its limit.

    Only the hash is configured: ``printf %s "$KEY" | sha256sum``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key.")
    max_queued: int | None = Field(
        None, ge=1, description="Most queued plus running experiments at once (None: no limit)."
    )
    operator: bool = Field(
        False, description="An operator key: /readyz and /metrics show it the details (worker "
        "names and queues, counts across every key), not only the summary."
    )

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class ServiceSettings(Settings):
    """Read once per API process (``get_service_settings``); env prefix ``TRAINABILITY_``."""

    api_host: str = Field("127.0.0.1", description="Address `trainability api` binds.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port `trainability api` listens on.")
    retry_after_s: int = Field(5, ge=1, le=3600, description="Retry-After on 503 answers.")
    problem_type_base: str = Field(
        "urn:trainability:problem:", description="Prefix of problem+json ``type`` URIs."
    )
    max_request_bytes: int = Field(
        2_000_000,
        ge=1024,
        description="Largest request body; larger ones are refused with 413 before they are "
        "read. Keep it above max_inline_bytes plus room for the rest of the spec.",
    )
    max_sweep_points: int = Field(
        64, ge=1, le=10_000, description="Most points (jobs) one sweep may expand to."
    )
    sweep_cohort_max: int = Field(
        8, ge=1, le=64, description="Most sweep points one worker trains together as one "
        "batched model (points that differ only in seed, lr, momentum or init gain); 1: each "
        "point trains alone. A cohort also stays within max_memory_bytes and shares one "
        "job_time_limit_s."
    )
    # Auth (service/auth.py): off for local use, on in docker-compose.
    auth_enabled: bool = Field(
        False, description="Require `Authorization: Bearer <key>` on /v1 routes."
    )
    api_keys: Annotated[list[ApiKey], NoDecode] = Field(
        default_factory=list,
        description='JSON list of {"name", "sha256", "max_queued"}; keys are stored hashed.',
    )
    # Server-sent events (GET /v1/experiments/{id}/events).
    sse_heartbeat_s: float = Field(
        15.0, gt=0, le=300, description="A comment line this often keeps proxies from closing."
    )
    sse_poll_s: float = Field(
        5.0, gt=0, le=60, description="Re-read the job at least this often (besides pub/sub)."
    )
    sse_max_streams_per_key: int = Field(
        16, ge=1, le=10_000, description="Event streams one API key (or, with auth off, one "
        "client address) may hold open in this API process; one more is a 429."
    )
    sse_max_streams: int = Field(
        512, ge=1, le=100_000, description="Event streams this API process holds open at "
        "most (all callers); one more is a 503 with Retry-After."
    )
    # The request path never waits long on Redis (service/live/breaker.py).
    request_redis_timeout_s: float = Field(
        1.0, gt=0, le=60, description="Redis read/write timeout of the API's requests (the "
        "worker keeps redis_socket_timeout_s)."
    )
    redis_breaker_open_s: float = Field(
        2.0, gt=0, le=300, description="After a Redis timeout or refused connection, the API "
        "answers 503 at once for this long, then lets one request try Redis again."
    )
    # Plots and report pages (service/reports/render.py): drawn off the request threads.
    plot_max_pending: int = Field(
        32, ge=1, le=10_000, description="Plots and report pages waiting to be drawn at most; "
        "one more is a 503 with Retry-After."
    )
    plot_cache_bytes: int = Field(
        64 << 20, ge=0, description="Bytes of drawn plots and report pages of final jobs kept "
        "in memory (results of final jobs never change; 0: no cache)."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _from_json(cls, value: Any) -> Any:
        """The environment variable is JSON; empty means no keys."""
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @model_validator(mode="after")
    def _auth_consistent(self) -> Self:
        names = [key.name for key in self.api_keys]
        if len(set(names)) != len(names):
            raise ValueError("api_keys: names must be unique")
        if len({key.sha256 for key in self.api_keys}) != len(self.api_keys):
            raise ValueError("api_keys: two names share one key")
        if not self.is_development:
            if self.auth_enabled and not self.api_keys:
                raise ValueError("auth is enabled but TRAINABILITY_API_KEYS is empty")
            placeholders = {hashlib.sha256(p.encode()).hexdigest() for p in PLACEHOLDER_SECRETS}
            weak = [key.name for key in self.api_keys if key.sha256 in placeholders]
            if weak:
                raise ValueError(f"api_keys: {', '.join(weak)} use a placeholder key")
        return self


@lru_cache(maxsize=1)
def get_service_settings() -> ServiceSettings:
    return ServiceSettings()
