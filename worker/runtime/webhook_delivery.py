"""Webhook delivery: the one POST of a final job's webhook, in a worker process.

The policy (who may be called, the payload, the signature) is ``worker/jobs/webhooks.py``; this
module makes the request to the address the policy checked, records the delivery state on the
job and says whether the Celery task should retry.

Two limits hold a delivery: ``webhook_timeout_s`` for each step (connect, each read, each
write) and ``webhook_deadline_s`` for the whole request, however slowly the receiver answers
(a receiver that sends a byte every second never trips a per-read timeout). The request runs
on a short-lived event loop under ``asyncio.timeout``, which cancels it wherever it waits.
Deliveries run on the ``webhooks`` queue, which only a worker without training queues may
consume (``worker/runtime/queues.py``): a slow receiver never holds a training process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from worker.core.errors import CallbackRefused, JobNotFound
from worker.core.settings import Settings
from worker.jobs.records import JobRecord, utcnow
from worker.jobs.redis_store import RedisJobStore
from worker.jobs.webhooks import (
    EVENT,
    USER_AGENT,
    Destination,
    Resolver,
    default_port,
    match_allowlist,
    payload,
    resolve_destination,
    signature,
)

log = logging.getLogger(__name__)

DeliveryOutcome = Literal["delivered", "retry", "failed", "dropped"]


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def pinned_request(destination: Destination, address: str) -> tuple[str, dict[str, str],
                                                                      dict[str, Any]]:
    """URL with the checked address in place of the name, Host header, TLS server name."""
    parts = urlsplit(destination.url)
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{destination.port}"
    url = urlunsplit((destination.scheme, netloc, parts.path or "/", parts.query, ""))
    default = destination.port == default_port(destination.scheme)
    host_header = destination.host if ":" not in destination.host else f"[{destination.host}]"
    if not default:
        host_header += f":{destination.port}"
    extensions: dict[str, Any] = {}
    if destination.scheme == "https":
        extensions["sni_hostname"] = destination.host
    return url, {"Host": host_header}, extensions


def signed_headers(job: JobRecord, body: bytes, secret: str) -> dict[str, str]:
    """The delivery's headers: event, a delivery id to dedupe on, timestamp and signature."""
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Trainability-Event": EVENT,
        "X-Trainability-Delivery": f"{job.id}.{job.status}",
        "X-Trainability-Timestamp": str(timestamp),
        "X-Trainability-Signature": signature(secret, timestamp, body),
    }


class DeadlineExceeded(Exception):
    """The receiver did not take the whole request within ``webhook_deadline_s``."""


def post_within(url: str, body: bytes, headers: dict[str, str], extensions: dict[str, Any], *,
                timeout_s: float, deadline_s: float,
                transport: httpx.AsyncBaseTransport | None = None) -> httpx.Response:
    """POST and read the whole answer, or ``DeadlineExceeded`` after ``deadline_s`` in all."""
    async def post() -> httpx.Response:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False,
                                     trust_env=False, transport=transport) as client:
            async with asyncio.timeout(deadline_s):
                return await client.post(url, content=body, headers=headers,
                                         extensions=extensions)

    try:
        return asyncio.run(post())
    except TimeoutError as exc:
        raise DeadlineExceeded(f"no complete answer within the {deadline_s:g} s deadline "
                               "(webhook_deadline_s)") from exc


def deliver_webhook(
    store: RedisJobStore,
    job_id: str,
    settings: Settings,
    *,
    attempt: int,
    last_attempt: bool,
    resolver: Resolver = system_resolver,
    transport: httpx.AsyncBaseTransport | None = None,
) -> DeliveryOutcome:
    """One delivery attempt; records the state on the job; says whether to retry."""
    try:
        job = store.get(job_id)
    except JobNotFound:
        log.info("job %s is gone; its webhook is dropped", job_id)
        return "dropped"
    if not job.callback_url or not job.is_final:
        return "dropped"
    state: dict[str, Any] = {"attempts": attempt, "last_status": None, "last_error": None}

    def record(outcome: DeliveryOutcome) -> DeliveryOutcome:
        if outcome == "retry" and last_attempt:
            outcome = "failed"
        state["state"] = {"retry": "retrying"}.get(outcome, outcome)
        state["updated_at"] = utcnow().isoformat()
        store.set_webhook_state(job_id, state, pending=outcome == "retry")
        level = logging.INFO if outcome == "delivered" else logging.WARNING
        log.log(level, "webhook of job %s: %s (attempt %d, status %s, %s)", job_id,
                state["state"], attempt, state["last_status"], state["last_error"])
        return outcome

    try:
        destination = match_allowlist(job.callback_url, settings.webhook_allowlist)
        address = resolve_destination(destination, resolver)
    except CallbackRefused as exc:
        state["last_error"] = f"refused: {exc}"
        return record("failed")
    except ConnectionError as exc:
        state["last_error"] = str(exc)
        return record("retry")

    body = json.dumps(payload(job), separators=(",", ":")).encode()
    url, headers, extensions = pinned_request(destination, address)
    headers.update(signed_headers(job, body, settings.webhook_secret.get_secret_value()))
    try:
        response = post_within(url, body, headers, extensions,
                               timeout_s=settings.webhook_timeout_s,
                               deadline_s=settings.webhook_deadline_s, transport=transport)
    except (httpx.HTTPError, DeadlineExceeded) as exc:
        state["last_error"] = f"{type(exc).__name__}: {exc}"[:500]
        return record("retry")
    state["last_status"] = response.status_code
    if response.is_success:
        return record("delivered")
    state["last_error"] = f"HTTP {response.status_code}"
    if response.status_code in (408, 429) or response.status_code >= 500:
        return record("retry")
    return record("failed")
