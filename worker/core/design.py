"""Design facts a finding's suggestion depends on, read from the normalized layers."""

from __future__ import annotations

from dataclasses import dataclass

from worker.core.activation_table import names_of_kind
from worker.core.spec import (
    ActivationLayer,
    ExperimentSpec,
    Layer,
    MaxoutLayer,
    NormLayer,
    RecurrentLayer,
    ResidualLayer,
    analyze,
)

#: Kinds from the activation table: bounded (saturating) and jagged (oscillating) activations.
SATURATING = names_of_kind("saturating")
JAGGED = names_of_kind("oscillating")


@dataclass(frozen=True)
class DesignFacts:
    """What the model is made of: activations, skips, normalization, recurrence, depth."""

    activations: frozenset[str]
    residual: bool
    normalization: bool
    batch_norm: bool
    maxout: bool
    recurrent: frozenset[str]
    depth: int  # nonlinear stages (the gradient-flow probe points)
    init_scheme: str
    init_gain: float | None
    lstm_forget_bias: float | None

    @property
    def saturating(self) -> frozenset[str]:
        return self.activations & SATURATING

    @property
    def jagged(self) -> frozenset[str]:
        return self.activations & JAGGED


def _walk(layers: list[Layer]) -> list[Layer]:
    out: list[Layer] = []
    for layer in layers:
        out.append(layer)
        if isinstance(layer, ResidualLayer):
            out.extend(_walk(layer.body))
    return out


def design_facts(spec: ExperimentSpec) -> DesignFacts:
    top = analyze(spec).layers
    every = _walk(top)
    probed = ("activation", "maxout", "residual", "rnn", "gru", "lstm")
    return DesignFacts(
        activations=frozenset(x.name for x in every if isinstance(x, ActivationLayer)),
        residual=any(isinstance(x, ResidualLayer) for x in every),
        normalization=any(isinstance(x, NormLayer) for x in every),
        batch_norm=any(isinstance(x, NormLayer) and x.type == "batch_norm" for x in every),
        maxout=any(isinstance(x, MaxoutLayer) for x in every),
        recurrent=frozenset(x.type for x in every if isinstance(x, RecurrentLayer)),
        depth=sum(1 for x in top if x.type in probed),
        init_scheme=spec.init.scheme,
        init_gain=spec.init.gain,
        lstm_forget_bias=spec.init.lstm_forget_bias,
    )
