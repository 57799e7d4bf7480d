"""One access line per request, carrying the job id: of the path's job, and of the job a
submission created (the route sets ``request.state.job_id``; a submission writes no second
line). Through the real API (uvicorn in a thread of this process) and its Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.conftest import wait_for
from worker.core.logs import JobIdFilter

SPEC = {
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 2, "width": 8},
    "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
    "training": {"steps": 5, "batch_size": 16, "device": "cpu"},
}


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(JobIdFilter())  # as the served handler has it
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    loggers = [logging.getLogger("trainability.access"), logging.getLogger("service")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)  # the level served (the test runner's root is quieter)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def test_a_submission_and_a_read_each_log_one_line_with_the_job_id(api_server, lines) -> None:
    with api_server.client() as client:
        created = client.post("/v1/experiments", json=SPEC)
        assert created.status_code == 202
        job_id = created.json()["id"]
        assert client.get(f"/v1/experiments/{job_id}").status_code == 200
    # the line is written once the answer is sent: the client may read it first
    wait_for(lambda: sum(r.name == "trainability.access" for r in lines.records) >= 2, 5,
             "both access lines")
    posts = [r for r in lines.records if r.getMessage().startswith("POST /v1/experiments ")]
    gets = [r for r in lines.records if r.getMessage().startswith(f"GET /v1/experiments/{job_id}")]
    assert [getattr(r, "job_id", None) for r in posts] == [job_id]
    assert [getattr(r, "job_id", None) for r in gets] == [job_id]
    # the access lines are all the submission wrote
    assert [r for r in lines.records if r.name != "trainability.access"] == []
