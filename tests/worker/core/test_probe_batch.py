"""The probe batch's size: the spec's, or a default that counts positions for token tasks."""

from __future__ import annotations

from typing import Any

import pytest

from worker.core.spec import ExperimentSpec
from worker.core.spec.experiment import DEFAULT_PROBE_BATCH, MIN_TOKEN_PROBE_BATCH, PROBE_TOKENS


def spec(data: dict[str, Any], **diagnostics: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "spec_version": 1,
        "model": {"family": "mlp", "depth": 2, "width": 8},
        "data": data,
        "training": {"steps": 1},
        "diagnostics": diagnostics,
    })


def test_vector_data_default_is_256_examples() -> None:
    assert spec({"kind": "spirals"}).probe_batch() == DEFAULT_PROBE_BATCH == 256


@pytest.mark.parametrize(("length", "expected"), [
    (32, 64),  # 64 sequences x 32 positions = 2048
    (100, 21),  # ceil(2048 / 100)
    (4, 256),  # 512 sequences would be needed: capped at the vector default
    (1000, 16),  # 3 would do: at least 16 sequences
])
def test_token_data_default_counts_positions(length: int, expected: int) -> None:
    s = spec({"kind": "markov_language", "vocab": 4, "order": 1, "length": length})
    assert s.probe_batch() == expected
    assert expected == max(MIN_TOKEN_PROBE_BATCH,
                           min(DEFAULT_PROBE_BATCH, -(-PROBE_TOKENS // length)))


def test_prompt_task_counts_its_input_steps() -> None:
    # token_copy, length 8: causal, prompt + answer = 16 steps -> 2048 / 16 = 128 sequences;
    # bidirectional, prompt + SEP + answer = 17 steps -> ceil(2048 / 17) = 121
    assert spec({"kind": "token_copy", "length": 8}).probe_batch() == 128
    assert spec({"kind": "token_copy", "length": 8, "causal": False}).probe_batch() == 121


def test_an_explicit_size_wins() -> None:
    s = spec({"kind": "markov_language", "vocab": 4, "order": 1, "length": 32},
             probe_batch_size=200)
    assert s.probe_batch() == 200
    assert spec({"kind": "spirals"}, probe_batch_size=8).probe_batch() == 8
