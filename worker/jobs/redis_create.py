"""Recording a new job: one run of ``lua/create.lua``, prepared once for both of its callers.

The sync store (``RedisJobStore.create``: sweeps, tools, tests) and the API's async intake
(``worker/jobs/redis_intake.py``: ``POST /v1/experiments``) run the same script with the same
keys and fields; only the client differs. With ``enqueue`` the script also pushes the job's
run task (``worker/jobs/task_message.py``) onto the broker list of its queue: the broker is
the store's Redis (one ``redis_url``), so the job and its task are written together or not
at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.core.errors import IdempotencyKeyReused, QuotaExceeded
from worker.jobs import codec
from worker.jobs.records import MAX_TAGS, OWNER_RE, TAG_RE, JobRecord, new_job_id, utcnow
from worker.jobs.redis_layout import JobKeys
from worker.jobs.task_message import run_task_message


@dataclass(frozen=True)
class CreateCall:
    """One run of ``lua/create.lua``: its keys and JSON argument, and what its reply means."""

    keys: list[str]
    args: list[str]
    fields: dict[str, str]
    owner: str
    max_active: int

    def outcome(self, reply: list[str]) -> JobRecord | str:
        """The job created, or the id of the job an Idempotency-Key replays (to be read);
        ``IdempotencyKeyReused``, ``QuotaExceeded`` for the refusals."""
        if reply[0] == "replay":
            return reply[1]
        if reply[0] == "mismatch":
            raise IdempotencyKeyReused(reply[1])
        if reply[0] == "quota":
            raise QuotaExceeded(owner=self.owner, limit=self.max_active)
        return codec.job_record(self.fields)


def create_call(
    layout: JobKeys, ttl: int, spec_json: str, *, name: str | None, queue: str,
    sweep_id: str | None = None, owner: str | None = None, callback_url: str | None = None,
    max_active: int | None = None, tags: Sequence[str] = (),
    idempotency: tuple[str, str, int] | None = None, enqueue: bool = False,
) -> CreateCall:
    """The run that records a new job under ``layout`` with the retention ``ttl``
    (``JobStore.create``'s arguments; ``idempotency``: the Idempotency-Key, the body's
    fingerprint, the key's TTL; ``enqueue``: push its run task too)."""
    if owner is not None and not OWNER_RE.match(owner):
        raise ValueError(f"owner {owner!r} is not a valid API key name")
    tags = list(dict.fromkeys(tags))  # once each, in the order given
    if len(tags) > MAX_TAGS or not all(TAG_RE.match(tag) for tag in tags):
        raise ValueError(f"tags {tags!r}: at most {MAX_TAGS}, each {TAG_RE.pattern}")
    job_id = new_job_id()
    fields = codec.new_job_fields(
        job_id, spec_json, queue=queue, now=utcnow(), name=name, sweep_id=sweep_id,
        owner=owner, callback_url=callback_url, tags=tags,
    )
    key, fingerprint, idem_ttl = idempotency or ("", "", 0)
    params = {
        "fields": fields, "owner": owner or "", "max_active": max_active or 0,
        "fingerprint": fingerprint, "idempotency_ttl": idem_ttl,
        "job_prefix": layout.job_key_prefix(),
        "message": run_task_message(job_id, queue) if enqueue else "",
    }
    owner_key, *filter_keys = layout.job_index_keys(owner=owner, tags=tags, sweep_id=sweep_id)
    # KEYS[13]: the idempotency key (unused without one), KEYS[14]: the queue's broker list
    idem_key = layout.idempotency_key(owner, key) if idempotency else layout.index_key()
    keys, args = layout.script_args(job_id, ttl, params, owner_key, idem_key, queue,
                                    *filter_keys)
    return CreateCall(keys=keys, args=args, fields=fields, owner=owner or "",
                      max_active=max_active or 0)
