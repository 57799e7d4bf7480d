"""K initializations of one design as one batched module: every layer runs all K at once.

A tiny model is dispatch-bound (ARCHITECTURE.md): K of them trained one after another pay K
times the per-op overhead, while one batched model pays it once for K times the arithmetic.
Each layer's stacked form (``stacked_layers.py``, ``stacked_transformer.py``) keeps its members'
parameters stacked, member-major. Members never mix: SGD, momentum and weight decay are
elementwise, and each member's loss only reaches its own parameters.

Layers without a batched form raise :class:`Unbatchable` naming the layer and why; the caller
then trains the members one after another (``seeds.py``). Recurrent layers (RNN, GRU, LSTM) are
among them: batched, they would run as a Python loop over time steps (a batched matrix product
per step), measured 2x slower than K members each on PyTorch's fused ``nn.LSTM`` kernel
(bench/bench_batched_seeds.py); without a fused batched kernel the members train one after
another. So is dropout (its masks come from each member's own random stream). Transformer layers
batch as sequences ``[K, B, T, d]``: attention is the single model's written-out
softmax(Q K^T / sqrt(d)) V with one more leading axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.optim.sgd import sgd

from worker.compute.activations import Elementwise
from worker.compute.attention import GatedMLP, PositionalEncoding, SelfAttention, SequencePool
from worker.compute.layers import Maxout, Recurrent, Residual
from worker.compute.model import Net
from worker.compute.stacked_layers import (
    Layout,
    SBatchNorm,
    SConv2d,
    SFlatten,
    SLayerNorm,
    SLinear,
    SMaxout,
    SResidual,
    SRMSNorm,
    Stacked,
    Unbatchable,
)
from worker.compute.stacked_transformer import SAttention, SBlock, SGatedMLP, SPositional
from worker.compute.transformer import TransformerBlock


def _stacked(mods: list[nn.Module], layout: Layout, k: int) -> tuple[nn.Module, Layout]:
    """The batched form of one layer of every member, and the layout it outputs."""
    m = mods[0]
    if isinstance(m, nn.Linear) and layout == "vec":
        return SLinear(mods), layout  # type: ignore[arg-type]
    if isinstance(m, Elementwise):
        return m, layout  # elementwise: any layout, no parameters
    if isinstance(m, Maxout) and layout == "vec":
        return SMaxout(mods), layout  # type: ignore[arg-type]
    if isinstance(m, nn.Flatten):
        return SFlatten(k, layout), "vec"
    if isinstance(m, nn.Conv2d) and layout == "img":
        return SConv2d(mods), layout  # type: ignore[arg-type]
    if isinstance(m, nn.MaxPool2d | nn.AvgPool2d) and layout == "img":
        return m, layout
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return SBatchNorm(mods, layout), layout  # type: ignore[arg-type]
    if isinstance(m, nn.LayerNorm):
        return SLayerNorm(mods, layout), layout  # type: ignore[arg-type]
    if isinstance(m, nn.RMSNorm) and layout == "vec":
        return SRMSNorm(mods), layout  # type: ignore[arg-type]
    if isinstance(m, nn.Identity):
        return m, layout
    if isinstance(m, nn.Sequential):
        inner, seq = layout, []
        for i in range(len(m)):
            layer, inner = _stacked([s[i] for s in mods], inner, k)  # type: ignore[index]
            seq.append(layer)
        return nn.Sequential(*seq), inner
    if layout == "vec":
        if isinstance(m, SelfAttention):
            return SAttention(mods), layout  # type: ignore[arg-type]
        if isinstance(m, GatedMLP):
            return SGatedMLP(mods), layout  # type: ignore[arg-type]
        if isinstance(m, PositionalEncoding):
            return SPositional(mods), layout  # type: ignore[arg-type]
        if isinstance(m, SequencePool):
            return m, layout  # pools over the steps axis, whatever leads it
        if isinstance(m, TransformerBlock):
            if not isinstance(m.drop, nn.Identity):
                raise Unbatchable("dropout draws its masks from each member's own random stream")
            attention, mlp, norm1, norm2 = (_stacked([getattr(b, part) for b in mods], layout, k)[0]
                                            for part in ("attention", "mlp", "norm1", "norm2"))
            return SBlock(mods, attention, mlp, (norm1, norm2)), layout  # type: ignore[arg-type]
    if isinstance(m, Recurrent):
        raise Unbatchable(f"{m.kind.upper()} has no fused batched kernel; unrolled over time it "
                          "runs slower than each member's own fused kernel")
    if isinstance(m, Residual):
        return _residual(mods, layout, k), layout  # type: ignore[arg-type]
    if isinstance(m, nn.Dropout):
        raise Unbatchable("dropout draws its masks from each member's own random stream")
    raise Unbatchable(f"{type(m).__name__} has no batched form")


def _residual(mods: list[Residual], layout: Layout, k: int) -> SResidual:
    body, inner = [], layout
    for i in range(len(mods[0].body)):
        layer, inner = _stacked([r.body[i] for r in mods], inner, k)
        body.append(layer)
    projection = None
    if not isinstance(mods[0].projection, nn.Identity):
        projection, _ = _stacked([r.projection for r in mods], layout, k)
    return SResidual(body, projection)


class BatchedNet(nn.Module):
    """K ``Net``s of one design as one module: input ``[K, B, *input_shape]``, output
    ``[K, B, ...]``; ``export(k)`` writes member k's parameters and buffers into its ``Net``."""

    def __init__(self, nets: list[Net], input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.k = len(nets)
        self.image_input = len(input_shape) == 3
        layout: Layout = "img" if self.image_input else "vec"
        layers = []
        for i, name in enumerate(nets[0].layer_names):
            try:
                layer, layout = _stacked([net.layers[i] for net in nets], layout, self.k)
            except Unbatchable as exc:
                raise Unbatchable(f"layer {name}: {exc}") from exc
            layers.append(layer)
        if layout != "vec":
            raise Unbatchable("the head reads an image (no flatten before it)")
        self.layers = nn.ModuleList(layers)
        self.head = SLinear([net.head for net in nets])

    def forward(self, x: Tensor) -> Tensor:
        if self.image_input:  # [K, B, C, H, W] -> [B, K*C, H, W]
            x = x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])
        for layer in self.layers:
            x = layer(x)
        out: Tensor = self.head(x)
        return out

    def export(self, k: int) -> None:
        for module in self.modules():
            if isinstance(module, Stacked):
                module.export(k)

    @torch.no_grad()
    def flatten(self) -> nn.Parameter:
        """Make every parameter a view into one flat parameter, and its gradient a view into
        the flat parameter's gradient (zeros); the flat parameter.

        The optimizer then updates one tensor: SGD with momentum is three elementwise ops for
        the whole model instead of three per parameter (about half the optimizer's time on the
        K = 8 MLP of bench/bench_batched_seeds.py). Clear the gradient with ``grad.zero_()``
        (backward adds into it), never by setting it to None."""
        params = list(self.parameters())
        flat = nn.Parameter(torch.cat([p.reshape(-1) for p in params]))
        flat.grad = torch.zeros_like(flat)
        at = 0
        for p in params:
            n = p.numel()
            p.data = flat.data[at:at + n].view_as(p)
            p.grad = flat.grad[at:at + n].view_as(p)
            at += n
        return flat

    def member_of_flat(self) -> Tensor:
        """The member each element of the flat parameter (``flatten``) belongs to."""
        return torch.cat([torch.arange(self.k, device=p.device).repeat_interleave(
            p.numel() // self.k) for p in self.parameters()])

    def member_rows(self) -> list[Tensor]:
        """Each parameter's gradient viewed as ``[K, -1]`` (member k's in row k)."""
        return [p.grad.view(self.k, -1) for p in self.parameters() if p.grad is not None]


class FlatSGD:
    """SGD with momentum on a flattened ``BatchedNet`` (``flatten``): torch's own update
    (``torch.optim.sgd.sgd``, the function ``torch.optim.SGD.step`` calls, so the numbers are
    the single-seed run's), without the ``Optimizer`` wrapper around it (profiler hooks, hook
    and state bookkeeping): on the K = 8 MLP that wrapper cost more than the update itself.

    Members with their own learning rate or momentum (sweep cohorts) take the same update with
    per-element factors (``members``: the member of each flat element), written with the ops
    whose rounding matches torch's (``addcmul`` where torch adds with ``alpha``): each member's
    numbers are those of ``sgd`` on its own, bit for bit (tests/worker/compute/test_flat_sgd.py).
    """

    def __init__(self, flat: nn.Parameter, *, momentum: float | Sequence[float], nesterov: bool,
                 weight_decay: float, members: Tensor | None = None) -> None:
        self.flat = flat
        moms = [momentum] if isinstance(momentum, float | int) else list(momentum)
        self.momentum, self.nesterov, self.weight_decay = float(moms[0]), nesterov, weight_decay
        self.members = members
        self.momenta: Tensor | None = None  # per element, where the members' differ
        if len(set(moms)) > 1:
            assert members is not None, "per-member momentum needs the members of the elements"
            self.momenta = torch.tensor(moms, dtype=flat.dtype, device=flat.device)[members]
        self.buffers: list[Tensor | None] = [None]
        self._lrs: tuple[Tensor, Tensor] | None = None

    @torch.no_grad()
    def step(self, lr: float | Sequence[float] | Tensor) -> None:
        """One update; ``lr``: one for every member, or each member's (a list, or a ``[K]``
        tensor on the parameters' device)."""
        assert self.flat.grad is not None
        if isinstance(lr, float | int):
            if self.momenta is None:
                sgd([self.flat], [self.flat.grad], self.buffers, foreach=False,
                    weight_decay=self.weight_decay, momentum=self.momentum, lr=float(lr),
                    dampening=0.0, nesterov=self.nesterov, maximize=False)
            else:
                self._per_member_step(float(lr))
            return
        if not isinstance(lr, Tensor):
            lr = torch.tensor(lr, dtype=self.flat.dtype, device=self.flat.device)
        self._per_member_step(self._lr_elements(lr))

    def _lr_elements(self, lrs: Tensor) -> Tensor:
        """Each element's learning rate (kept while the members' rates are the same tensor)."""
        if self._lrs is None or self._lrs[0] is not lrs:
            assert self.members is not None, "per-member rates need the members of the elements"
            self._lrs = (lrs, lrs[self.members])
        return self._lrs[1]

    def _per_member_step(self, lrs: Tensor | float) -> None:
        """``torch.optim.sgd``'s single-tensor update with per-element momentum and lr (one
        for all: a float)."""
        grad = self.flat.grad
        assert grad is not None
        if self.weight_decay:
            grad = grad.add(self.flat, alpha=self.weight_decay)
        moms = self.momenta
        if moms is not None or self.momentum:
            buf = self.buffers[0]
            if buf is None:
                buf = self.buffers[0] = torch.clone(grad).detach()
            elif moms is not None:
                buf.mul_(moms).add_(grad)
            else:
                buf.mul_(self.momentum).add_(grad)
            if self.nesterov:
                grad = torch.addcmul(grad, buf, moms) if moms is not None else grad.add(
                    buf, alpha=self.momentum)
            else:
                grad = buf
        if isinstance(lrs, float):
            self.flat.add_(grad, alpha=-lrs)
        else:
            self.flat.addcmul_(grad, lrs, value=-1)


def batch_reason(nets: list[Net], input_shape: tuple[int, ...]) -> str | None:
    """None when the design trains batched, else why not (the layer and the reason)."""
    try:
        BatchedNet(nets[:1], input_shape)
    except Unbatchable as exc:
        return str(exc)
    return None


@torch.no_grad()
def clip_per_member(net: BatchedNet, max_norm: float) -> None:
    """``clip_grad_norm_`` applied to each member on its own (its global gradient norm)."""
    rows = net.member_rows()
    norms = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(r, dim=1) for r in rows]), dim=0
    )
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)[:, None]
    for r in rows:
        r.mul_(coef)
