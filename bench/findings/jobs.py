"""Run specs on a trainability service over HTTP, a few at a time, and wait for them.

HTTP only (httpx), no imports from the service or worker packages, so the benchmark keeps
working however the code behind the API is arranged. A sliding window of jobs in flight keeps
the workers busy without filling the queue with hundreds of jobs at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

Record = dict[str, Any]
FINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
RETRIES = 5


class SpecRefused(Exception):
    """The service answered 4xx to a submission (e.g. 422 for a spec it does not accept)."""

    def __init__(self, key: str, response: httpx.Response) -> None:
        super().__init__(f"{key}: HTTP {response.status_code}: {response.text[:1000]}")
        self.key, self.status_code, self.body = key, response.status_code, response.text


def _request(client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    """One request, retried on transport errors and 5xx (the API restarts, Redis blips)."""
    for attempt in range(RETRIES):
        try:
            response = client.request(method, path, **kw)
        except httpx.TransportError:
            if attempt == RETRIES - 1:
                raise
        else:
            if response.status_code < 500 or attempt == RETRIES - 1:
                return response
        time.sleep(2.0 * (attempt + 1))
    raise AssertionError("unreachable")


def normalized(client: httpx.Client, spec: Record) -> Record | None:
    """The spec as the service stores it (defaults filled in), via the dry run; None if refused."""
    response = _request(client, "POST", "/v1/specs/validate", json=spec)
    return response.json()["spec"] if response.status_code == 200 else None


def run_specs(
    url: str,
    specs: dict[str, Record],
    on_final: Callable[[str, Record], None],
    *,
    in_flight: int = 6,
    poll_s: float = 2.0,
) -> None:
    """Submit every spec (keyed by a unique name), calling ``on_final(key, job)`` as each ends.

    At most ``in_flight`` jobs are queued or running at once; submission order is kept.
    A 4xx answer to a submission raises :class:`SpecRefused` (nothing else is submitted).
    """
    pending = list(specs.items())
    running: dict[str, str] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        while pending or running:
            while pending and len(running) < in_flight:
                key, spec = pending.pop(0)
                response = _request(client, "POST", "/v1/experiments", json=spec)
                if response.status_code != 202:
                    raise SpecRefused(key, response)
                running[key] = response.json()["id"]
            time.sleep(poll_s)
            for key, job_id in list(running.items()):
                response = _request(client, "GET", f"/v1/experiments/{job_id}")
                response.raise_for_status()
                job = response.json()
                if job["status"] in FINAL:
                    del running[key]
                    on_final(key, job)


def save(path: Path, job: Record) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(job, indent=1))


def load(path: Path) -> Record | None:
    return json.loads(path.read_text()) if path.exists() else None


def findings_of(saved: Record) -> list[Record] | None:
    """The findings in a saved job record, a bare result, or None when there are none."""
    result = saved if "findings" in saved else saved.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("findings"), list):
        return None
    return result["findings"]
