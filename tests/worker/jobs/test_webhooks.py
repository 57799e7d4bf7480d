"""Webhooks: allowlist rules, private-address refusal, signatures, and delivery to a real local
HTTP server (retry on 5xx and network errors, give up on other answers, no redirects)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from worker.core.errors import CallbackRefused
from worker.core.settings import Settings
from worker.jobs.redis_store import RedisJobStore
from worker.jobs.webhooks import (
    check_callback_url,
    match_allowlist,
    resolve_destination,
    signature,
    verify,
)
from worker.runtime.webhook_delivery import deliver_webhook

DB = 12
SECRET = "s3cret-for-tests"


# --- allowlist -------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "allowlist", "explicit"), [
    ("https://hooks.example.com/ci/run", ["https://hooks.example.com/ci/"], True),
    ("https://hooks.example.com/ci/run", ["hooks.example.com"], True),
    ("https://hooks.example.com:8443/x", ["hooks.example.com:8443"], True),
    ("https://a.b.example.com/x", ["*.example.com"], False),
    ("https://anything.org/x", ["*"], False),
    ("http://127.0.0.1:9000/hook", ["127.0.0.1"], True),
    ("http://[::1]:9000/hook", ["[::1]:9000"], True),
])
def test_allowed_destinations(url, allowlist, explicit):
    assert match_allowlist(url, allowlist).explicit is explicit


@pytest.mark.parametrize(("url", "allowlist", "why"), [
    ("https://hooks.example.com/x", [], "disabled"),
    ("https://evil.com/x", ["hooks.example.com"], "not in the webhook allowlist"),
    ("https://hooks.example.com/other", ["https://hooks.example.com/ci/"], "not in"),
    ("http://hooks.example.com/ci/x", ["https://hooks.example.com/ci/"], "not in"),  # scheme
    ("https://hooks.example.com:444/x", ["hooks.example.com:8443"], "not in"),
    ("https://example.com.evil.org/x", ["*.example.com"], "not in"),
    ("ftp://hooks.example.com/x", ["*"], "http"),
    ("https://user:pw@hooks.example.com/x", ["*"], "credentials"),
    ("https:///nohost", ["*"], "no host"),
    ("http://127.0.0.1/x", ["*"], "private or loopback"),
    ("http://169.254.169.254/latest/meta-data", ["*"], "private or loopback"),
    ("http://10.1.2.3/x", ["*.example.com", "*"], "private or loopback"),
    ("http://[::ffff:127.0.0.1]/x", ["*"], "private or loopback"),
])
def test_refused_destinations(url, allowlist, why):
    with pytest.raises(CallbackRefused, match=why):
        check_callback_url(url, allowlist)


def fake_resolver(table: dict[str, list[str]]):
    return lambda host, port: table[host]


def test_names_are_resolved_and_private_answers_refused_unless_named():
    resolver = fake_resolver({"hooks.example.com": ["93.184.216.34"],
                              "rebind.example.com": ["93.184.216.34", "10.0.0.7"],
                              "internal.corp": ["10.0.0.8"]})
    public = match_allowlist("https://hooks.example.com/x", ["*.example.com"])
    assert resolve_destination(public, resolver) == "93.184.216.34"
    mixed = match_allowlist("https://rebind.example.com/x", ["*.example.com"])
    with pytest.raises(CallbackRefused, match="10.0.0.7"):
        resolve_destination(mixed, resolver)
    named = match_allowlist("https://internal.corp/x", ["internal.corp"])
    assert resolve_destination(named, resolver) == "10.0.0.8"


def test_signature_is_hmac_sha256_over_timestamp_and_body():
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1700000000, body) == f"sha256={expected}"
    assert verify(SECRET, "1700000000", body, f"sha256={expected}")
    assert not verify(SECRET, "1700000001", body, f"sha256={expected}")


# --- delivery to a real server -----------------------------------------------------------------


class Receiver:
    """A local HTTP server that answers with the next status of ``script``."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body})
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def store(redis_server) -> RedisJobStore:
    client = redis_server.client(DB)
    client.flushdb()
    return RedisJobStore(client, prefix="w", retention_seconds=600)


@pytest.fixture
def settings() -> Settings:
    return Settings(webhook_allowlist=["127.0.0.1", "hooks.test"], webhook_secret=SECRET,
                    webhook_timeout_s=2)


def finished_job(store, url):
    job = store.create('{"spec_version":1}', name="n", queue="cpu", callback_url=url)
    store.claim(job.id, worker="w", holder="w|1", lease_ttl_s=30, max_attempts=3)
    store.finish(job.id, "succeeded", attempt=1, result={"summary": {"outcome": "completed"}})
    return job


def test_a_delivery_is_signed_and_recorded(store, settings, receiver):
    job = finished_job(store, receiver.url("/hook?x=1"))
    assert deliver_webhook(store, job.id, settings, attempt=1, last_attempt=False) == "delivered"
    (request,) = receiver.requests
    assert request["path"] == "/hook?x=1"
    headers = request["headers"]
    assert headers["X-Trainability-Event"] == "experiment.finished"
    assert headers["X-Trainability-Delivery"] == f"{job.id}.succeeded"
    assert verify(SECRET, headers["X-Trainability-Timestamp"], request["body"],
                  headers["X-Trainability-Signature"])
    body = json.loads(request["body"])
    assert (body["id"], body["status"]) == (job.id, "succeeded")
    assert body["summary"] == {"outcome": "completed"}
    record = store.get(job.id)
    assert record.webhook["state"] == "delivered" and record.webhook["last_status"] == 200
    assert store.webhook_outbox(idle_for_s=0) == []


def test_5xx_is_retried_until_the_last_attempt(store, settings, receiver):
    job = finished_job(store, receiver.url())
    receiver.script = [503, 500, 500]
    assert deliver_webhook(store, job.id, settings, attempt=1, last_attempt=False) == "retry"
    assert store.get(job.id).webhook["state"] == "retrying"
    assert store.webhook_outbox(idle_for_s=0) == [job.id]  # still owed
    assert deliver_webhook(store, job.id, settings, attempt=2, last_attempt=False) == "retry"
    assert deliver_webhook(store, job.id, settings, attempt=3, last_attempt=True) == "failed"
    assert store.get(job.id).webhook == {**store.get(job.id).webhook, "state": "failed",
                                         "attempts": 3, "last_status": 500}
    assert store.webhook_outbox(idle_for_s=0) == []


@pytest.mark.parametrize("status", [400, 404, 302])
def test_other_answers_end_the_delivery(store, settings, receiver, status):
    job = finished_job(store, receiver.url())
    receiver.script = [status]
    assert deliver_webhook(store, job.id, settings, attempt=1, last_attempt=False) == "failed"
    assert len(receiver.requests) == 1  # a redirect is not followed


def test_network_errors_are_retried(store, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once closed
    job = finished_job(store, f"http://127.0.0.1:{port}/hook")
    assert deliver_webhook(store, job.id, settings, attempt=1, last_attempt=False) == "retry"
    assert "ConnectError" in store.get(job.id).webhook["last_error"]


def test_the_request_goes_to_the_checked_address(store, settings, receiver):
    """DNS is asked once; the connection goes to that address, with the name as Host."""
    job = finished_job(store, f"http://hooks.test:{receiver.port}/hook")
    asked = []

    def resolver(host, port):
        asked.append(host)
        return ["127.0.0.1"]

    assert deliver_webhook(store, job.id, settings, attempt=1, last_attempt=False,
                           resolver=resolver) == "delivered"
    assert asked == ["hooks.test"]
    assert receiver.requests[0]["headers"]["Host"] == f"hooks.test:{receiver.port}"


def test_a_destination_removed_from_the_allowlist_is_not_called(store, receiver):
    job = finished_job(store, receiver.url())
    narrowed = Settings(webhook_allowlist=["hooks.example.com"], webhook_secret=SECRET)
    assert deliver_webhook(store, job.id, narrowed, attempt=1, last_attempt=False) == "failed"
    assert receiver.requests == []
    assert "refused" in store.get(job.id).webhook["last_error"]


# --- a slow receiver ---------------------------------------------------------------------------


class DripReceiver:
    """On 127.0.0.1 only: reads the request, sends its status line and headers, then the body
    one byte every ``interval_s`` (each read is quick, the whole answer is slow: 4 s)."""

    HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\n"
    BODY = b"received"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                try:
                    conn.sendall(self.HEAD)
                    for byte in self.BODY:
                        if self.stop.wait(self.interval_s):
                            return
                        conn.sendall(bytes([byte]))
                except OSError:  # the client gave up
                    continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_hardening_6_a_slow_receiver_ends_at_the_delivery_deadline(store):
    """Hardening item 6: a byte every 0.5 s never trips the 3 s per-read timeout; the 1.5 s
    deadline for the whole delivery ends it."""
    receiver = DripReceiver(interval_s=0.5)
    try:
        job = finished_job(store, f"http://127.0.0.1:{receiver.port}/hook")
        settings = Settings(webhook_allowlist=["127.0.0.1"], webhook_secret=SECRET,
                            webhook_timeout_s=3, webhook_deadline_s=1.5)
        started = time.monotonic()
        outcome = deliver_webhook(store, job.id, settings, attempt=1, last_attempt=False)
        took = time.monotonic() - started
    finally:
        receiver.close()
    assert outcome == "retry"
    assert 1.4 <= took < 2.5, took
    state = store.get(job.id).webhook
    assert state["state"] == "retrying" and "DeadlineExceeded" in state["last_error"]
    assert "1.5 s deadline" in state["last_error"]
