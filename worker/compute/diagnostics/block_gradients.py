"""Per-block gradient norms: ||dL/d theta_b|| over the parameters of each attention block.

The signature Xiong et al. (2020, arXiv 2002.04745) derive for Post-LN transformers: at
initialization the gradient of the parameters near the output is large and falls toward the
input, so a learning rate that suits the early blocks is too large for the last ones (hence
warm-up); Pre-LN's stays about level with depth. ``last_to_first`` is the last block's norm over
the first's. From the shared probe capture (full probe-batch gradient), at every probe step.
"""

from __future__ import annotations

import math

from worker.compute.diagnostics.attention_trace import attention_blocks
from worker.compute.diagnostics.base import BuildContext, Diagnostic, ProbeContext, ReportContext
from worker.core.spec import TransformerBlockLayer, analyze


class BlockGradients(Diagnostic):
    """||dL/d theta_b|| per attention block, at each probe."""

    name = "block_gradients"
    needs_capture = True

    def __init__(self, blocks: list[str], params: list[list[int]],
                 norm_position: list[str | None], warmup_steps: int) -> None:
        super().__init__()
        self.blocks, self.params = blocks, params
        self.norm_position, self.warmup_steps = norm_position, warmup_steps

    def at_probe(self, ctx: ProbeContext) -> None:
        assert ctx.capture is not None
        grads = ctx.capture.param_grads
        norms = [math.sqrt(sum(float(grads[i].double().pow(2).sum()) for i in idx))
                 for idx in self.params]
        ratio = norms[-1] / norms[0] if len(norms) > 1 and norms[0] > 0 else None
        self.records.append({"step": ctx.step, "grad_norm": norms, "last_to_first": ratio})

    def report(self, ctx: ReportContext) -> None:
        ctx.section(self.name)[self.name] = {
            "blocks": self.blocks, "norm_position": self.norm_position,
            "warmup_steps": self.warmup_steps, "probes": self.records,
        }


def build(ctx: BuildContext) -> BlockGradients | None:
    """None for a model without attention."""
    blocks = attention_blocks(ctx.model)
    if not blocks:
        return None
    index = {id(p): i for i, p in enumerate(ctx.model.parameters())}
    layers = dict(zip(ctx.model.layer_names, analyze(ctx.spec).layers, strict=True))
    positions: list[str | None] = [
        layer.norm_position if isinstance(layer, TransformerBlockLayer) else None
        for layer in (layers[name] for name, _ in blocks)
    ]
    return BlockGradients(
        [name for name, _ in blocks],
        [[index[id(p)] for p in module.parameters()] for _, module in blocks],
        positions, ctx.spec.optimizer.schedule.warmup_steps,
    )
