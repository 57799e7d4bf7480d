"""A sweep cohort: K points of one design (``worker/core/cohorts.py``) trained together.

Member k is exactly point k's single run: its data (from its own ``training.seed``), weights
(``torch.manual_seed`` of that seed, then the point's init), batch order, learning rate and
momentum; the batched loop (``batched_loop.py``) steps all of them at once. Each member keeps
its own progress and stop; a member that ends (cancelled, diverged) is finished and reported at
once (``on_result``), so its job ends then, not with the cohort. Its result is a single run's
plus a ``cohort`` section saying it trained batched with K - 1 other points.

Members with another learning rate or momentum than the first take per-element factors in the
update (``FlatSGD``, the same numbers as torch's update, bit for bit). What can differ from a
single run is the batched matrix product, which may sum in another order than a single one for
some shapes; training amplifies that last bit, so members match their single runs to float
rounding (``tests/worker/compute/test_cohort.py``), and where the shapes allow, exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from worker.compute.batched import BatchedNet, batch_reason
from worker.compute.batched_loop import train_batched
from worker.compute.data import Dataset, make_dataset
from worker.compute.init_seeds import with_init_seed_agreement
from worker.compute.model import build_model
from worker.compute.pipeline import RunHooks, job_deadline, resolve_device
from worker.compute.results import json_safe, member_result
from worker.compute.seed_members import SeedMember, build_member
from worker.compute.stacked_layers import Unbatchable
from worker.compute.training import TrainHooks, TrainOutcome, train
from worker.core.spec import ExperimentSpec, analyze

#: Called with a member's index and its JSON-safe result, as soon as that member ends.
ResultFn = Callable[[int, dict[str, Any]], None]


def cohort_batch_reason(spec: ExperimentSpec) -> str | None:
    """None when the design trains batched, else why not (built on the meta device: no
    memory, no arithmetic)."""
    with torch.device("meta"):
        net = build_model(spec)
    return batch_reason([net], analyze(spec).data.input_shape)


def build_cohort(specs: Sequence[ExperimentSpec], device: torch.device) -> list[SeedMember]:
    """Each point's model, probes and data, as its single run makes them (a dataset shared by
    the points with one seed)."""
    datasets: dict[int, Dataset] = {}
    members = []
    for spec in specs:
        seed = spec.training.seed
        data = datasets.get(seed) or datasets.setdefault(
            seed, make_dataset(spec.data, seed, device))
        members.append(build_member(spec, data))
    return members


def run_cohort(specs: Sequence[ExperimentSpec], hooks: Sequence[RunHooks],
               on_result: ResultFn) -> None:
    """Train the points as one batched model (one after another where a layer has no batched
    form); every member's result goes to ``on_result`` when it ends."""
    started = time.perf_counter()
    lead = specs[0]
    deadline = job_deadline(lead, hooks[0])
    members = build_cohort(specs, resolve_device(lead.training.device))
    member_hooks = [TrainHooks(h.on_progress, h.should_stop, deadline) for h in hooks]
    try:
        net: BatchedNet | None = BatchedNet([m.model for m in members],
                                            analyze(lead).data.input_shape)
        fallback = None
    except Unbatchable as exc:
        net, fallback = None, f"{exc}: the points trained one after another"
    size = len(members)

    def ended(k: int, run: TrainOutcome) -> None:
        m = members[k]
        result = member_result(m.spec, analyze(m.spec), m.model, m.probes, run, m.data,
                               time.perf_counter() - started)
        result["cohort"] = {"size": size, "index": k, "batched": net is not None,
                            "fallback": fallback}
        if m.spec.diagnostics.init_seeds:
            result = with_init_seed_agreement(m.spec, result, m.data, deadline)
        on_result(k, json_safe(result))

    if net is not None:
        train_batched(lead, members, net, TrainHooks(deadline=deadline), member_hooks, ended)
        return
    for k, m in enumerate(members):
        ended(k, train(m.spec, m.model, m.data, m.probes, member_hooks[k]))
