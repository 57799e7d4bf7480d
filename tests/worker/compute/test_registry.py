"""The probe registry against the core group table: the same groups, each built once."""

from __future__ import annotations

import pytest

from tests.worker.conftest import SEQ, VEC, make
from worker.compute.diagnostics.registry import (
    PROBES,
    RegistryMismatch,
    build_diagnostics,
    check_registry,
)
from worker.compute.model import build_model
from worker.core.diagnostic_groups import GROUP_NAMES, PRESETS, SECTIONS
from worker.core.result import ExperimentResult
from worker.core.spec import ExperimentSpec


def test_every_group_has_a_probe_and_every_probe_a_group():
    assert set(PROBES) == set(GROUP_NAMES)


def test_a_registry_that_misses_or_invents_a_group_is_refused():
    missing = {k: v for k, v in PROBES.items() if k != "sharpness"}
    with pytest.raises(RegistryMismatch, match="sharpness"):
        check_registry(missing, GROUP_NAMES)
    with pytest.raises(RegistryMismatch, match="attention"):
        check_registry({**PROBES, "attention": PROBES["sharpness"]}, GROUP_NAMES)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_preset_builds_one_diagnostic_per_probe_of_its_groups(preset):
    # a recurrent layer and attention: every group applies
    spec = make({"layers": [{"type": "lstm", "hidden": 4, "return_sequences": True},
                            {"type": "transformer_block", "heads": 1, "causal": False},
                            {"type": "sequence_pool"}]}, SEQ, preset=preset)
    diagnostics = build_diagnostics(spec, build_model(spec))
    names = [d.name for d in diagnostics]
    assert len(names) == len(set(names))  # alignment and trajectory share one probe
    assert set(names) <= PRESETS[preset]
    expected = {PROBES[g] for g in PRESETS[preset]}
    assert len(diagnostics) == len(expected)


def test_a_group_that_does_not_apply_builds_nothing():
    doc = make({"depth": 2, "width": 8}, VEC, preset="off").model_dump()
    doc["diagnostics"]["groups"] = {"recurrent": True}
    spec = ExperimentSpec.model_validate(doc)
    assert build_diagnostics(spec, build_model(spec)) == []


def test_every_section_is_an_optional_field_of_the_result():
    fields = ExperimentResult.model_fields
    for section in SECTIONS:
        assert fields[section.name].annotation == section.model | None
        assert not fields[section.name].is_required()
