"""Webhooks: a POST to the job's ``callback_url`` when it reaches a final state (torch-free).

Who may be called is decided twice. On submit (``check_callback_url``): http(s) only, no
credentials in the URL, and the URL must match ``webhook_allowlist``. On delivery
(``resolve_destination``): the host is resolved and every address must be public, unless the
allowlist names that host (or a URL prefix on it) exactly, and the request goes to the
address that was checked (no second lookup that DNS rebinding could answer differently).
Redirects are not followed.

Allowlist entries (``TRAINABILITY_WEBHOOK_ALLOWLIST``)::

    https://hooks.example.com/ci/   URL prefix           explicit: private addresses allowed
    hooks.example.com[:8443]        host (and port)      explicit
    127.0.0.1                       an address           explicit
    *.example.com                   any subdomain        public addresses only
    *                               any host             public addresses only

The request: ``POST`` with a JSON body (``payload``) and headers

    X-Trainability-Event:      experiment.finished
    X-Trainability-Delivery:   {job_id}.{status} (the same for every retry: dedupe on it)
    X-Trainability-Timestamp:  unix seconds
    X-Trainability-Signature:  sha256=HEX(HMAC-SHA256(secret, "{timestamp}.{body}"))

A receiver recomputes the HMAC over the raw body with the shared secret, compares in constant
time, and rejects old timestamps. 2xx is success; 408, 429, 5xx and network errors are retried
with exponential backoff (a Celery task, ``worker/runtime/tasks.py``; the request itself is
``worker/runtime/webhook_delivery.py``); other answers end the delivery.
The state is kept on the job (``webhook``) and deliveries are at least once: the final status
write puts the job in an outbox, and the reaper re-sends deliveries that went quiet.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from worker.core.errors import CallbackRefused
from worker.jobs.records import JobRecord

log = logging.getLogger(__name__)

EVENT = "experiment.finished"
MAX_URL_CHARS = 2048
USER_AGENT = "trainability-webhook/1"

Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True)
class Destination:
    url: str  # as given
    scheme: str
    host: str  # lower case, no brackets
    port: int
    explicit: bool  # the allowlist names this host exactly (private addresses allowed)


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, netloc) of an http(s) URL, or ``CallbackRefused``."""
    if len(url) > MAX_URL_CHARS:
        raise CallbackRefused(f"callback_url is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefused(f"callback_url is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise CallbackRefused("callback_url must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must not carry credentials")
    host = (parts.hostname or "").lower()
    if not host:
        raise CallbackRefused("callback_url has no host")
    if parts.fragment:
        raise CallbackRefused("callback_url must not have a fragment")
    _check_path(parts.path)
    return scheme, host, port or default_port(scheme), parts.netloc


#: Percent-encodings that let a path change meaning after the allowlist check: dots (dot
#: segments), slashes and backslashes (segment boundaries a server may decode).
_ENCODED = ("%2e", "%2f", "%5c")


def _check_path(path: str) -> None:
    """Refuse paths a receiver could resolve to another place than the one matched: dot
    segments (``/ci/../admin``: removed by clients and servers after the prefix check),
    encoded dots or slashes, and backslashes."""
    lowered = path.lower()
    if any(code in lowered for code in _ENCODED) or "\\" in path:
        raise CallbackRefused("callback_url path must not contain encoded dots or slashes, or "
                              "backslashes")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise CallbackRefused("callback_url path must not contain '.' or '..' segments")


def _entry_matches(entry: str, url: str, scheme: str, host: str, port: int) -> bool | None:
    """None: no match; else whether the entry names the destination exactly."""
    entry = entry.strip()
    lowered = entry.lower()
    if lowered.startswith(("http://", "https://")):
        p_scheme, p_host, p_port, _ = _parse(entry)
        rest = urlsplit(entry)
        prefix = urlunsplit((p_scheme, rest.netloc.lower(), rest.path, rest.query, ""))
        given = urlsplit(url)
        normalized = urlunsplit((scheme, given.netloc.lower(), given.path, given.query, ""))
        same_origin = (p_scheme, p_host, p_port) == (scheme, host, port)
        # a prefix ends at a segment boundary: /ci matches /ci and /ci/x, never /ci-admin
        at_boundary = normalized == prefix or prefix.endswith("/") or (
            normalized[len(prefix):len(prefix) + 1] in ("/", "?"))
        matched = same_origin and normalized.startswith(prefix) and at_boundary
        return True if matched else None
    if lowered == "*":
        return False
    if lowered.startswith("*."):
        return False if host.endswith(lowered[1:]) else None
    e_host: str = lowered
    e_port: int | None = None
    if lowered.startswith("["):  # [v6]:port
        e_host, _, tail = lowered[1:].partition("]")
        e_port = int(tail[1:]) if tail.startswith(":") else None
    elif lowered.count(":") == 1:
        e_host, _, port_text = lowered.partition(":")
        e_port = int(port_text)
    if e_host == host and (e_port is None or e_port == port):
        return True
    return None


def match_allowlist(url: str, allowlist: Sequence[str]) -> Destination:
    """The destination, if ``url`` is allowed; else ``CallbackRefused`` saying why."""
    scheme, host, port, _ = _parse(url)
    if not allowlist:
        raise CallbackRefused(
            "callbacks are disabled on this server (no TRAINABILITY_WEBHOOK_ALLOWLIST)"
        )
    verdicts = []
    for entry in allowlist:
        try:
            verdict = _entry_matches(entry, url, scheme, host, port)
        except (CallbackRefused, ValueError):
            continue  # a broken entry matches nothing
        if verdict is not None:
            verdicts.append(verdict)
    if not verdicts:
        raise CallbackRefused(f"callback_url host {host!r} is not in the webhook allowlist")
    return Destination(url=url, scheme=scheme, host=host, port=port, explicit=any(verdicts))


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_callback_url(url: str, allowlist: Sequence[str]) -> Destination:
    """Submit-time check: syntax and allowlist; an address literal must be public unless the
    allowlist names it. Names are resolved only at delivery."""
    destination = match_allowlist(url, allowlist)
    try:
        ipaddress.ip_address(destination.host)
    except ValueError:
        return destination  # a name: resolved and checked on delivery
    if not destination.explicit and not _public(destination.host):
        raise CallbackRefused(
            f"callback_url points at a private or loopback address ({destination.host}); "
            "only allowlisted exactly"
        )
    return destination


def resolve_destination(destination: Destination, resolver: Resolver) -> str:
    """The address to connect to: every address of the host must be public, unless the
    allowlist names the host exactly."""
    try:
        addresses = list(dict.fromkeys(resolver(destination.host, destination.port)))
    except OSError as exc:
        raise ConnectionError(f"cannot resolve {destination.host}: {exc}") from exc
    if not addresses:
        raise ConnectionError(f"{destination.host} has no address")
    if not destination.explicit:
        private = [a for a in addresses if not _public(a)]
        if private:
            raise CallbackRefused(
                f"{destination.host} resolves to a private or loopback address "
                f"({', '.join(private)}); refused"
            )
    return addresses[0]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``{timestamp}.{body}``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature_header: str) -> bool:
    """What a receiver does (used by tests): constant-time comparison."""
    expected = signature(secret, int(timestamp), body)
    return hmac.compare_digest(expected, signature_header)


def payload(job: JobRecord) -> dict[str, Any]:
    """The JSON body: the job's final state and its summary (the full result is a GET away)."""
    summary = (job.result or {}).get("summary") if job.result else None
    return {
        "event": EVENT,
        "id": job.id,
        "status": job.status,
        "name": job.name,
        "attempts": job.attempts,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "summary": summary,
        "links": {"self": f"/v1/experiments/{job.id}"},
    }
