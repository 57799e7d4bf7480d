"""The example designs in examples/: valid, within the default budgets, listed, comparable.

Every file is validated as the API validates a request body (strict JSON), analyzed, and
checked against the default server budgets. Files in one comparison must differ only in the
choice they compare. Shortened copies train through the runner, and the depth-16 trio shows at
initialization what the README says it shows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from worker.compute.pipeline import run_experiment
from worker.core.settings import Settings
from worker.core.spec import ExperimentSpec, analyze, total_steps

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = sorted(EXAMPLES.glob("*.json"))
VARIANTS = ["sigmoid", "tanh", "relu-kaiming", "relu-residual", "relu-batchnorm"]
DEPTHS = [2, 8, 16]
CPU_FLOP_BUDGET = 5e11  # training FLOPs; a minute on one core at a few GFLOP/s


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return body


def test_the_canonical_comparisons_are_all_there():
    names = {f.stem for f in FILES}
    expected = {f"depth{d}-{v}" for d in DEPTHS for v in VARIANTS} | {
        "maxout-vs-relu-maxout",
        "maxout-vs-relu-relu",
        "adding50-rnn",
        "adding50-lstm",
        "sin-vs-relu-sin",
        "sin-vs-relu-relu",
    }
    assert names == expected


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_example_is_a_valid_affordable_spec(path):
    spec = ExperimentSpec.model_validate_json(path.read_text())  # strict, as the API reads it
    analysis = analyze(spec)
    assert spec.name, "every example says what it is"
    assert spec.training.device == "auto"  # runs wherever the server has room
    defaults = Settings.model_fields
    assert analysis.parameters <= defaults["max_parameters"].default
    steps = total_steps(spec)
    assert steps * spec.training.batch_size <= defaults["max_steps_x_batch"].default
    assert steps * analysis.flops_per_step(spec.training.batch_size) < CPU_FLOP_BUDGET


def test_readme_lists_every_example_and_no_other():
    readme = (EXAMPLES / "README.md").read_text()
    listed = set(re.findall(r"`([\w-]+)\.json`", readme))
    assert listed == {f.stem for f in FILES}
    assert "curl -X POST localhost:8000/v1/experiments" in readme


def differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths where two JSON documents differ (name excluded)."""
    out: set[str] = set()
    for key in (a.keys() | b.keys()) - {"name"}:
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out |= differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.add(f"{prefix}{key}")
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_depth_sweep_points_differ_only_in_depth(variant):
    first = load(f"depth{DEPTHS[0]}-{variant}")
    for depth in DEPTHS[1:]:
        assert differences(first, load(f"depth{depth}-{variant}")) == {"model.depth"}


@pytest.mark.parametrize("depth", DEPTHS)
def test_variants_at_one_depth_share_task_optimizer_and_budget(depth):
    base = load(f"depth{depth}-sigmoid")
    for variant in VARIANTS[1:]:
        diff = differences(base, load(f"depth{depth}-{variant}"))
        assert all(d.startswith(("model.", "init.")) for d in diff), diff


@pytest.mark.parametrize(
    ("a", "b", "allowed"),
    [
        ("adding50-rnn", "adding50-lstm", {"model.family", "init.lstm_forget_bias"}),
        ("sin-vs-relu-sin", "sin-vs-relu-relu", {"model.activation", "model.frequency"}),
        ("maxout-vs-relu-maxout", "maxout-vs-relu-relu", {"model.layers"}),
    ],
)
def test_pairs_differ_only_in_the_compared_choice(a, b, allowed):
    assert differences(load(a), load(b)) == allowed


def test_adding_pair_is_the_long_dependency_problem():
    for name in ("adding50-rnn", "adding50-lstm"):
        spec = ExperimentSpec.model_validate(load(name))
        assert spec.data.kind == "adding" and spec.data.length == 50
    assert load("adding50-lstm")["init"]["lstm_forget_bias"] == 1.0


def shortened(name: str, steps: int = 2, **data: Any) -> ExperimentSpec:
    body = load(name)
    body["training"] = {**body["training"], "steps": steps, "device": "cpu"}
    body["data"] = {**body["data"], **data}
    body["diagnostics"] = {"preset": "basic", "probe_batch_size": 128}
    return ExperimentSpec.model_validate(body)


@pytest.mark.parametrize(
    "name", ["depth16-relu-batchnorm", "adding50-lstm", "maxout-vs-relu-maxout", "sin-vs-relu-sin"]
)
def test_shortened_copies_train(name):
    result = run_experiment(shortened(name, n_train=128, n_val=32))
    assert result["summary"]["outcome"] == "completed"


def test_depth16_claims_at_initialization():
    """Deep sigmoid vanishes at init; relu + He init and relu + skips at the same depth do not."""

    def verdict(name: str) -> str:
        result = run_experiment(shortened(name, steps=1))
        first = result["gradient_flow"]["probes"][0]
        assert first["step"] == 0
        return str(first["verdict"])

    assert verdict("depth16-sigmoid") == "vanishing"
    assert verdict("depth16-relu-kaiming") != "vanishing"
    assert verdict("depth16-relu-residual") != "vanishing"
