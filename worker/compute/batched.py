"""K initializations of one design as one batched module: every layer runs all K at once.

A tiny model is dispatch-bound (ARCHITECTURE.md): K of them trained one after another pay K
times the per-op overhead, while one batched model pays it once for K times the arithmetic.
Each layer keeps its members' parameters stacked, member-major: ``p.view(K, -1)[k]`` is member
k's tensor in its own layout, so gradient clipping per member and copying a member back out
(``export``) are the same code for every layer. Members never mix: SGD, momentum and weight
decay are elementwise, and each member's loss only reaches its own parameters.

Activation layouts: vectors and sequences are ``[K, B, ...]`` (linear layers are batched
matrix products, ``baddbmm``); images are ``[B, K*C, H, W]``, so a convolution is one grouped
convolution (``groups=K``), batch norm is one batch norm over K*C channels, and pooling and
activations apply as they are. Layers without a batched form raise :class:`Unbatchable` naming
the layer and why; the caller then trains the members one after another (``seeds.py``).
Recurrent layers (RNN, GRU, LSTM) are among them: batched, they would run as a Python loop over
time steps (a batched matrix product per step), measured 2x slower than K members each on
PyTorch's fused ``nn.LSTM`` kernel (bench/bench_batched_seeds.py); without a fused batched
kernel the members train one after another. Transformer layers batch as sequences
``[K, B, T, d]``: attention is the single model's written-out softmax(Q K^T / sqrt(d)) V with
one more leading axis.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.sgd import sgd

from worker.compute.activations import Elementwise
from worker.compute.attention import GatedMLP, PositionalEncoding, SelfAttention, SequencePool
from worker.compute.layers import Maxout, Recurrent, Residual
from worker.compute.model import Net
from worker.compute.transformer import TransformerBlock

Layout = Literal["vec", "img"]


class Unbatchable(Exception):
    """A layer of the design has no batched form here (the message says which and why)."""


class Stacked(nn.Module):
    """A layer of K members with member-major stacked tensors, linked to the members' own."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.links: list[tuple[str, list[Tensor], bool]] = []

    def stack(self, name: str, members: list[Tensor], shape: tuple[int, ...],
              buffer: bool = False, transposed: bool = False) -> None:
        """Register ``name``: the members' tensors stacked (a copy) and viewed as ``shape``;
        ``transposed``: each member's matrix is stored transposed (``export`` turns it back)."""
        own = [m.detach().t() if transposed else m.detach() for m in members]
        data = torch.stack([m.reshape(-1) for m in own]).reshape(shape).clone()
        if buffer:
            self.register_buffer(name, data)
        else:
            self.register_parameter(name, nn.Parameter(data))
        self.links.append((name, members, transposed))

    @torch.no_grad()
    def export(self, k: int) -> None:
        """Copy member k's tensors of this layer (not its children) into the member's own."""
        for name, members, transposed in self.links:
            row = getattr(self, name).view(self.k, -1)[k]
            dest = members[k]
            if transposed:
                dest.copy_(row.view(dest.shape[1], dest.shape[0]).t())
            else:
                dest.copy_(row.view_as(dest))


class SLinear(Stacked):
    """K linear layers; the weights stored ``[K, in, out]`` (each member's transposed), so the
    product reads them as they lie and their gradient comes out in their own layout (no copy
    per step to transpose it)."""

    weight: Tensor
    bias: Tensor

    def __init__(self, mods: list[nn.Linear]) -> None:
        super().__init__(len(mods))
        self.n_out, n_in = mods[0].weight.shape
        self.stack("weight", [m.weight for m in mods], (self.k, n_in, self.n_out),
                   transposed=True)
        self.has_bias = mods[0].bias is not None
        if self.has_bias:
            self.stack("bias", [m.bias for m in mods if m.bias is not None],
                       (self.k, 1, self.n_out))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:  # [K, B, in]: no reshape, whose view nodes cost backward time too
            return self._product(x)
        out = self._product(x.reshape(self.k, -1, x.shape[-1]))
        return out.view(*x.shape[:-1], self.n_out)

    def _product(self, x: Tensor) -> Tensor:
        w = self.weight
        return torch.baddbmm(self.bias, x, w) if self.has_bias else torch.bmm(x, w)


class SMaxout(nn.Module):
    def __init__(self, mods: list[Maxout]) -> None:
        super().__init__()
        self.linear = SLinear([m.linear for m in mods])
        self.out, self.pieces = mods[0].out, mods[0].pieces

    def forward(self, x: Tensor) -> Tensor:
        z: Tensor = self.linear(x)
        return z.view(*z.shape[:-1], self.out, self.pieces).amax(dim=-1)


class SResidual(nn.Module):
    def __init__(self, body: list[nn.Module], projection: nn.Module | None) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)
        self.projection = projection if projection is not None else nn.Identity()

    def forward(self, h: Tensor) -> Tensor:
        out: Tensor = self.projection(h) + self.body(h)
        return out


class SFlatten(nn.Module):
    def __init__(self, k: int, layout: Layout) -> None:
        super().__init__()
        self.k, self.layout = k, layout

    def forward(self, x: Tensor) -> Tensor:
        if self.layout == "img":  # [B, K*C, H, W] -> [K, B, C*H*W], each member's (C, H, W)
            return x.reshape(x.shape[0], self.k, -1).transpose(0, 1)
        return x.flatten(2)


class SConv2d(Stacked):
    weight: Tensor
    bias: Tensor

    def __init__(self, mods: list[nn.Conv2d]) -> None:
        super().__init__(len(mods))
        m = mods[0]
        if m.groups != 1 or m.dilation != (1, 1) or m.padding_mode != "zeros":
            raise Unbatchable("grouped, dilated or non-zero-padded convolutions")
        self.stride: tuple[int, ...] = m.stride
        if isinstance(m.padding, str):
            raise Unbatchable("string padding ('same'/'valid') on a convolution")
        self.padding: tuple[int, ...] = m.padding
        self.stack("weight", [c.weight for c in mods], (self.k * m.out_channels,
                                                         *m.weight.shape[1:]))
        self.has_bias = m.bias is not None
        if self.has_bias:
            self.stack("bias", [c.bias for c in mods if c.bias is not None],
                       (self.k * m.out_channels,))

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias if self.has_bias else None
        return F.conv2d(x, self.weight, bias, self.stride, self.padding, 1, self.k)


class SBatchNorm(Stacked):
    """Batch norm per member and channel: one batch norm over K*C channels."""
    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor


    def __init__(self, mods: list[nn.modules.batchnorm._BatchNorm], layout: Layout) -> None:
        super().__init__(len(mods))
        m = mods[0]
        if not (m.affine and m.track_running_stats) or m.momentum is None:
            raise Unbatchable("batch norm without affine parameters or running statistics")
        self.layout, self.eps, self.momentum, c = layout, m.eps, m.momentum, m.num_features
        self.stack("weight", [b.weight for b in mods], (self.k * c,))
        self.stack("bias", [b.bias for b in mods], (self.k * c,))
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            shape = (self.k,) if name == "num_batches_tracked" else (self.k * c,)
            self.stack(name, [getattr(b, name) for b in mods], shape, buffer=True)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        if self.layout == "img":
            return self._norm(x)
        # [K, B, C, ...] -> [B, K*C, ...]: the channel axis of each member side by side
        k, b = x.shape[:2]
        y = self._norm(x.transpose(0, 1).reshape(b, -1, *x.shape[3:]))
        return y.view(b, k, *x.shape[2:]).transpose(0, 1)

    def _norm(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                             self.training, self.momentum, self.eps)


class SLayerNorm(Stacked):
    weight: Tensor
    bias: Tensor

    def __init__(self, mods: list[nn.LayerNorm], layout: Layout) -> None:
        super().__init__(len(mods))
        m = mods[0]
        if m.weight is None or m.bias is None:
            raise Unbatchable("layer norm without affine parameters")
        self.layout, self.eps, self.shape = layout, m.eps, tuple(m.normalized_shape)
        self.stack("weight", [n.weight for n in mods], (self.k, *self.shape))
        self.stack("bias", [n.bias for n in mods], (self.k, *self.shape))

    def forward(self, x: Tensor) -> Tensor:
        if self.layout == "img":  # [B, K*C, H, W] -> [B, K, C, H, W]
            z = x.view(x.shape[0], self.k, *self.shape)
            z = F.layer_norm(z, self.shape, None, None, self.eps) * self.weight + self.bias
            return z.view(x.shape)
        z = F.layer_norm(x, self.shape, None, None, self.eps)
        lead = (self.k, *([1] * (x.dim() - 1 - len(self.shape))))
        return z * self.weight.view(*lead, *self.shape) + self.bias.view(*lead, *self.shape)


class SRMSNorm(Stacked):
    weight: Tensor

    def __init__(self, mods: list[nn.RMSNorm]) -> None:
        super().__init__(len(mods))
        m = mods[0]
        if m.weight is None:
            raise Unbatchable("RMS norm without a weight")
        self.eps, self.shape = m.eps, tuple(m.normalized_shape)
        self.stack("weight", [n.weight for n in mods], (self.k, *self.shape))

    def forward(self, x: Tensor) -> Tensor:  # [K, B, ..., *shape]
        z = F.rms_norm(x, self.shape, None, self.eps)
        lead = (self.k, *([1] * (x.dim() - 1 - len(self.shape))))
        return z * self.weight.view(*lead, *self.shape)


class SPositional(Stacked):
    """A learned table per member; a sinusoidal one (the same for all) or none as it is."""

    table: Tensor

    def __init__(self, mods: list[PositionalEncoding]) -> None:
        super().__init__(len(mods))
        self.fixed: Tensor | None = None
        self.learned = mods[0].kind == "learned"
        if self.learned:
            tables = [m.table for m in mods if m.table is not None]
            self.stack("table", tables, (self.k, 1, *tables[0].shape))
        else:
            self.fixed = mods[0].table

    def forward(self, x: Tensor) -> Tensor:
        if self.learned:
            return x + self.table
        return x if self.fixed is None else x + self.fixed


class SAttention(SelfAttention):
    """``SelfAttention`` of K members over ``[K, B, T, d]``: its own forward (any leading axes)
    on stacked projections and query-key norms."""

    def __init__(self, mods: list[SelfAttention]) -> None:
        nn.Module.__init__(self)
        m = mods[0]
        self.heads, self.d_head, self.mask, self.observer = m.heads, m.d_head, m.mask, None
        self.qkv = SLinear([a.qkv for a in mods])  # type: ignore[assignment]
        self.out = SLinear([a.out for a in mods])  # type: ignore[assignment]
        self.q_norm = self.k_norm = None
        if m.q_norm is not None:
            self.q_norm = SLayerNorm([a.q_norm for a in mods if a.q_norm], "vec")  # type: ignore[assignment]
            self.k_norm = SLayerNorm([a.k_norm for a in mods if a.k_norm], "vec")  # type: ignore[assignment]


class SGatedMLP(GatedMLP):
    """``GatedMLP`` of K members: its own forward on stacked matrices."""

    def __init__(self, mods: list[GatedMLP]) -> None:
        nn.Module.__init__(self)
        self.gate_up = SLinear([g.gate_up for g in mods])  # type: ignore[assignment]
        self.act = mods[0].act
        self.down = SLinear([g.down for g in mods])  # type: ignore[assignment]


class SBlock(TransformerBlock):
    """``TransformerBlock`` of K members: its own forward on batched branches and norms, with
    learnable (rezero, skipinit) scales stacked per member as ``[K, 1, 1, 1]``."""

    def __init__(self, mods: list[TransformerBlock], layout: Layout) -> None:
        nn.Module.__init__(self)
        m, k = mods[0], len(mods)
        if not isinstance(m.drop, nn.Identity):
            raise Unbatchable("dropout draws its masks from each member's own random stream")
        self.attention, _ = _stacked([b.attention for b in mods], layout, k)  # type: ignore[assignment]
        self.mlp, _ = _stacked([b.mlp for b in mods], layout, k)
        self.norm1, _ = _stacked([b.norm1 for b in mods], layout, k)
        self.norm2, _ = _stacked([b.norm2 for b in mods], layout, k)
        self.position, self.skip_gain, self.drop, self.observer = (
            m.position, m.skip_gain, nn.Identity(), None)
        self.scales = list(m.scales) if isinstance(m.scales, list) else self._stacked_scales(mods)

    def _stacked_scales(self, mods: list[TransformerBlock]) -> nn.ParameterList:
        self.stacked_scales = Stacked(len(mods))
        lists = [b.scales for b in mods if isinstance(b.scales, nn.ParameterList)]
        for i in range(2):
            self.stacked_scales.stack(f"scale{i}", [scales[i] for scales in lists],
                                      (len(mods), 1, 1, 1))
        return nn.ParameterList([getattr(self.stacked_scales, f"scale{i}") for i in range(2)])


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
            return SBlock(mods, layout), layout  # type: ignore[arg-type]
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

    def member_rows(self) -> list[Tensor]:
        """Each parameter's gradient viewed as ``[K, -1]`` (member k's in row k)."""
        return [p.grad.view(self.k, -1) for p in self.parameters() if p.grad is not None]


class FlatSGD:
    """SGD with momentum on a flattened ``BatchedNet`` (``flatten``): torch's own update
    (``torch.optim.sgd.sgd``, the function ``torch.optim.SGD.step`` calls, so the numbers are
    the single-seed run's), without the ``Optimizer`` wrapper around it (profiler hooks, hook
    and state bookkeeping): on the K = 8 MLP that wrapper cost more than the update itself."""

    def __init__(self, flat: nn.Parameter, *, momentum: float, nesterov: bool,
                 weight_decay: float) -> None:
        self.flat = flat
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.buffers: list[Tensor | None] = [None]

    @torch.no_grad()
    def step(self, lr: float) -> None:
        assert self.flat.grad is not None
        sgd([self.flat], [self.flat.grad], self.buffers, foreach=False,
            weight_decay=self.weight_decay, momentum=self.momentum, lr=lr,
            dampening=0.0, nesterov=self.nesterov, maximize=False)


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
