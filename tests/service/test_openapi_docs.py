"""The OpenAPI document is usable by generated clients: stable operation ids, a summary and a
description on every operation, examples on every request body (the example designs are the
files in examples/), a description on every field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.api.openapi_docs import SPEC_EXAMPLES, SWEEP_EXAMPLE
from service.main import create_app
from service.schemas.sweeps import SweepCreate
from service.settings import ServiceSettings
from worker.core.spec import ExperimentSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def schema():
    app = create_app(ServiceSettings(redis_url="redis://127.0.0.1:1/0"))
    return app.openapi()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield f"{method.upper()} {path}", op


def test_every_operation_has_a_stable_id_summary_and_description(schema):
    ids = []
    for where, op in operations(schema):
        assert op.get("operationId"), where
        assert op.get("summary") and op.get("description"), where
        ids.append(op["operationId"])
    assert len(ids) == len(set(ids))
    assert {"create_experiment", "get_experiment", "list_experiments", "create_sweep",
            "get_sweep", "list_sweeps", "cancel_sweep", "rerun_sweep", "get_experiment_report",
            "get_experiment_plot", "get_sweep_report", "get_sweep_plot"} <= set(ids)
    assert all(i.isidentifier() and "_v1_" not in i for i in ids)


def test_every_request_body_has_examples(schema):
    bodies = 0
    for where, op in operations(schema):
        if "requestBody" not in op:
            continue
        bodies += 1
        content = op["requestBody"]["content"]["application/json"]
        assert content.get("examples"), where
    assert bodies >= 3


def test_every_field_has_a_description(schema):
    missing = [f"{name}.{prop}" for name, model in schema["components"]["schemas"].items()
               for prop, spec in (model.get("properties") or {}).items()
               if not spec.get("description")]
    assert missing == []


def test_sweep_schemas_describe_their_own_fields():
    for model in (SweepCreate,):
        assert all(f.description for f in model.model_fields.values()), model


@pytest.mark.parametrize("name", sorted(SPEC_EXAMPLES))
def test_spec_examples_are_the_example_files(name):
    assert SPEC_EXAMPLES[name] == json.loads((EXAMPLES / f"{name}.json").read_text())
    ExperimentSpec.model_validate_json(json.dumps(SPEC_EXAMPLES[name]))


def test_the_sweep_example_is_valid():
    SweepCreate.model_validate_json(json.dumps(SWEEP_EXAMPLE))
