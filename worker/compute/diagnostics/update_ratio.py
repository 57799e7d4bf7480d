"""Update-to-weight ratio ||W_{t+1} - W_t|| / ||W_t|| of the real SGD+momentum update.

At each probe step t the weights are copied; after the next optimizer step the ratio per
weight layer is recorded under step t. About 1e-3 is the usual healthy scale; far below
(1e-5) a layer is frozen, far above (1e-2 and more) it is thrashing.
"""

from __future__ import annotations

from torch import Tensor

from worker.compute.diagnostics.base import BuildContext, Diagnostic, ProbeContext, ReportContext
from worker.compute.model import Net


class UpdateRatio(Diagnostic):
    name = "update_ratio"

    def __init__(self) -> None:
        super().__init__()
        self._before: list[Tensor] = []
        self._step = 0

    def at_probe(self, ctx: ProbeContext) -> None:
        if ctx.step >= ctx.total_steps:
            return  # no update follows the last step
        self._before = [w.detach().clone() for w in ctx.model.weight_tensors()]
        self._step = ctx.step
        self.wants_update = True

    def after_update(self, model: Net, step: int) -> None:
        names = [name for name, _ in model.weight_layers()]
        ratios = []
        for before, after in zip(self._before, model.weight_tensors(), strict=True):
            norm = float(before.double().norm())
            delta = float((after.detach() - before).double().norm())
            ratios.append(delta / norm if norm > 0 else None)
        self.records.append({"step": self._step, "layers": names, "update_to_weight": ratios})
        self._before = []
        self.wants_update = False

    def report(self, ctx: ReportContext) -> None:
        """The ratio goes into each gradient-flow probe record (nothing without that group)."""
        flow = ctx.existing(self.name)
        if flow is None:
            return
        updates = {u["step"]: u["update_to_weight"] for u in self.records}
        for record in flow["probes"]:
            record["update_to_weight"] = updates.get(record["step"])


def build(ctx: BuildContext) -> UpdateRatio:
    return UpdateRatio()
