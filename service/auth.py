"""API keys: ``Authorization: Bearer <key>``, checked against SHA-256 hashes from settings.

Off by default (``TRAINABILITY_AUTH_ENABLED=false``): every caller is anonymous and sees
every job. On, a request without a known key is a 401 (``WWW-Authenticate: Bearer``), and a
key sees only its own jobs: each job stores its owner (the key's name), and another key's job
id answers 404 on every route, exactly like an id that does not exist. A key may carry a limit
on its queued plus running jobs (``max_queued``): over it, a submission is a 429.

Keys are compared by hash, in constant time; the server never stores or logs a key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request

from service.api.errors import Unauthorized
from service.settings import ApiKey, ServiceSettings
from worker.core.errors import JobNotFound
from worker.jobs.records import JobRecord


@dataclass(frozen=True)
class Caller:
    """Who is asking: an API key's name and limit, or anonymous (auth off)."""

    name: str | None
    max_queued: int | None = None

    def owns(self, job: JobRecord) -> bool:
        """Auth off: everything is visible. On: only the key's own jobs."""
        return self.name is None or job.owner == self.name

    def check_owns(self, job: JobRecord) -> JobRecord:
        """The job, or ``JobNotFound`` (never 403: another key's ids do not exist for you)."""
        if not self.owns(job):
            raise JobNotFound(job.id)
        return job


ANONYMOUS = Caller(name=None)


def _key_of(request: Request, settings: ServiceSettings) -> ApiKey | None:
    """The configured key the request's bearer token hashes to, if any (constant time)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    found = None
    for key in settings.api_keys:  # no early exit: the time does not depend on which matched
        if hmac.compare_digest(digest, key.sha256):
            found = key
    return found


async def is_operator(request: Request) -> bool:
    """Whether the request carries an operator key (``"operator": true`` in api_keys), with
    auth on or off: then ``/readyz`` and ``/metrics`` show details, else a summary."""
    settings: ServiceSettings = request.app.state.settings
    key = _key_of(request, settings)
    return key is not None and key.operator


async def authenticate(request: Request) -> Caller:
    """The caller of ``request`` (a FastAPI dependency); ``Unauthorized`` when auth is on and
    the key is missing or unknown. ``async``: no I/O, so no thread hop (``deps.py``)."""
    settings: ServiceSettings = request.app.state.settings
    if not settings.auth_enabled:
        return ANONYMOUS
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this API needs an API key: send `Authorization: Bearer <key>`")
    found = _key_of(request, settings)
    if found is None:
        raise Unauthorized("the API key is not valid", invalid_token=True)
    return Caller(name=found.name, max_queued=found.max_queued)
