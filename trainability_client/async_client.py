"""``AsyncClient``: the asynchronous twin of ``trainability_client.client.Client`` (the same
calls, awaited; the same errors and polling)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
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
    T,
    _Base,
    _Wait,
    _with_cursor,
)
from trainability_client.errors import ConnectionFailed, TrainabilityError
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

    async def _poll(self, fetch: Callable[[], Awaitable[T]], wait: _Wait[T]) -> T:
        """``Client._poll``, awaited."""
        while True:
            try:
                value = await fetch()
            except TrainabilityError as exc:
                wait.failed(exc)
            else:
                if wait.answered(value):
                    return value
            await asyncio.sleep(wait.delay())

    async def _pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """``Client._pages``, awaited."""
        cursor: str | None = None
        while True:
            page = await self._json("GET", path, params=_with_cursor(params, cursor))
            for item in page["data"]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def submit(self, spec: SpecLike, *, wait: bool = False,
                     idempotency_key: str | None = None, timeout: float = 3600.0,
                     on_progress: ProgressCallback | None = None,
                     tags: Sequence[str] | None = None) -> Experiment:
        body, headers = self._submission(spec, idempotency_key, tags)
        accepted = await self._json("POST", "/v1/experiments", json=body, headers=headers)
        if wait:
            return await self.wait(accepted["id"], timeout=timeout, on_progress=on_progress)
        return await self.get(accepted["id"])

    async def get(self, job_id: str) -> Experiment:
        return Experiment.from_json(await self._json("GET", f"/v1/experiments/{job_id}"))

    async def wait(self, job_id: str, *, timeout: float = 3600.0,
                   on_progress: ProgressCallback | None = None,
                   backoff: Backoff | None = None) -> Experiment:
        wait = self._experiment_wait(job_id, timeout, on_progress, backoff)
        return await self._poll(lambda: self.get(job_id), wait)

    async def result(self, job_id: str) -> dict[str, Any]:
        return self._result_of(job_id, await self.get(job_id))

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
        async for item in self._pages(
                "/v1/experiments", self._filters(status, tag, sweep, created_after, page_size)):
            yield item

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
        body = self._sweep_body(base, axes, variants, mode, name, tags)
        return SweepAccepted.from_json(await self._json("POST", "/v1/sweeps", json=body))

    async def sweep(self, sweep_id: str, *, sort: str = "point",
                    order: Literal["asc", "desc"] = "asc") -> Sweep:
        doc = await self._json("GET", f"/v1/sweeps/{sweep_id}",
                               params={"sort": sort, "order": order})
        return Sweep.from_json(doc)

    async def wait_sweep(self, sweep_id: str, *, timeout: float = 3600.0,
                         on_progress: SweepCallback | None = None) -> Sweep:
        return await self._poll(lambda: self.sweep(sweep_id),
                                self._sweep_wait(sweep_id, timeout, on_progress))

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
        return await self._poll(lambda: self.remedies(job_id),
                                self._remedies_wait(job_id, timeout, on_progress))
