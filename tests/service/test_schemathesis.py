"""Property-based requests against the OpenAPI document (schemathesis): no answer is a 5xx,
and no request generated as valid is refused for a reason the schema could state.

Every operation of the served schema gets generated requests, valid ones (positive mode) and
malformed ones (negative mode: wrong types, missing fields, out-of-range values), sent over
real HTTP to the API on a real Redis (no worker: submissions only queue). A few hundred
requests in all; any 5xx fails the test with the request that caused it.
"""

from __future__ import annotations

import time
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode

from tests.service.schema_refusals import schema_level_refusal
from worker.jobs.registry import registry_from_settings

EXAMPLES_PER_MODE = 12


@pytest.fixture(scope="module")
def schema(api_server) -> Any:
    with api_server.client() as client:
        document = client.get("/openapi.json").json()
    return schemathesis.openapi.from_dict(document)


def _operations() -> list[str]:
    return ["positive", "negative"]


@pytest.mark.parametrize("mode", _operations())
def test_no_generated_request_gets_a_5xx(api_server, redis_server, schema, mode):
    redis_server.client(2).flushdb()  # API_DB
    # /readyz is a 503 by design without a worker: pretend one is alive
    registry_from_settings(api_server.app.state.settings).beat("fake@test", ["cpu"], pid=1)
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    session = requests.Session()
    sent: list[tuple[str, int]] = []
    server_errors: list[str] = []
    schema_drift: list[str] = []
    skipped: list[str] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:
        strategy = operation.as_strategy(generation_mode=generation)

        @hypothesis.settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None,
                             derandomize=True, suppress_health_check=list(HealthCheck),
                             phases=[hypothesis.Phase.generate])
        @given(case=strategy)
        def exercise(case):
            response = case.call(base_url=api_server.url, session=session, timeout=20)
            sent.append((f"{case.method} {case.path}", response.status_code))
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}\n  body: {str(getattr(case, 'body', None))[:300]}"
                )
            if mode == "positive":
                try:
                    body = response.json()
                except ValueError:
                    body = None
                why = schema_level_refusal(response.status_code, body)
                if why is not None:
                    schema_drift.append(f"{case.method} {case.formatted_path}: {why}\n  body: "
                                        f"{str(getattr(case, 'body', None))[:300]}")

        try:
            exercise()
        except hypothesis.errors.Unsatisfiable:
            skipped.append(f"{operation.method.upper()} {operation.path}")  # nothing to vary

    elapsed = time.monotonic() - started
    assert not server_errors, "\n".join(server_errors[:10])
    assert not schema_drift, ("requests valid by the schema, refused for a reason it could "
                              "state:\n" + "\n".join(schema_drift[:10]))
    assert len(sent) >= 100, sent
    statuses = {status for _, status in sent}
    assert statuses & {200, 202}, statuses  # valid requests were answered too, not only 4xx
    print(f"{mode}: {len(sent)} requests over {len(operations)} operations in {elapsed:.1f} s "
          f"(nothing to generate for: {', '.join(skipped) or 'none'})")
