"""Where training went: gradient-to-solution alignment, path efficiency, relative distance.

At each probe step t the parameters theta_t and the full probe-batch gradient g_t are kept on
the host. After training:
- alignment_t = cos(-g_t, theta_T - theta_t): does the local gradient point toward the distant
  solution training actually reached?
- path efficiency = ||theta_T - theta_0|| / sum_k ||theta_{k+1} - theta_k|| over the snapshots
  (probe steps), so it measures detours between snapshots, not within them;
- relative distance = ||theta_T - theta_0|| / ||theta_0|| (exact, from full copies).
Above ``projection_threshold`` parameters, snapshots are reduced to ``projection_dim``
coordinates by a seeded sparse Johnson-Lindenstrauss projection (feature hashing: each
coordinate goes to one random bucket with a random sign), which preserves inner products in
expectation; the summary says which was used.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector

from worker.compute.diagnostics.base import BuildContext, Diagnostic, ProbeContext, ReportContext


class Projector:
    """Identity below the threshold, else a seeded hashing projection to ``dim`` coordinates."""

    def __init__(self, n: int, dim: int, threshold: int, seed: int, device: torch.device) -> None:
        self.n, self.dim = n, dim
        self.active = n > threshold
        if self.active:
            g = torch.Generator().manual_seed(seed)
            self.bucket = torch.randint(dim, (n,), generator=g).to(device)
            self.sign = (torch.randint(2, (n,), generator=g) * 2 - 1).to(device)

    def __call__(self, v: Tensor) -> Tensor:
        """``v`` (flat, on the device) -> a host vector of the same dtype.

        Snapshots stay in the parameters' precision: the differences theta_T - theta_t are
        exact to one rounding of the difference itself, and half the memory traffic of float64
        halves the cost of the end-of-run analysis.
        """
        v = v.detach()
        if self.active:
            out = torch.zeros(self.dim, device=v.device, dtype=v.dtype)
            v = out.index_add_(0, self.bucket, self.sign.to(v.dtype) * v)
        return v.cpu()

    def describe(self) -> dict[str, Any]:
        if not self.active:
            return {"method": "none", "parameters": self.n}
        return {"method": "sparse_jl_hashing", "parameters": self.n, "dim": self.dim}


def cosine(a: Tensor, b: Tensor) -> float | None:
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0:
        return None
    return float(a @ b) / (na * nb)


def alignment(grads: list[Tensor], thetas: list[Tensor], theta_end: Tensor) -> list[float | None]:
    """cos(-g_t, theta_T - theta_t) for each snapshot (None where either vector is zero).

    Written as -cos(g_t, theta_T - theta_t), so the gradient is not negated into a copy.
    """
    out: list[float | None] = []
    diff = torch.empty_like(theta_end)  # one scratch vector: a fresh one per snapshot costs
    for g, th in zip(grads, thetas, strict=True):  # more in page faults than the arithmetic
        c = cosine(g, torch.sub(theta_end, th, out=diff))
        out.append(None if c is None else -c)
    return out


def path_efficiency(thetas: list[Tensor]) -> float | None:
    """||theta_last - theta_first|| / the summed lengths of consecutive snapshot segments."""
    diff = torch.empty_like(thetas[0])
    length = sum(float(torch.sub(b, a, out=diff).norm())
                 for a, b in zip(thetas[:-1], thetas[1:], strict=True))
    if length == 0.0:
        return None
    return float((thetas[-1] - thetas[0]).norm()) / length


class Trajectory(Diagnostic):
    name = "trajectory"
    needs_capture = True
    needs_theta0 = True

    def __init__(
        self,
        projection_threshold: int,
        projection_dim: int,
        seed: int,
        alignment: bool = True,
        path: bool = True,
    ) -> None:
        super().__init__()
        self.threshold, self.dim, self.seed = projection_threshold, projection_dim, seed
        self.want_alignment, self.want_path = alignment, path
        self.projector: Projector | None = None
        self.steps: list[int] = []
        self.thetas: list[Tensor] = []
        self.grads: list[Tensor] = []

    def _project(self, v: Tensor) -> Tensor:
        if self.projector is None:
            self.projector = Projector(v.numel(), self.dim, self.threshold, self.seed, v.device)
        return self.projector(v)

    def at_probe(self, ctx: ProbeContext) -> None:
        assert ctx.capture is not None
        with torch.no_grad():
            self.steps.append(ctx.step)
            self.thetas.append(self._project(parameters_to_vector(ctx.model.parameters())))
            if self.want_alignment:
                self.grads.append(self._project(parameters_to_vector(ctx.capture.param_grads)))

    def at_end(self, ctx: ProbeContext) -> None:
        if not self.thetas or self.projector is None:
            return
        with torch.no_grad():
            theta_end_full = parameters_to_vector(ctx.model.parameters()).detach()
            theta_end = self.projector(theta_end_full)
        summary: dict[str, Any] = {"projection": self.projector.describe()}
        if self.want_alignment:
            cos = alignment(self.grads, self.thetas, theta_end)
            pairs = [(s, c) for s, c in zip(self.steps, cos, strict=True) if s < ctx.step]
            summary["alignment"] = {
                "steps": [s for s, _ in pairs],
                "cosine": [c for _, c in pairs],
                "mean": _mean([c for _, c in pairs]),
            }
        if self.want_path and ctx.theta0 is not None:
            theta0 = ctx.theta0.double()
            end = theta_end_full.double().cpu()
            distance = float((end - theta0).norm())
            snaps = self.thetas if self.steps[-1] == ctx.step else [*self.thetas, theta_end]
            summary.update(
                distance=distance,
                relative_distance=distance / max(float(theta0.norm()), 1e-30),
                path_efficiency=path_efficiency(snaps),
                snapshot_steps=self.steps,
            )
        self.summary = summary

    def report(self, ctx: ReportContext) -> None:
        ctx.set_section(self.name, self.summary)


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def build(ctx: BuildContext) -> Trajectory:
    """One probe serves both groups: alignment and the path share the snapshots."""
    s = ctx.settings
    return Trajectory(
        s.projection_threshold,
        s.projection_dim,
        ctx.seed + 3,
        alignment="alignment" in ctx.groups,
        path="trajectory" in ctx.groups,
    )
