"""Settings shared by every process (worker, service, CLI): Redis, retention, limits, budgets.

Torch-free. Read from the environment once per process (``get_settings``) and validated at
start, so a bad value stops the process before it takes work. Variables carry the prefix
``TRAINABILITY_`` (``TRAINABILITY_MAX_PARAMETERS=...``) except the Redis URL, which is the
conventional ``REDIS_URL``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

QueueName = Literal["cpu", "gpu"]
#: Every queue the service can route to; a local worker consumes all of them.
QUEUES: tuple[QueueName, ...] = ("cpu", "gpu")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The queue of webhook deliveries (light, torch-free tasks; see worker/jobs/webhooks.py).
WEBHOOK_QUEUE = "webhooks"

Environment = Literal["development", "test", "production"]
#: Secrets that are only fit for a laptop: refused outside ``development`` and ``test``.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "placeholder", "dev"})


class Settings(BaseSettings):
    """Configuration every process reads; the service extends it (``ServiceSettings``)."""

    model_config = SettingsConfigDict(
        env_prefix="TRAINABILITY_",
        extra="ignore",
        frozen=True,
        validate_default=True,
        validate_by_name=True,
        validate_by_alias=True,
        hide_input_in_errors=True,
    )

    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("REDIS_URL", "TRAINABILITY_REDIS_URL"),
        description="Broker and job store (one Redis).",
    )
    redis_socket_timeout_s: float = Field(5.0, gt=0, le=60, description="Redis read/write timeout.")
    redis_connect_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Redis connect timeout (Redis down: a fast 503)."
    )
    key_prefix: str = Field(
        "trainability",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of every Redis key we write.",
    )
    retention_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="TTL of job records and indexes, refreshed on writes."
    )

    # Time limits of one job, innermost first. The training loop stops itself at
    # ``job_time_limit_s`` (a spec may ask for less) and returns partial results; Celery's soft
    # limit raises in the task if that did not happen, and its hard limit kills the child.
    job_time_limit_s: int = Field(3300, ge=1, description="Server maximum training time.")
    job_soft_time_limit_s: int = Field(
        3540,
        ge=2,
        description="Celery soft limit: the task records timed_out if training did not stop.",
    )
    job_hard_time_limit_s: int = Field(
        3600,
        ge=3,
        description="Celery hard limit: the child is killed; the reaper re-queues the job.",
    )
    # Redis redelivers an unacknowledged task after this; it must exceed the hard limit or a
    # long job runs twice (celery#5935).
    broker_visibility_timeout_s: int = Field(
        7200, ge=3, description="Redis redelivers unacknowledged tasks after this (> hard limit)."
    )

    # Queue routing: ``cpu`` -> cpu, ``cuda`` -> gpu, ``auto`` -> this queue.
    auto_queue: QueueName = Field("cpu", description="Queue for specs with device auto.")
    torch_threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="CPU threads per training process (None: torch's default, all cores). "
        "Set 1 when several workers share a host: tiny models slow down badly when "
        "processes' thread pools compete for the same cores.",
    )
    worker_memory_fraction: float = Field(
        0.8, ge=0, le=1, description="Share of the host's memory the training processes may "
        "address together (RLIMIT_AS per process; 0: no limit; never on GPU workers). A job "
        "past it fails with MemoryError instead of the host's OOM killer picking a process."
    )
    worker_warmup: bool = Field(
        True, description="Each training process runs a tiny job at start, so a fresh "
        "worker's first job is as fast as its second."
    )
    progress_interval_s: float = Field(0.5, ge=0, le=60, description="Min seconds between writes.")
    liveness_interval_s: float = Field(
        5.0,
        validation_alias=AliasChoices(
            "TRAINABILITY_LIVENESS_INTERVAL_S", "TRAINABILITY_WORKER_HEARTBEAT_INTERVAL_S"
        ),
        gt=0,
        le=300,
        description="Seconds between a worker's liveness beats into the registry (readiness). "
        "Formerly TRAINABILITY_WORKER_HEARTBEAT_INTERVAL_S (still read).",
    )
    liveness_ttl_s: int = Field(
        30,
        validation_alias=AliasChoices(
            "TRAINABILITY_LIVENESS_TTL_S", "TRAINABILITY_WORKER_HEARTBEAT_TTL_S"
        ),
        ge=2,
        le=3600,
        description="A worker without a liveness beat this long counts as gone. "
        "Formerly TRAINABILITY_WORKER_HEARTBEAT_TTL_S (still read).",
    )

    # Jobs that never get lost, stuck or leaked (worker/runtime/attempt.py, .../reaper.py).
    environment: Environment = Field(
        "development",
        description="Outside development and test, placeholder secrets are refused at start.",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        le=100,
        description="Attempts per job; a job whose worker is lost this many "
        "times fails with the reason.",
    )
    lease_renew_interval_s: float = Field(
        5.0,
        validation_alias=AliasChoices(
            "TRAINABILITY_LEASE_RENEW_INTERVAL_S", "TRAINABILITY_JOB_HEARTBEAT_INTERVAL_S"
        ),
        gt=0,
        le=300,
        description="How often a running attempt renews its lease. "
        "Formerly TRAINABILITY_JOB_HEARTBEAT_INTERVAL_S (still read).",
    )
    lease_ttl_s: float = Field(
        30.0,
        validation_alias=AliasChoices(
            "TRAINABILITY_LEASE_TTL_S", "TRAINABILITY_JOB_HEARTBEAT_TTL_S"
        ),
        gt=0,
        le=3600,
        description="An attempt whose lease is this old is taken as lost "
        "(worker killed, OOM, host gone): the reaper re-queues or fails it. "
        "Formerly TRAINABILITY_JOB_HEARTBEAT_TTL_S (still read).",
    )
    cancel_check_interval_s: float = Field(
        0.5, ge=0, le=60, description="Most seconds between two reads of the cancel flag."
    )
    reaper_interval_s: float = Field(
        15.0, gt=0, le=3600, description="Seconds between reaper passes (one worker reaps)."
    )
    queued_lost_after_s: float = Field(
        300.0,
        gt=0,
        description="A job queued this long whose task is in no broker list is sent again.",
    )
    prune_interval_s: float = Field(
        3600.0, gt=0, description="Seconds between sweeps of expired ids out of the listings."
    )
    idempotency_ttl_s: int = Field(
        24 * 3600, ge=60, description="How long an Idempotency-Key is remembered."
    )
    webhook_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Where callback_url may point: URL prefixes (https://hooks.example.com/ci/), "
        "hosts (hooks.example.com, hooks.example.com:8443, 127.0.0.1), subdomains "
        "(*.example.com) or * (any public host). Empty: callbacks are refused. Private and "
        "loopback addresses are refused unless a URL prefix or host entry names them exactly. "
        "JSON list or comma-separated.",
    )
    webhook_secret: SecretStr = Field(
        SecretStr("change-me"), description="HMAC-SHA256 key of the webhook signature."
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Timeout of each step of a webhook POST (connect, each "
        "read, each write)."
    )
    webhook_deadline_s: float = Field(
        30.0, gt=0, le=600, description="Total time one webhook delivery may take, however "
        "slowly the receiver answers; past it the delivery is abandoned and retried."
    )
    webhook_max_retries: int = Field(
        8, ge=0, le=50, description="Webhook delivery retries (and MLflow export retries)."
    )
    webhook_retry_backoff_s: int = Field(
        5, ge=1, le=3600, description="First retry delay of a webhook or an MLflow export; "
        "doubles per retry (jittered)."
    )
    webhook_retry_backoff_max_s: int = Field(
        600, ge=1, le=24 * 3600, description="Longest wait between webhook (or MLflow export) "
        "retries."
    )
    # Export to MLflow (worker/runtime/mlflow_delivery.py; the mapping is
    # trainability_client/mlflow_export.py). Unset: nothing is exported, mlflow is never imported.
    mlflow_tracking_uri: str | None = Field(
        None, description="Log each finished experiment (with a result: succeeded, or timed "
        "out or cancelled with partial results) as a run on this MLflow tracking server "
        "(http(s)://host:5000, databricks, or a sqlite:/// or file: store). Unset: no export. "
        "Set it on the training workers (they queue the export) and on the notifier (it logs "
        "the run, retried like webhooks); needs mlflow-skinny installed there.",
    )
    mlflow_experiment: str = Field(
        "trainability", min_length=1, max_length=500,
        description="The MLflow experiment the runs are logged to (created when missing).",
    )
    mlflow_timeout_s: int = Field(
        30, ge=1, le=600, description="Timeout of each request to the MLflow tracking server "
        "(MLFLOW_HTTP_REQUEST_TIMEOUT, unless that is set); MLflow's own retries are off "
        "(MLFLOW_HTTP_REQUEST_MAX_RETRIES=0, unless set): the export task retries."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text: key=value lines; json: one JSON object per line."
    )

    # Budgets: a spec over one of them is a 422 that names the limit.
    max_parameters: int = Field(5_000_000, ge=1, description="Budget: trainable parameters.")
    max_steps_x_batch: int = Field(
        50_000_000, ge=1, description="Budget: optimizer steps x batch size."
    )
    max_sequence_length: int = Field(
        1000, ge=1, description="Longest sequence (adding, copy, parity as sequence, inline)."
    )
    max_inline_bytes: int = Field(
        1_000_000, ge=1, description="Largest inline data: bytes of x and y as compact JSON."
    )
    max_data_bytes: int = Field(
        1 << 30, ge=1, description="Budget: the dataset in memory, (n_train + n_val) x "
        "(features + targets) in float32 (x sequence length for sequences)."
    )
    max_result_bytes: int = Field(
        16 << 20, ge=64 << 10, le=256 << 20, description="Largest result stored, as compact "
        "JSON; a larger one is stored with its long lists decimated and a note in "
        "result.truncated (never lost). Redis values stop at 512 MB."
    )
    max_memory_bytes: int = Field(
        4 << 30, ge=1, description="Budget: the dry run's peak memory estimate (data, weights "
        "with gradients and momentum, batch and probe activations, snapshots)."
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
        if self.liveness_ttl_s <= self.liveness_interval_s:
            raise ValueError("liveness_ttl_s must exceed liveness_interval_s")
        if self.lease_ttl_s < 2 * self.lease_renew_interval_s:
            raise ValueError("lease_ttl_s must be at least twice lease_renew_interval_s")
        if (
            not self.is_development
            and self.webhook_allowlist
            and self.webhook_secret.get_secret_value() in PLACEHOLDER_SECRETS
        ):
            raise ValueError("webhook_secret is a placeholder; set TRAINABILITY_WEBHOOK_SECRET")
        return self

    @field_validator("mlflow_tracking_uri", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """``TRAINABILITY_MLFLOW_TRACKING_URI=`` (empty) means no export."""
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("webhook_allowlist", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """A JSON list, or comma-separated entries (environment variables)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @property
    def is_development(self) -> bool:
        return self.environment in ("development", "test")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
