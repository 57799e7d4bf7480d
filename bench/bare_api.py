"""The bare FastAPI apps ``bench_api.py`` measures ours against (served by uvicorn, not run).

The same two routes with the least work FastAPI allows: ``POST /v1/experiments`` parses the
JSON body into a pydantic model and answers 202 with an id and a Location, as ours does,
without validation of the spec, Redis or a broker; ``GET /v1/experiments/{job_id}`` answers
the JSON document in the file ``BARE_API_GET_BODY`` names (``bench_api.py`` writes one of our
GET answers there, so both answers have the same size). Two apps:

- ``app``: plain ``def`` handlers, run in the thread pool: the reference of the targets (the
  endpoint the issue measured);
- ``app_async``: the same handlers as ``async def``, on the event loop, as ours are: the
  framework's floor, reported beside it.

Served with ``uvicorn bare_api:app --app-dir bench`` (or ``bare_api:app_async``).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict


class Submission(BaseModel):
    """The submission's top level, loosely: the sections as plain objects."""

    model_config = ConfigDict(extra="allow")

    spec_version: int
    model: dict[str, Any]
    data: dict[str, Any]
    training: dict[str, Any]
    optimizer: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None


class Links(BaseModel):
    self: str


class Accepted(BaseModel):
    id: str
    status: str
    links: Links


def _get_body() -> dict[str, Any]:
    path = os.environ.get("BARE_API_GET_BODY")
    if not path:
        return {"id": "0" * 32, "status": "queued"}
    body: dict[str, Any] = json.loads(Path(path).read_text())
    return body


GET_BODY = _get_body()
app = FastAPI(title="bare")


@app.post("/v1/experiments", status_code=202, response_model=Accepted)
def create(body: Submission, response: Response) -> Accepted:
    return _accept(response)


@app.get("/v1/experiments/{job_id}")
def read(job_id: str) -> dict[str, Any]:
    return {**GET_BODY, "id": job_id}


def _accept(response: Response) -> Accepted:
    job_id = uuid.uuid4().hex
    response.headers["Location"] = f"/v1/experiments/{job_id}"
    return Accepted(id=job_id, status="queued", links=Links(self=f"/v1/experiments/{job_id}"))


# The same two routes as ``async def``: no thread-pool hop (ours are async). Served with:
#   uvicorn bare_api:app_async --app-dir bench
app_async = FastAPI(title="bare-async")


@app_async.post("/v1/experiments", status_code=202, response_model=Accepted)
async def create_async(body: Submission, response: Response) -> Accepted:
    return _accept(response)


@app_async.get("/v1/experiments/{job_id}")
async def read_async(job_id: str) -> dict[str, Any]:
    return {**GET_BODY, "id": job_id}
