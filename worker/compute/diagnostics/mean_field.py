"""Mean-field theory of signal propagation (Poole et al. 2016; Schoenholz et al. 2017).

For a plain MLP with weights W ~ N(0, sigma_w^2 / fan_in) and biases ~ N(0, sigma_b^2), the
pre-activation variance follows q_l = sigma_w^2 E_{z~N(0, q_{l-1})}[phi(z)^2] + sigma_b^2
(q_1 from the input's second moment), and each layer multiplies the mean squared gradient by
chi_1(q_l) = sigma_w^2 E_{z~N(0, q_l)}[phi'(z)^2]. The expected per-layer gain of the gradient
RMS is sqrt(chi_1), reported beside the measured gains. Gaussian expectations use the
midpoint rule on 40,000 cells over +-10 standard deviations: unlike Gauss-Hermite quadrature it
stays accurate for the kinks and steps of relu-like derivatives.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from worker.compute.activations import get_activation
from worker.compute.diagnostics.base import BuildContext, Diagnostic, ProbeContext, ReportContext
from worker.compute.diagnostics.gradient_flow import rms
from worker.core.activation_table import kaiming_gain
from worker.core.spec import ActivationLayer, ExperimentSpec, FamilyModel

_CELLS, _SPAN = 40_000, 10.0
_H = 2 * _SPAN / _CELLS
_NODES = torch.linspace(-_SPAN + _H / 2, _SPAN - _H / 2, _CELLS, dtype=torch.float64)
_WEIGHTS = torch.exp(-0.5 * _NODES**2) * _H / math.sqrt(2 * math.pi)


def gaussian_mean(fn: Any, q: float) -> float:
    """E[fn(z)] for z ~ N(0, q) (midpoint rule in units of the standard deviation)."""
    return float((_WEIGHTS * fn(_NODES * math.sqrt(max(q, 0.0)))).sum())


def weight_variance(spec: ExperimentSpec, fan_in: int, fan_out: int, act: ActivationLayer) -> float:
    """sigma_w^2 (variance x fan_in) of a scheme, as the model builder draws weights."""
    init = spec.init
    gain = (
        init.gain
        if init.gain is not None
        else (kaiming_gain(act) if init.scheme.startswith("kaiming") else 1.0)
    )
    if init.scheme == "default":
        return 1.0 / 3.0  # U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    if init.scheme.startswith("xavier"):
        return gain**2 * 2.0 * fan_in / (fan_in + fan_out)
    return gain**2  # normal, kaiming_*, orthogonal (row norms ~ gain^2)


def bias_variance(spec: ExperimentSpec, fan_in: int) -> float:
    if spec.init.bias_std > 0:
        return spec.init.bias_std**2
    return 1.0 / (3.0 * fan_in) if spec.init.scheme == "default" else 0.0


def applicable(spec: ExperimentSpec) -> str | None:
    """None when the theory applies, else why not."""
    m = spec.model
    if not isinstance(m, FamilyModel) or m.family != "mlp":
        return "mean-field theory is reported for the plain mlp family only"
    if m.residual or m.normalization != "none" or m.dropout > 0:
        return "mean-field theory here covers plain MLPs (no residual, normalization, dropout)"
    return None


def predict(spec: ExperimentSpec, input_second_moment: float, input_dim: int) -> dict[str, Any]:
    """q_l, chi_1 and the expected gain per hidden layer of a plain MLP."""
    m = spec.model
    assert isinstance(m, FamilyModel)
    act_spec = m.activation_layer()
    act = get_activation(act_spec)
    qs, chis = [], []
    second_moment, fan_in = input_second_moment, input_dim
    for _ in range(m.depth):
        sw2 = weight_variance(spec, fan_in, m.width, act_spec)
        q = sw2 * second_moment + bias_variance(spec, fan_in)
        qs.append(q)
        second_moment = gaussian_mean(lambda z: act.fn(z) ** 2, q)
        fan_in = m.width
    sw2_hidden = weight_variance(spec, m.width, m.width, act_spec)
    chis = [sw2_hidden * gaussian_mean(lambda z: act.derivative(z) ** 2, q) for q in qs]
    # gains[l] = rms(dL/dh_l) / rms(dL/dh_{l+1}) passes back through layer l+1's phi' and W
    return {
        "q": qs,
        "chi1": chis,
        "expected_gains": [math.sqrt(c) for c in chis[1:]],
        "sigma_w2": sw2_hidden,
        "sigma_b2": bias_variance(spec, m.width),
    }


class MeanField(Diagnostic):
    """Expected per-layer gain sqrt(chi_1) at initialization, beside the measured gain."""

    name = "mean_field"
    needs_capture = True

    def __init__(self, spec: ExperimentSpec) -> None:
        super().__init__()
        self.spec = spec

    def at_probe(self, ctx: ProbeContext) -> None:
        if ctx.step != 0:
            return
        reason = applicable(self.spec)
        if reason is not None:
            self.summary = {"applicable": False, "reason": reason}
            return
        x = ctx.x.double()
        prediction = predict(self.spec, float(x.pow(2).mean()), x.shape[-1])
        assert ctx.capture is not None
        grad_rms = [rms(g) for g in ctx.capture.block_output_grads]
        measured = [
            a / b if b > 0 else None for a, b in zip(grad_rms[:-1], grad_rms[1:], strict=True)
        ]
        self.summary = {"applicable": True, "step": 0, **prediction, "measured_gains": measured}

    def report(self, ctx: ReportContext) -> None:
        """The prediction sits beside the measured gains in the gradient_flow section."""
        flow = ctx.existing(self.name)
        if flow is not None:
            flow["mean_field"] = self.summary


def build(ctx: BuildContext) -> MeanField:
    return MeanField(ctx.spec)
