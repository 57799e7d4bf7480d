"""``Client`` (sync) over httpx: every call of the trainability API (``AsyncClient``, its
asynchronous twin, is in ``trainability_client/async_client.py``).

Both take the base URL (default ``$TRAINABILITY_URL``, else http://127.0.0.1:8000) and an API
key (default ``$TRAINABILITY_API_KEY``, sent as ``Authorization: Bearer``). A non-2xx answer
raises the typed error of ``trainability_client.errors``; no answer at all raises
``ConnectionFailed``. ``wait`` polls with exponential backoff (honouring ``Retry-After`` on 503
and 429 while it waits) until the experiment is final.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar

import httpx

from trainability_client.errors import (
    ConnectionFailed,
    RateLimited,
    TrainabilityError,
    Unavailable,
    WaitTimeout,
    error_from_response,
)
from trainability_client.models import Experiment, Remedies, Sweep, SweepAccepted

DEFAULT_URL = "http://127.0.0.1:8000"
SpecLike = Mapping[str, Any] | str | Path
ProgressCallback = Callable[[Experiment], None]
SweepCallback = Callable[[Sweep], None]
RemediesCallback = Callable[[Remedies], None]
PlotFormat = Literal["png", "svg"]
T = TypeVar("T")


def load_spec(spec: SpecLike) -> dict[str, Any]:
    """A spec document from a mapping, a JSON string, or a path to a JSON file."""
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, Path) or not spec.lstrip().startswith("{"):
        text = Path(spec).read_text()
    else:
        text = spec
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError("a spec is a JSON object")
    return doc


class Backoff:
    """Poll delays: ``initial`` growing by ``factor`` up to ``maximum``."""

    def __init__(self, initial: float = 0.2, factor: float = 1.5, maximum: float = 5.0) -> None:
        self.delay, self.factor, self.maximum = initial, factor, maximum

    def next(self, retry_after: float | None = None) -> float:
        delay = self.delay
        self.delay = min(self.delay * self.factor, self.maximum)
        return max(delay, retry_after or 0.0)


def _transient(exc: TrainabilityError) -> float | None:
    """While waiting, a 503/429/connection blip is retried; returns its Retry-After."""
    if isinstance(exc, Unavailable | RateLimited):
        return exc.retry_after or 0.0
    return None


class _Wait(Generic[T]):
    """One wait of either client: what ends it, who hears each answer, how long to sleep
    between tries and when to give up (the clients differ only in how they fetch and sleep)."""

    def __init__(self, what: str, timeout: float, done: Callable[[T], bool],
                 on_progress: Callable[[T], None] | None, backoff: Backoff) -> None:
        self.what, self.timeout, self.done = what, timeout, done
        self.on_progress, self.backoff = on_progress, backoff
        self.deadline = time.monotonic() + timeout
        self.last: T | None = None
        self.retry_after: float | None = None

    def answered(self, value: T) -> bool:
        """Note an answer (and report it); True when it ends the wait."""
        self.last, self.retry_after = value, None
        if self.on_progress is not None:
            self.on_progress(value)
        return self.done(value)

    def failed(self, error: TrainabilityError) -> None:
        """Note a try that failed: a transient error is waited out, any other raised again."""
        self.retry_after = _transient(error)
        if self.retry_after is None:
            raise error

    def delay(self) -> float:
        """Seconds to sleep before the next try (``WaitTimeout`` once past the deadline)."""
        delay = self.backoff.next(self.retry_after)
        if time.monotonic() + delay > self.deadline:
            raise WaitTimeout(f"{self.what} after {self.timeout:.0f} s", self.last)
        return delay


def _with_cursor(params: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    return {**params, "cursor": cursor} if cursor else params


class _Base:
    def __init__(self, base_url: str | None, api_key: str | None) -> None:
        self.base_url = (base_url or os.environ.get("TRAINABILITY_URL") or DEFAULT_URL)
        self.base_url = self.base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("TRAINABILITY_API_KEY")

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, application/problem+json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        raise error_from_response(response.status_code, response.content, response.headers)

    @staticmethod
    def _submission(spec: SpecLike, idempotency_key: str | None,
                    tags: Sequence[str] | None) -> tuple[dict[str, Any], dict[str, str]]:
        """The body and headers of ``POST /v1/experiments``."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = load_spec(spec) | ({"tags": list(tags)} if tags is not None else {})
        return body, headers

    @staticmethod
    def _sweep_body(base: SpecLike, axes: Mapping[str, Sequence[Any]] | None,
                    variants: Mapping[str, Mapping[str, Any]] | None, mode: str,
                    name: str | None, tags: Sequence[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"base": load_spec(base), "mode": mode,
                                "axes": {k: list(v) for k, v in (axes or {}).items()}}
        if variants:
            body["variants"] = {k: dict(v) for k, v in variants.items()}
        if name is not None:
            body["name"] = name
        if tags is not None:
            body["tags"] = list(tags)
        return body

    @staticmethod
    def _result_of(job_id: str, job: Experiment) -> dict[str, Any]:
        """The result of an ended experiment (``TrainabilityError`` while it has none)."""
        if job.result is None:
            raise TrainabilityError(f"experiment {job_id} is {job.status} and has no result"
                                    + (f": {job.error}" if job.error else ""))
        return job.result

    @staticmethod
    def _filters(status: str | None, tag: str | Sequence[str] | None, sweep: str | None,
                 created_after: datetime | str | None, page_size: int) -> dict[str, Any]:
        """Query parameters of a filtered listing (a list of tags: jobs with every one)."""
        params: dict[str, Any] = {"limit": page_size}
        if status:
            params["status"] = status
        if tag:
            params["tag"] = [tag] if isinstance(tag, str) else list(tag)
        if sweep:
            params["sweep"] = sweep
        if created_after is not None:
            params["created_after"] = (created_after.isoformat()
                                       if isinstance(created_after, datetime) else created_after)
        return params

    @staticmethod
    def _experiment_wait(job_id: str, timeout: float, on_progress: ProgressCallback | None,
                         backoff: Backoff | None) -> _Wait[Experiment]:
        return _Wait(f"experiment {job_id} not final", timeout, lambda job: job.is_final,
                     on_progress, backoff or Backoff())

    @staticmethod
    def _sweep_wait(sweep_id: str, timeout: float,
                    on_progress: SweepCallback | None) -> _Wait[Sweep]:
        return _Wait(f"sweep {sweep_id} not done", timeout, lambda sweep: sweep.done,
                     on_progress, Backoff(maximum=3.0))

    @staticmethod
    def _remedies_wait(job_id: str, timeout: float,
                       on_progress: RemediesCallback | None) -> _Wait[Remedies]:
        return _Wait(f"remedies of {job_id} not done", timeout, lambda twins: twins.done,
                     on_progress, Backoff(maximum=3.0))


class Client(_Base):
    """Synchronous client. Use as a context manager, or call ``close()``."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers(),
                                  timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"cannot reach the trainability service at {self.base_url}: {exc}"
            ) from exc
        return self._check(response)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _poll(self, fetch: Callable[[], T], wait: _Wait[T]) -> T:
        """Fetch until an answer ends ``wait``, sleeping between the tries."""
        while True:
            try:
                value = fetch()
            except TrainabilityError as exc:
                wait.failed(exc)
            else:
                if wait.answered(value):
                    return value
            time.sleep(wait.delay())

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a paginated listing, fetching pages as the iteration goes."""
        cursor: str | None = None
        while True:
            page = self._json("GET", path, params=_with_cursor(params, cursor))
            yield from page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # --- experiments -----------------------------------------------------------------------

    def submit(self, spec: SpecLike, *, wait: bool = False, idempotency_key: str | None = None,
               timeout: float = 3600.0, on_progress: ProgressCallback | None = None,
               tags: Sequence[str] | None = None) -> Experiment:
        """Submit a spec (labelled with ``tags``); with ``wait=True`` return only once the
        experiment has ended."""
        body, headers = self._submission(spec, idempotency_key, tags)
        accepted = self._json("POST", "/v1/experiments", json=body, headers=headers)
        if wait:
            return self.wait(accepted["id"], timeout=timeout, on_progress=on_progress)
        return self.get(accepted["id"])

    def get(self, job_id: str) -> Experiment:
        return Experiment.from_json(self._json("GET", f"/v1/experiments/{job_id}"))

    def wait(self, job_id: str, *, timeout: float = 3600.0,
             on_progress: ProgressCallback | None = None,
             backoff: Backoff | None = None) -> Experiment:
        """Poll until the experiment is final (``WaitTimeout`` after ``timeout`` seconds)."""
        wait = self._experiment_wait(job_id, timeout, on_progress, backoff)
        return self._poll(lambda: self.get(job_id), wait)

    def result(self, job_id: str) -> dict[str, Any]:
        """The result JSON of an ended experiment (``Conflict`` while it has none)."""
        return self._result_of(job_id, self.get(job_id))

    def cancel(self, job_id: str) -> Experiment:
        """Ask the service to stop an experiment; returns it as it is afterwards."""
        self._request("POST", f"/v1/experiments/{job_id}/cancel")
        return self.get(job_id)

    def list(self, *, status: str | None = None, page_size: int = 50) -> Iterator[dict[str, Any]]:
        """Every experiment (newest first), fetching pages as the iteration goes."""
        return self.list_experiments(status=status, page_size=page_size)

    def list_experiments(
        self, *, status: str | None = None, tag: str | Sequence[str] | None = None,
        sweep: str | None = None, created_after: datetime | str | None = None,
        page_size: int = 50,
    ) -> Iterator[dict[str, Any]]:
        """The experiments that match every filter given, newest first, page by page as the
        iteration goes (``tag``: one tag or several, all required)."""
        yield from self._pages("/v1/experiments",
                               self._filters(status, tag, sweep, created_after, page_size))

    def report(self, job_id: str) -> str:
        """The experiment's HTML report."""
        return self._request("GET", f"/v1/experiments/{job_id}/report").text

    def plot(self, job_id: str, name: str, fmt: PlotFormat = "png") -> bytes:
        """One plot of the experiment (``gradient_flow_heatmap``, ``gains``, ``loss``, ...)."""
        return self._request("GET", f"/v1/experiments/{job_id}/plots/{name}.{fmt}").content

    # --- sweeps ----------------------------------------------------------------------------

    def create_sweep(self, base: SpecLike, axes: Mapping[str, Sequence[Any]] | None = None, *,
                     variants: Mapping[str, Mapping[str, Any]] | None = None,
                     mode: Literal["grid", "zip"] = "grid", name: str | None = None,
                     tags: Sequence[str] | None = None) -> SweepAccepted:
        """Start a sweep: one experiment per point of ``axes`` (and ``variants``), each
        labelled with ``tags``."""
        body = self._sweep_body(base, axes, variants, mode, name, tags)
        return SweepAccepted.from_json(self._json("POST", "/v1/sweeps", json=body))

    def sweep(self, sweep_id: str, *, sort: str = "point",
              order: Literal["asc", "desc"] = "asc") -> Sweep:
        """The sweep's progress and its comparison table sorted by ``sort``."""
        doc = self._json("GET", f"/v1/sweeps/{sweep_id}", params={"sort": sort, "order": order})
        return Sweep.from_json(doc)

    def wait_sweep(self, sweep_id: str, *, timeout: float = 3600.0,
                   on_progress: SweepCallback | None = None, sort: str = "point",
                   order: Literal["asc", "desc"] = "asc") -> Sweep:
        """Poll until every point of the sweep has ended."""
        return self._poll(lambda: self.sweep(sweep_id, sort=sort, order=order),
                          self._sweep_wait(sweep_id, timeout, on_progress))

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"/v1/sweeps/{sweep_id}/cancel")
        return result

    def rerun_sweep(self, sweep_id: str, statuses: Sequence[str] | None = None) -> dict[str, Any]:
        body = {"statuses": list(statuses)} if statuses else None
        result: dict[str, Any] = self._json("POST", f"/v1/sweeps/{sweep_id}/rerun", json=body)
        return result

    def list_sweeps(self, *, page_size: int = 50) -> Iterator[dict[str, Any]]:
        yield from self._pages("/v1/sweeps", {"limit": page_size})

    def sweep_report(self, sweep_id: str) -> str:
        return self._request("GET", f"/v1/sweeps/{sweep_id}/report").text

    def sweep_plot(self, sweep_id: str, metric: str, fmt: PlotFormat = "png",
                   x: str | None = None) -> bytes:
        params = {"x": x} if x else None
        return self._request("GET", f"/v1/sweeps/{sweep_id}/plots/{metric}.{fmt}",
                             params=params).content

    # --- remedies --------------------------------------------------------------------------

    def start_remedies(self, job_id: str, *, rerun: bool = False, wait: bool = False,
                       timeout: float = 3600.0,
                       on_progress: RemediesCallback | None = None) -> Remedies:
        """Run each fix of a finished experiment's findings as a twin experiment (once per
        experiment: a second call returns the twins already launched, unless ``rerun``)."""
        params = {"rerun": "true"} if rerun else None
        doc = self._json("POST", f"/v1/experiments/{job_id}/remedies", params=params)
        if wait:
            return self.wait_remedies(job_id, timeout=timeout, on_progress=on_progress)
        return Remedies.from_json(doc)

    def remedies(self, job_id: str) -> Remedies:
        """The twins' outcome so far, fixes best first (``NotFound`` if none were started)."""
        return Remedies.from_json(self._json("GET", f"/v1/experiments/{job_id}/remedies"))

    def wait_remedies(self, job_id: str, *, timeout: float = 3600.0,
                      on_progress: RemediesCallback | None = None) -> Remedies:
        """Poll until every twin has ended."""
        return self._poll(lambda: self.remedies(job_id),
                          self._remedies_wait(job_id, timeout, on_progress))
