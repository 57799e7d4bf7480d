"""Structured log lines carry the job id (key=value and JSON formats)."""

from __future__ import annotations

import json
import logging

from worker.core.logs import JobIdFilter, JsonFormatter, KeyValueFormatter, job_context


def render(formatter: logging.Formatter, **extra) -> str:
    record = logging.LogRecord("worker.runtime.attempt", logging.INFO, __file__, 1,
                               "job %s: %s", ("abc", "succeeded"), None)
    for key, value in extra.items():
        setattr(record, key, value)
    JobIdFilter().filter(record)
    return formatter.format(record)


def test_key_value_lines_carry_the_job_id():
    with job_context("0123abcd" * 4):
        line = render(KeyValueFormatter(), route="/v1/x", status=200)
    assert " level=INFO logger=worker.runtime.attempt job_id=" + "0123abcd" * 4 in line
    assert 'msg="job abc: succeeded"' in line
    assert line.endswith("route=/v1/x status=200")


def test_json_lines_carry_the_job_id_and_extras():
    with job_context("feed" * 8):
        doc = json.loads(render(JsonFormatter(), duration_ms=1.5))
    assert doc["job_id"] == "feed" * 8 and doc["msg"] == "job abc: succeeded"
    assert doc["level"] == "INFO" and doc["duration_ms"] == 1.5


def test_no_job_no_field():
    assert "job_id" not in json.loads(render(JsonFormatter()))
