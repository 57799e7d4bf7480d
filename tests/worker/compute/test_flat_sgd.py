"""``FlatSGD`` with per-member learning rates and momenta is torch's SGD on each member alone.

The reference is ``torch.optim.sgd.sgd`` (what ``torch.optim.SGD.step`` calls) run on each
member's slice of the parameters with that member's scalar lr and momentum. The per-element
update must give the same numbers bit for bit, with and without Nesterov and weight decay, over
many steps (a rounding difference would show in the last bits within a few steps).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.sgd import sgd

from worker.compute.batched import FlatSGD


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
@pytest.mark.parametrize(("lrs", "moms"), [
    ([0.05, 0.1, 0.013], [0.9, 0.9, 0.9]),  # own lr, shared momentum
    ([0.05, 0.05, 0.05], [0.9, 0.5, 0.99]),  # shared lr, own momentum
    ([0.05, 0.1, 0.013], [0.9, 0.5, 0.99]),
])
def test_per_member_updates_are_torch_sgd_on_each_member(
        nesterov: bool, weight_decay: float, lrs: list[float], moms: list[float]) -> None:
    torch.manual_seed(0)
    k, n = len(lrs), 4096
    members = torch.arange(k).repeat_interleave(n)
    flat = nn.Parameter(torch.randn(k * n))
    flat.grad = torch.zeros(k * n)
    ref = flat.detach().clone()
    start = ref.clone()
    buffers: list[list[torch.Tensor | None]] = [[None] for _ in range(k)]
    opt = FlatSGD(flat, momentum=moms, nesterov=nesterov, weight_decay=weight_decay,
                  members=members)
    for _ in range(50):
        grad = torch.randn(k * n)
        flat.grad.copy_(grad)
        opt.step(lrs if len(set(lrs)) > 1 else lrs[0])
        for m in range(k):
            part = slice(m * n, (m + 1) * n)
            sgd([ref[part]], [grad[part]], buffers[m], foreach=False,
                weight_decay=weight_decay, momentum=moms[m], lr=lrs[m], dampening=0.0,
                nesterov=nesterov, maximize=False)
    assert torch.equal(flat.detach(), ref)
    assert (flat.detach() != start).float().mean() > 0.99  # every member was updated
