"""The diagnostic group table: the spec's literal, the presets and the result sections."""

from __future__ import annotations

from typing import get_args

from worker.core.diagnostic_groups import (
    GROUP_NAMES,
    GROUPS,
    PRESET_ORDER,
    PRESETS,
    SECTIONS,
    DiagnosticGroup,
)
from worker.core.result import ExperimentResult
from worker.core.spec import DiagnosticsSpec


def test_the_spec_literal_is_the_table_in_its_order():
    assert get_args(DiagnosticGroup) == GROUP_NAMES
    assert len(set(GROUP_NAMES)) == len(GROUP_NAMES)
    schema = DiagnosticsSpec.model_json_schema()["properties"]["groups"]
    assert schema["propertyNames"]["enum"] == list(GROUP_NAMES)


def test_presets_are_nested_and_full_turns_every_group_on():
    ladder = [PRESETS[p] for p in PRESET_ORDER]
    assert ladder[0] == frozenset()
    assert all(a < b for a, b in zip(ladder, ladder[1:], strict=False))
    assert PRESETS["full"] == frozenset(GROUP_NAMES)
    for group in GROUPS:
        assert group.name in PRESETS[group.preset]
        smaller = PRESET_ORDER[: PRESET_ORDER.index(group.preset)]
        assert all(group.name not in PRESETS[p] for p in smaller)


def test_sections_sit_in_the_result_between_the_environment_and_the_findings():
    fields = list(ExperimentResult.model_fields)
    names = [s.name for s in SECTIONS]
    start = fields.index("environment") + 1
    assert fields[start : start + len(names)] == names
    assert fields[start + len(names)] == "findings"


def test_every_group_has_a_description():
    assert all(g.description.strip() for g in GROUPS)
