"""The pieces of a batched run that are not the loop: a member, and the per-member loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from worker.compute.data import Dataset
from worker.compute.diagnostics.probes import ProbeSet
from worker.compute.evaluation import loss_function, uses_cross_entropy
from worker.compute.model import Net, build_model
from worker.compute.results import build_probes
from worker.core.spec import DataShape, ExperimentSpec


@dataclass
class RandomState:
    """The global random state (CPU, and CUDA where present) at one moment."""

    cpu: Tensor
    cuda: list[Tensor] | None

    @classmethod
    def now(cls) -> RandomState:
        cuda = (torch.cuda.get_rng_state_all()
                if torch.cuda.is_initialized() else None)  # type: ignore[no-untyped-call]
        return cls(torch.get_rng_state(), cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


@dataclass
class SeedMember:
    """One model of a batched run: its seed, the spec of its single run, its model, its probes,
    its data, and the random state right after the model was drawn. The members of a
    ``training.seeds`` run share one dataset; those of a cohort (``cohort.py``) may not."""

    seed: int
    spec: ExperimentSpec
    model: Net
    probes: ProbeSet | None
    data: Dataset
    rng: RandomState = field(default_factory=RandomState.now)


def build_member(spec: ExperimentSpec, data: Dataset) -> SeedMember:
    """The model of ``spec`` (its ``training.seed``), initialized, with its probes, exactly as
    a single run with that spec makes them."""
    torch.manual_seed(spec.training.seed)
    model = build_model(spec).to(data.x_train.device)
    probes = build_probes(spec, model, data, loss_function(data.shape, spec.training.loss))
    # the random state is captured now, right after the draw (probes use their own streams)
    return SeedMember(spec.training.seed, spec, model, probes, data)


MemberLoss = Callable[[Tensor, Tensor], Tensor]


def batched_losses(shape: DataShape, choice: str = "auto") -> MemberLoss:
    """``training.loss_function`` for K members at once: outputs ``[K, B, ...]`` -> the K
    members' mean losses (each over its own batch, as a single run averages)."""
    use_ce = uses_cross_entropy(shape, choice)
    classes = shape.output_dim

    def loss(out: Tensor, y: Tensor) -> Tensor:
        k = out.shape[0]
        if use_ce:  # the class axis second: [K, C, B, ...] (a view), targets [K, B, ...]
            # log-softmax then runs along a strided axis, vectorized over the batch: ~1/8 of
            # its time along a last axis of 10 classes (bench/profile_batched_step.py), with the
            # same value per element
            each = F.cross_entropy(out.movedim(-1, 1), y.reshape(out.shape[:-1]),
                                   reduction="none")
            return each.view(k, -1).mean(dim=1)
        flat = out.reshape(-1, out.shape[-1])
        target = (F.one_hot(y.reshape(-1), classes).to(out.dtype) if y.dtype == torch.long
                  else y.reshape(flat.shape))
        return F.mse_loss(flat, target, reduction="none").view(k, -1).mean(dim=1)

    return loss
