"""The dry run's memory estimate (``worker.core.budgets.memory_estimate``) against the peak
memory a real run takes, measured in this process (Linux: ``VmHWM`` after resetting it).

Found on main: a 2,000,000 x 4096 teacher dataset was estimated at 796,656 bytes (the data
were not counted) and made a worker allocate 61 GiB (the inputs were drawn as float64, then
copied by each step of standardization). The estimate now counts the data, and the data are
made in float32, in place, so that the estimate holds within ``FACTOR``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from worker.compute.pipeline import run_experiment
from worker.core.budgets import estimate_cost
from worker.core.spec import ExperimentSpec

pytestmark = pytest.mark.usefixtures("one_thread")

#: The measured peak (above the memory in use before the run) lies within this factor of the
#: estimate, either way.
FACTOR = 1.5
#: The estimate may over-count (a fresh process's allocator returns pages sooner): measured as
#: low as 0.59x of it in a clean clone. Refusing a job on an over-estimate is safe; under- is not.
OVER = 2.5
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _kib(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB$", STATUS.read_text(), re.MULTILINE)
    assert found, field
    return int(found.group(1)) * 1024


def peak_bytes_of(run: Any) -> int:
    """Bytes the process's resident peak rose by while ``run()`` ran."""
    CLEAR_REFS.write_text("5")  # the peak (VmHWM) starts again from the resident size
    before = _kib("VmRSS")
    run()
    return _kib("VmHWM") - before


def spec(data: dict[str, Any]) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "spec_version": 1,
        "model": {"family": "mlp", "depth": 1, "width": 16},
        "data": data,
        "training": {"steps": 2, "batch_size": 16, "device": "cpu"},
        "diagnostics": {"preset": "off"},
    })


@pytest.mark.skipif(not CLEAR_REFS.exists(), reason="needs Linux /proc/self/clear_refs")
def test_hardening_1_the_memory_estimate_holds_against_the_measured_peak():
    """Hardening item 1: a data-heavy run peaks within FACTOR of the dry run's estimate."""
    # the design (teacher data, wide inputs), at a size a test can afford: 83 MB
    big = spec({"kind": "teacher", "input_dim": 256, "n_train": 38_000, "n_val": 2_000})
    cost = estimate_cost(big)
    assert cost.memory_breakdown["data"] > 0.95 * cost.memory_bytes  # the data dominate
    run_experiment(spec({"kind": "spirals", "n_train": 64, "n_val": 16}))  # warm code paths
    measured = peak_bytes_of(lambda: run_experiment(big))
    assert cost.memory_bytes / OVER <= measured <= cost.memory_bytes * FACTOR, (
        f"estimated {cost.memory_bytes:,} bytes, measured a peak of {measured:,}")
