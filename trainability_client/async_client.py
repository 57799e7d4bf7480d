"""``AsyncClient``: the asynchronous twin of ``trainability_client.client.Client`` (the same
calls, awaited; the same errors and polling)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self

import httpx

from trainability_client.client import (
    Backoff,
    PlotFormat,
    ProgressCallback,
    RemediesCallback,
    SpecLike,
    SweepCallback,
    _Base,
    load_spec,
)
from trainability_client.errors import ConnectionFailed, TrainabilityError, WaitTimeout
from trainability_client.models import Experiment, Remedies, Sweep, SweepAccepted


class AsyncClient(_Base):
    """Asynchronous client (``async with AsyncClient() as c: await c.submit(...)``)."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers(),
                                       timeout=timeout, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"cannot reach the trainability service at {self.base_url}: {exc}"
            ) from exc
        return self._check(response)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._request(method, path, **kwargs)).json()

    async def submit(self, spec: SpecLike, *, wait: bool = False,
                     idempotency_key: str | None = None, timeout: float = 3600.0,
                     on_progress: ProgressCallback | None = None,
                     tags: Sequence[str] | None = None) -> Experiment:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = load_spec(spec) | ({"tags": list(tags)} if tags is not None else {})
        accepted = await self._json("POST", "/v1/experiments", json=body, headers=headers)
        if wait:
            return await self.wait(accepted["id"], timeout=timeout, on_progress=on_progress)
        return await self.get(accepted["id"])

    async def get(self, job_id: str) -> Experiment:
        return Experiment.from_json(await self._json("GET", f"/v1/experiments/{job_id}"))

    async def wait(self, job_id: str, *, timeout: float = 3600.0,
                   on_progress: ProgressCallback | None = None,
                   backoff: Backoff | None = None) -> Experiment:
        backoff = backoff or Backoff()
        deadline = time.monotonic() + timeout
        last: Experiment | None = None
        while True:
            retry_after = None
            try:
                last = await self.get(job_id)
            except TrainabilityError as exc:
                retry_after = self._transient(exc)
                if retry_after is None:
                    raise
            if last is not None and retry_after is None:
                if on_progress is not None:
                    on_progress(last)
                if last.is_final:
                    return last
            delay = backoff.next(retry_after)
            if time.monotonic() + delay > deadline:
                raise WaitTimeout(f"experiment {job_id} not final after {timeout:.0f} s", last)
            await asyncio.sleep(delay)

    async def result(self, job_id: str) -> dict[str, Any]:
        job = await self.get(job_id)
        if job.result is None:
            raise TrainabilityError(f"experiment {job_id} is {job.status} and has no result"
                                    + (f": {job.error}" if job.error else ""))
        return job.result

    async def cancel(self, job_id: str) -> Experiment:
        await self._request("POST", f"/v1/experiments/{job_id}/cancel")
        return await self.get(job_id)

    def list(self, *, status: str | None = None,
             page_size: int = 50) -> AsyncIterator[dict[str, Any]]:
        return self.list_experiments(status=status, page_size=page_size)

    async def list_experiments(
        self, *, status: str | None = None, tag: str | Sequence[str] | None = None,
        sweep: str | None = None, created_after: datetime | str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[dict[str, Any]]:
        """The experiments that match every filter given, newest first (see ``Client``)."""
        cursor: str | None = None
        while True:
            params = self._filters(status, tag, sweep, created_after, page_size)
            if cursor:
                params["cursor"] = cursor
            page = await self._json("GET", "/v1/experiments", params=params)
            for item in page["data"]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def report(self, job_id: str) -> str:
        return (await self._request("GET", f"/v1/experiments/{job_id}/report")).text

    async def plot(self, job_id: str, name: str, fmt: PlotFormat = "png") -> bytes:
        path = f"/v1/experiments/{job_id}/plots/{name}.{fmt}"
        return (await self._request("GET", path)).content

    async def create_sweep(self, base: SpecLike,
                           axes: Mapping[str, Sequence[Any]] | None = None, *,
                           variants: Mapping[str, Mapping[str, Any]] | None = None,
                           mode: Literal["grid", "zip"] = "grid", name: str | None = None,
                           tags: Sequence[str] | None = None) -> SweepAccepted:
        body = self._sweep_body(base, axes, variants, mode, name)
        if tags is not None:
            body["tags"] = list(tags)
        return SweepAccepted.from_json(await self._json("POST", "/v1/sweeps", json=body))

    async def sweep(self, sweep_id: str, *, sort: str = "point",
                    order: Literal["asc", "desc"] = "asc") -> Sweep:
        doc = await self._json("GET", f"/v1/sweeps/{sweep_id}",
                               params={"sort": sort, "order": order})
        return Sweep.from_json(doc)

    async def wait_sweep(self, sweep_id: str, *, timeout: float = 3600.0,
                         on_progress: SweepCallback | None = None) -> Sweep:
        backoff = Backoff(maximum=3.0)
        deadline = time.monotonic() + timeout
        last: Sweep | None = None
        while True:
            retry_after = None
            try:
                last = await self.sweep(sweep_id)
            except TrainabilityError as exc:
                retry_after = self._transient(exc)
                if retry_after is None:
                    raise
            if last is not None and retry_after is None:
                if on_progress is not None:
                    on_progress(last)
                if last.done:
                    return last
            delay = backoff.next(retry_after)
            if time.monotonic() + delay > deadline:
                raise WaitTimeout(f"sweep {sweep_id} not done after {timeout:.0f} s", last)
            await asyncio.sleep(delay)

    async def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("POST", f"/v1/sweeps/{sweep_id}/cancel")
        return result

    async def rerun_sweep(self, sweep_id: str,
                          statuses: Sequence[str] | None = None) -> dict[str, Any]:
        body = {"statuses": list(statuses)} if statuses else None
        result: dict[str, Any] = await self._json("POST", f"/v1/sweeps/{sweep_id}/rerun",
                                                  json=body)
        return result

    async def sweep_report(self, sweep_id: str) -> str:
        return (await self._request("GET", f"/v1/sweeps/{sweep_id}/report")).text

    async def sweep_plot(self, sweep_id: str, metric: str, fmt: PlotFormat = "png",
                         x: str | None = None) -> bytes:
        params = {"x": x} if x else None
        path = f"/v1/sweeps/{sweep_id}/plots/{metric}.{fmt}"
        return (await self._request("GET", path, params=params)).content

    async def start_remedies(self, job_id: str, *, rerun: bool = False, wait: bool = False,
                             timeout: float = 3600.0,
                             on_progress: RemediesCallback | None = None) -> Remedies:
        params = {"rerun": "true"} if rerun else None
        doc = await self._json("POST", f"/v1/experiments/{job_id}/remedies", params=params)
        if wait:
            return await self.wait_remedies(job_id, timeout=timeout, on_progress=on_progress)
        return Remedies.from_json(doc)

    async def remedies(self, job_id: str) -> Remedies:
        return Remedies.from_json(await self._json("GET", f"/v1/experiments/{job_id}/remedies"))

    async def wait_remedies(self, job_id: str, *, timeout: float = 3600.0,
                            on_progress: RemediesCallback | None = None) -> Remedies:
        backoff = Backoff(maximum=3.0)
        deadline = time.monotonic() + timeout
        last: Remedies | None = None
        while True:
            retry_after = None
            try:
                last = await self.remedies(job_id)
            except TrainabilityError as exc:
                retry_after = self._transient(exc)
                if retry_after is None:
                    raise
            if last is not None and retry_after is None:
                if on_progress is not None:
                    on_progress(last)
                if last.done:
                    return last
            delay = backoff.next(retry_after)
            if time.monotonic() + delay > deadline:
                raise WaitTimeout(f"remedies of {job_id} not done after {timeout:.0f} s", last)
            await asyncio.sleep(delay)
