"""The API process's settings: the shared ``Settings`` plus what only HTTP needs."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from worker.settings import Settings


class ServiceSettings(Settings):
    """Read once per API process (``get_service_settings``); env prefix ``TRAINABILITY_``."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    retry_after_s: int = Field(5, ge=1, le=3600, description="Retry-After on 503 answers.")
    problem_type_base: str = Field(
        "urn:trainability:problem:", description="Prefix of problem+json ``type`` URIs."
    )
    max_sweep_points: int = Field(
        64, ge=1, le=10_000, description="Most points (jobs) one sweep may expand to."
    )
    max_request_bytes: int = Field(
        2_000_000, ge=1024,
        description="Largest request body; larger ones are refused with 413 before they are "
        "read. Keep it above max_inline_bytes plus room for the rest of the spec.",
    )


@lru_cache(maxsize=1)
def get_service_settings() -> ServiceSettings:
    return ServiceSettings()
