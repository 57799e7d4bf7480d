"""``diagnostics.init_seeds``: the step-0 probes on fresh initializations, and in how many of
them each init-time finding fires.

The probes at initialization cost about one forward/backward pass each, so judging "will this
design train?" on several draws of its weights is cheap; a finding that fires on one draw in
five is luck, one that fires on five is the design. Initialization s is the run with
``training.seed = s`` (weights, probe batch) on the job's data; they run after training under
``torch.random.fork_rng``, so the trained run's random stream is the same with or without them.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from worker.compute.data import Dataset
from worker.compute.evaluation import loss_function
from worker.compute.model import build_model
from worker.compute.results import assemble_diagnostics, build_probes
from worker.core.findings import findings, headline
from worker.core.seed_agreement import with_init_agreement
from worker.core.spec import ExperimentSpec


def init_seed_list(spec: ExperimentSpec) -> list[int]:
    """The first training seed s and the fresh ones after it: s, s+1, ..."""
    first = spec.training.member_seeds()[0]
    return [first + i for i in range(spec.diagnostics.init_seeds or 1)]


def step0_findings(spec: ExperimentSpec, seed: int, data: Dataset,
                   base: dict[str, Any]) -> list[dict[str, Any]]:
    """The init-time findings of initialization ``seed`` (its step-0 probes only)."""
    member = spec.model_copy(
        update={"training": spec.training.model_copy(update={"seed": seed, "seeds": None})}
    )
    torch.manual_seed(seed)
    model = build_model(member).to(data.x_train.device)
    model.train()
    probes = build_probes(member, model, data, loss_function(data.shape, spec.training.loss))
    if probes is None:
        return []
    probes.run(model, 0, spec.optimizer.lr)
    result = {"summary": base["summary"], "model": base["model"],
              **assemble_diagnostics(member, model, probes)}
    return findings(member, result, init_only=True)


def with_init_seed_agreement(spec: ExperimentSpec, result: dict[str, Any], data: Dataset,
                             deadline: float | None) -> dict[str, Any]:
    """``result`` with every init-time finding judged on ``diagnostics.init_seeds``
    initializations (those past the deadline are not probed: ``seed_agreement.of`` says how
    many were)."""
    seeds = init_seed_list(spec)
    per_seed = [(seeds[0], findings(spec, result, init_only=True))]
    devices = [data.x_train.device] if data.x_train.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for seed in seeds[1:]:
            if deadline is not None and time.monotonic() > deadline:
                break
            per_seed.append((seed, step0_findings(spec, seed, data, result)))
    found = with_init_agreement(result["findings"], per_seed)
    return {**result, "findings": found, "headline": headline(found, result["summary"])}
