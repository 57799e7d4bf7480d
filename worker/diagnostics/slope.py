""" "Significant slope": how much of each nonlinearity operates where its derivative is large.

For the pre-activations z of block l on the probe batch and tau (default 0.1):
slope coverage = share of entries with |phi'(z)| >= tau * max|phi'|; saturated share (bounded
activations) = the rest; dead units (ReLU-like) = units with z <= 0 on every probe example;
mean squared derivative = E[phi'(z)^2], the factor that enters the mean-field gain chi_1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.activations import Activation
from worker.diagnostics.capture import ProbeCapture


@dataclass(frozen=True)
class SlopeStats:
    """Slope coverage, saturation, dead units and E[phi'^2] per hidden block."""

    activation: Activation
    tau: float = 0.1
    name: str = "linearity"

    def compute(self, cap: ProbeCapture) -> dict[str, Any]:
        act = self.activation
        threshold = self.tau * act.max_abs_derivative
        layers = []
        for i, z in enumerate(cap.preactivations):
            d = act.derivative(z.double()).abs()
            coverage = float((d >= threshold).double().mean())
            layers.append(
                {
                    "layer": f"block{i + 1}",
                    "activation": act.name,
                    "slope_coverage": coverage,
                    "saturated_share": 1.0 - coverage if act.kind == "saturating" else None,
                    "dead_unit_share": (
                        float((z <= 0).all(dim=0).double().mean())
                        if act.kind == "relu_like"
                        else None
                    ),
                    "mean_sq_derivative": float(d.pow(2).mean()),
                }
            )
        return {"step": cap.step, "nonlinearities": layers}
