"""The whole experiment spec: model, init, data, optimizer, training, diagnostics."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import ConfigDict, Discriminator, Field, Tag, model_validator

from worker.core.diagnostic_groups import PRESETS, DiagnosticGroup, Preset
from worker.core.spec.base import DeviceRequest, InitScheme, StrictModel
from worker.core.spec.data import DataSpec
from worker.core.spec.layers import FamilyModel, LayersModel
from worker.core.spec.optim import OptimizerSpec
from worker.core.spec.tokens import TOKEN_KINDS, TokenData, steps_of
from worker.core.spec.transformer import TransformerModel


class InitSpec(StrictModel):
    """Weight initialization of every linear, convolutional and recurrent weight.

    ``normal`` draws W ~ N(0, gain^2 / fan_in) (the mean-field convention); ``xavier_*``,
    ``kaiming_*`` and ``orthogonal`` use PyTorch's definitions with ``gain`` (kaiming: the gain
    replaces the activation's when given); ``default`` keeps PyTorch's own initialization.
    """

    scheme: InitScheme = "default"
    gain: float | None = Field(
        None, description="Gain; default 1 (kaiming: the activation's gain).", gt=0, le=100
    )
    bias_std: float = Field(0.0, description="Std of normal bias init (0: zeros).", ge=0, le=100)
    lstm_forget_bias: float | None = Field(
        None,
        description="Bias of LSTM forget gates (e.g. 1, Jozefowicz et al. 2015).",
        ge=-100,
        le=100,
    )

    @model_validator(mode="after")
    def _gain_needs_scheme(self) -> InitSpec:
        if self.scheme == "default" and self.gain is not None:
            raise ValueError("gain is not used by scheme 'default'; pick another scheme")
        return self


#: The most initializations one job trains together (``training.seeds``) or probes at step 0
#: (``diagnostics.init_seeds``).
MAX_SEEDS = 64


class TrainingSpec(StrictModel):
    """How long and on what to train. Give exactly one of ``steps`` or ``epochs``."""

    # The schema says it too (OpenAPI: exactly one of them is an integer).
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["steps"], "properties": {"steps": {"type": "integer"}}},
        {"required": ["epochs"], "properties": {"epochs": {"type": "integer"}}},
    ]})

    steps: int | None = Field(
        None,
        ge=0,
        le=10_000_000,
        description="Updates to take; 0 is a preflight: the step-0 diagnosis and its findings, "
        "without training.",
    )
    epochs: int | None = Field(None, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: DeviceRequest = "auto"
    loss: Literal["auto", "cross_entropy", "mse"] = Field(
        "auto", description="auto: cross_entropy for classification, mse for regression."
    )
    time_limit_s: float | None = Field(
        None,
        description="Stop with partial results after this long (server max applies).",
        gt=0,
        le=7 * 24 * 3600,
    )
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_SEEDS,
        description="Initializations trained together in one job, as one batched model where "
        "the layers allow (else one after another; the result says which). Member k "
        "initializes its weights and orders its batches with seeds[k]; the data come from "
        "'seed'. The result's sections are the first seed's; 'seeds' holds every seed's "
        "outcome, the spread of the final losses, and each finding says in how many seeds it "
        "fired.",
    )

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> TrainingSpec:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'steps' or 'epochs'")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be distinct")
        return self

    def member_seeds(self) -> list[int]:
        """The seeds of the initializations this run trains: ``seeds``, or just ``seed``."""
        return list(self.seeds) if self.seeds else [self.seed]


#: The probe batch's default size, in examples. A token task's example is a sequence with a
#: prediction at each position, so there the default counts positions instead: sequences enough
#: for PROBE_TOKENS of them (a probe pass then costs about what it does on a vector task, where
#: 256 examples are 256 predictions; the per-token means the probes report average over
#: thousands of positions either way).
DEFAULT_PROBE_BATCH = 256
PROBE_TOKENS = 2048
MIN_TOKEN_PROBE_BATCH = 16


class DiagnosticsSpec(StrictModel):
    """Which probe groups run and when. Probes run at step 0, on the schedule, and at the end.

    ``preset`` picks the groups; ``groups`` switches single groups on or off on top of it.
    """

    preset: Preset = "standard"
    groups: dict[DiagnosticGroup, bool] = Field(default_factory=dict)
    every: int | None = Field(
        None, description="Steps between probes; default: about 8 probes over the run.", ge=1
    )
    probe_batch_size: int | None = Field(
        None,
        ge=8,
        le=8192,
        description=f"Examples in the fixed probe batch. Default: {DEFAULT_PROBE_BATCH}; for "
        f"token tasks, enough sequences for {PROBE_TOKENS} token positions "
        f"({MIN_TOKEN_PROBE_BATCH} to {DEFAULT_PROBE_BATCH} sequences).",
    )
    init_seeds: int | None = Field(
        None,
        ge=2,
        le=MAX_SEEDS,
        description="Repeat the step-0 probes on this many initializations (this run's own "
        "and fresh ones, seeds s, s+1, ... from the first training seed s); each init-time "
        "finding then says in how many of them it fired.",
    )
    slope_threshold: float = Field(
        0.1, description="tau: significant slope is |phi'| >= tau * max|phi'|.", gt=0, lt=1
    )
    vanishing_ratio: float = Field(
        1e-2, description="End-to-end gradient ratio below this: vanishing.", gt=0, lt=1
    )
    exploding_ratio: float = Field(
        1e2, description="End-to-end gradient ratio above this: exploding.", gt=1
    )
    interpolation_points: int = Field(25, ge=3, le=201)
    linearity_scales: list[float] = Field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0],
        description="Relative input perturbation sizes for the local linearity error.",
        min_length=1,
        max_length=8,
    )
    sharpness_iterations: int = Field(20, ge=2, le=200)
    projection_threshold: int = Field(
        1_000_000,
        description="Above this many parameters, snapshots are randomly projected.",
        ge=1000,
    )
    projection_dim: int = Field(8192, ge=64, le=1_000_000)
    curve_points: int = Field(
        200, description="Loss points kept in the curves (downsampled).", ge=10, le=5000
    )

    def enabled_groups(self) -> frozenset[DiagnosticGroup]:
        on = set(PRESETS[self.preset])
        for group, enabled in self.groups.items():
            (on.add if enabled else on.discard)(group)
        return frozenset(on)


def _model_form(value: Any) -> str:
    """``layers`` when the model gives an explicit layer list, ``transformer`` for that family
    (its fields are its own), else the family shorthand."""
    if isinstance(value, dict):
        if "layers" in value:
            return "layers"
        return "transformer" if value.get("family") == "transformer" else "family"
    if isinstance(value, TransformerModel):
        return "transformer"
    return "layers" if isinstance(value, LayersModel) else "family"


class ExperimentSpec(StrictModel):
    """One design to train and diagnose."""

    spec_version: Literal[1]
    name: str | None = Field(None, max_length=200)
    model: Annotated[
        Annotated[FamilyModel, Tag("family")]
        | Annotated[LayersModel, Tag("layers")]
        | Annotated[TransformerModel, Tag("transformer")],
        Discriminator(_model_form),
    ]
    init: InitSpec = InitSpec()
    data: DataSpec
    optimizer: OptimizerSpec = OptimizerSpec()
    training: TrainingSpec
    diagnostics: DiagnosticsSpec = DiagnosticsSpec()

    def probe_batch(self) -> int:
        """Examples in the probe batch: ``diagnostics.probe_batch_size``, or its default for
        this data (``DEFAULT_PROBE_BATCH``; for token tasks, ``PROBE_TOKENS`` positions)."""
        if self.diagnostics.probe_batch_size is not None:
            return self.diagnostics.probe_batch_size
        if self.data.kind in TOKEN_KINDS:
            steps = steps_of(cast(TokenData, self.data))
            return max(MIN_TOKEN_PROBE_BATCH, min(DEFAULT_PROBE_BATCH, -(-PROBE_TOKENS // steps)))
        return DEFAULT_PROBE_BATCH
