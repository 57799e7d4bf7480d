"""The stacked layers of a batched model: K members' tensors of one layer as one tensor.

Each layer keeps its members' parameters stacked, member-major: ``p.view(K, -1)[k]`` is member
k's tensor in its own layout, so gradient clipping per member and copying a member back out
(``export``) are the same code for every layer. Activation layouts: vectors and sequences are
``[K, B, ...]`` (linear layers are batched matrix products, ``baddbmm``); images are
``[B, K*C, H, W]``, so a convolution is one grouped convolution (``groups=K``), batch norm is one
batch norm over K*C channels, and pooling and activations apply as they are. Which layer maps to
which stacked form is ``batched._stacked``; the transformer's are ``stacked_transformer.py``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worker.compute.layers import Maxout

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
