"""The OpenAPI document says what the server does, checked against the running server.

Found on main: the event stream was declared a JSON string; ``OPTIONS`` answered 405 with the
``Allow`` of one route only; the schema accepted what the server refused (``depth: 65.0``,
``steps`` with ``epochs``, cursors of any shape). Each check below asks the served document
(validated with a real JSON Schema validator, ``jsonschema_rs``) and the server the same
question and wants the same answer. (schemathesis runs over the whole document:
``tests/service/test_schemathesis.py``.)
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema_rs
import pytest

from service.schemas.events import EVENTS
from tests.service.conftest import _small_spec

JOB_ID = "a" * 32


@pytest.fixture(scope="module")
def openapi(api_server) -> dict[str, Any]:
    with api_server.client() as client:
        document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def spec_validator(openapi: dict[str, Any]) -> Any:
    """A validator of request bodies against the document's ``ExperimentSpec``."""
    return jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/ExperimentSpec", "components": openapi["components"]})


def query_validator(openapi: dict[str, Any], path: str, name: str) -> Any:
    """A validator of one query parameter against its documented schema."""
    (parameter,) = [p for p in openapi["paths"][path]["get"]["parameters"] if p["name"] == name]
    return jsonschema_rs.validator_for(parameter["schema"])


def test_hardening_13_the_event_stream_is_declared_event_by_event(openapi):
    """Hardening item 13: /events answers text/event-stream, each event with its schema."""
    content = openapi["paths"]["/v1/experiments/{job_id}/events"]["get"]["responses"]["200"][
        "content"]
    assert list(content) == ["text/event-stream"]
    events = content["text/event-stream"]["schema"]["oneOf"]
    assert [e["properties"]["event"]["const"] for e in events] == list(EVENTS)
    for event in events:
        data = event["properties"]["data"]
        assert data["contentMediaType"] == "application/json"
        assert data["contentSchema"]["$ref"].rsplit("/", 1)[-1] in openapi["components"][
            "schemas"]


@pytest.mark.parametrize(("path", "allow"), [
    (f"/v1/experiments/{JOB_ID}", "DELETE, GET, HEAD, OPTIONS"),
    ("/v1/experiments", "GET, HEAD, OPTIONS, POST"),
    (f"/v1/experiments/{JOB_ID}/cancel", "OPTIONS, POST"),
])
def test_hardening_13_options_and_405_list_every_method_of_the_path(api, openapi, path, allow):
    """Hardening item 13: OPTIONS is a 204 with the path's methods; a 405 has the same Allow,
    and both agree with the document."""
    options = api.options(path)
    assert options.status_code == 204 and options.headers["allow"] == allow
    refused = api.put(path)
    assert refused.status_code == 405 and refused.headers["allow"] == allow
    template = path.replace(JOB_ID, "{job_id}")
    documented = {m.upper() for m in openapi["paths"][template]}
    assert documented | {"OPTIONS"} | ({"HEAD"} if "GET" in documented else set()) == set(
        allow.split(", "))


def test_options_of_an_unknown_path_is_404(api):
    assert api.options("/v1/nowhere").status_code == 404


def _with(section: str, **fields: Any) -> dict[str, Any]:
    doc = _small_spec()
    doc[section] = {**copy.deepcopy(doc[section]), **fields}
    return doc


BODIES = {
    "depth 3": _with("model", depth=3),
    "depth 3.0": _with("model", depth=3.0),  # JSON Schema's integer: so the server's too
    "depth 65.0": _with("model", depth=65.0),
    "depth 128.0": _with("model", depth=128.0),
    "depth 129.0": _with("model", depth=129.0),
    "depth 3.5": _with("model", depth=3.5),
    "depth '3'": _with("model", depth="3"),
    "steps": _with("training", steps=5),
    "epochs": {**_small_spec(), "training": {"epochs": 2, "batch_size": 16, "device": "cpu"}},
    "steps and epochs": _with("training", steps=5, epochs=2),
    "neither": {**_small_spec(), "training": {"batch_size": 16, "device": "cpu"}},
    "steps null, epochs": _with("training", steps=None, epochs=2),
}


@pytest.mark.parametrize("case", list(BODIES))
def test_hardening_13_the_spec_schema_accepts_what_the_server_accepts(api, openapi, case):
    """Hardening item 13: integral floats, steps xor epochs: schema and server agree."""
    body = BODIES[case]
    by_schema = spec_validator(openapi).is_valid(body)
    response = api.post("/v1/specs/validate", json=body)
    assert response.status_code in (200, 422), response.text
    assert by_schema == (response.status_code == 200), (case, by_schema, response.text)


EXPERIMENT_CURSORS = ["1." + "0" * 32, "17646.9f" + "0" * 30, "9" * 20 + "." + "f" * 32,
                      "9" * 21 + "." + "f" * 32, "1." + "A" * 32, "1." + "0" * 31, "abc",
                      "", "1", ".", "-1." + "0" * 32, "1." + "0" * 32 + "\n", "s12"]
SWEEP_CURSORS = ["s0", "s12345", "s" + "9" * 20, "s" + "9" * 21, "S1", "s", "s-1", "12",
                 "s1.5", "s1\n"]


@pytest.mark.parametrize(("path", "cursors"), [("/v1/experiments", EXPERIMENT_CURSORS),
                                               ("/v1/sweeps", SWEEP_CURSORS)])
def test_hardening_13_the_cursor_pattern_is_what_the_server_accepts(api, openapi, path,
                                                                   cursors):
    """Hardening item 13: a cursor matches the documented pattern iff the server takes it."""
    documented = query_validator(openapi, path, "cursor")
    disagree = []
    for cursor in cursors:
        response = api.get(path, params={"cursor": cursor})
        assert response.status_code in (200, 422), response.text
        if documented.is_valid(cursor) != (response.status_code == 200):
            disagree.append((cursor, documented.is_valid(cursor), response.status_code))
    assert not disagree, disagree
