"""The one codec of worker/jobs: records to hash fields and back, cursors, strict JSON."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

import pytest

from worker.core.errors import InvalidCursor, JobStoreError
from worker.jobs import codec
from worker.jobs.records import SweepPoint, SweepRecord, new_job_id, new_sweep_id

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def test_a_new_job_hash_reads_back_as_its_record():
    job_id = new_job_id()
    fields = codec.new_job_fields(job_id, '{"spec_version":1}', queue="cpu", now=NOW,
                                  name="n", sweep_id=None, owner="alice", callback_url=None)
    assert "sweep_id" not in fields and "callback_url" not in fields
    record = codec.job_record(fields)
    assert (record.id, record.status, record.name, record.owner) == (job_id, "queued", "n",
                                                                     "alice")
    assert record.created_at == record.updated_at == NOW
    assert record.progress is None and record.result is None and not record.cancel_requested
    summary = codec.job_summary({k: fields[k] for k in codec.SUMMARY_FIELDS if k in fields})
    assert summary.id == job_id and summary.attempts == 0 and summary.started_at is None


def test_live_state_of_a_missing_job_is_none_and_empty_fields_are_none():
    assert codec.live_state(dict.fromkeys(codec.LIVE_FIELDS)) is None
    state = codec.live_state({"status": "running", "attempts": "2", "worker": "",
                              "cancel_requested": "1", "error": "", "progress": '{"step":3}',
                              "updated_at": NOW.isoformat(), "finished_at": None})
    assert state is not None and not state.is_final
    assert (state.attempts, state.worker, state.cancel_requested, state.error) == (2, None,
                                                                                   True, None)
    assert state.progress == {"step": 3} and state.updated_at == NOW


def test_times_round_trip_exactly():
    for when in (NOW, NOW.replace(microsecond=0)):
        text = codec.format_time(when)
        assert codec.parse_time(text) == when and codec.format_time(codec.parse_time(text)) == text
    assert codec.parse_time("") is None and codec.parse_time(None) is None


def test_a_sweep_round_trips():
    sweep = SweepRecord(
        id=new_sweep_id(), name=None, mode="zip", base={"spec_version": 1},
        axes={"model.depth": [2, 4]}, variants={"a": {"model.width": 8}},
        points=[SweepPoint(index=0, values={"model.depth": 2}, job_ids=["j1", "j2"]),
                SweepPoint(index=1, values={"model.depth": 4}, job_ids=[])],
        created_at=NOW, updated_at=NOW, owner=None,
    )
    fields = codec.sweep_fields(sweep)
    assert fields[codec.sweep_jobs_field(0)] == "j1 j2" and fields["owner"] == ""
    assert codec.sweep_record(fields) == sweep


def test_values_must_be_json_safe():
    assert codec.dumps({"a": [1, 2.5]}) == '{"a":[1,2.5]}'
    for bad in (math.nan, math.inf, object()):
        with pytest.raises(JobStoreError):
            codec.dumps({"x": bad})


def test_cursors_round_trip_and_match_their_documented_patterns():
    job_id = new_job_id()
    cursor = codec.encode_job_cursor(1234, job_id)
    assert cursor == f"1234.{job_id}"
    assert codec.decode_job_cursor(cursor) == (1234, job_id)
    assert re.match(codec.JOB_CURSOR_PATTERN, cursor)
    assert codec.decode_sweep_cursor(codec.encode_sweep_cursor(99)) == 99
    assert re.match(codec.SWEEP_CURSOR_PATTERN, codec.encode_sweep_cursor(5))


@pytest.mark.parametrize("cursor", [
    "", "!!", "e30", "WzEsMl0", "WyJ4IiwgIngiXQ",
    "WyJzIiwgNV0",  # a base64 cursor of before issue 14: the patterns describe every cursor
    "1." + "a" * 31, "s", "s1.5", "-1." + "a" * 32,
])
def test_foreign_cursors_are_refused(cursor):
    with pytest.raises(InvalidCursor):
        codec.decode_job_cursor(cursor)
    with pytest.raises(InvalidCursor):
        codec.decode_sweep_cursor(cursor)


def test_a_cursor_of_one_kind_is_not_one_of_the_other():
    with pytest.raises(InvalidCursor):
        codec.decode_job_cursor(codec.encode_sweep_cursor(5))
    with pytest.raises(InvalidCursor):
        codec.decode_sweep_cursor(codec.encode_job_cursor(5, new_job_id()))
