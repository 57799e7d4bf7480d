"""The result sections the diagnostic groups write, field by field (torch-free).

Each model documents one section of the result JSON (or a part of one); which group writes
which section is the table in ``worker/core/diagnostic_groups.py``, and
``worker/core/result.py`` puts the sections into ``ExperimentResult``. Steps count optimizer
updates (step 0 is the initialization); every float may be ``null`` where the value is not
finite or not defined.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["vanishing", "exploding", "healthy"]


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GradientFlowProbe(Doc):
    step: int
    loss: float | None = Field(description="Probe-batch loss.")
    activation_grad_rms: list[float | None] = Field(
        description="RMS of dL/dh_l over probe batch and units, per observed layer (input first)."
    )
    gains: list[float | None] = Field(
        description="rms[l] / rms[l+1]: factor one layer applies to the gradient going back."
    )
    gain_geomean: float | None = Field(description="Geometric mean of the gains.")
    gain_db: float | None = Field(description="20 log10(gain_geomean).")
    end_to_end_ratio: float | None = Field(
        description="rms at the first observed layer / at the last (< 1e-2 vanishing, > 1e2 "
        "exploding by default)."
    )
    end_to_end_verdict: Verdict = Field(description="Verdict from the end-to-end ratio alone.")
    verdict: Verdict = Field(
        description="Overall verdict: the end-to-end ratio and, for sequence models, the "
        "recurrent layers' gradient through time."
    )
    weight_norm: list[float | None] = Field(description="||W||_F per weight layer.")
    weight_grad_norm: list[float | None] = Field(description="||dL/dW||_F per weight layer.")
    grad_to_weight_ratio: list[float | None]
    update_to_weight: list[float | None] | None = Field(
        description="||W_{t+1} - W_t|| / ||W_t|| of the real update after this step."
    )


class MeanField(Doc):
    applicable: bool
    reason: str | None = None
    step: int | None = None
    q: list[float] | None = Field(None, description="Pre-activation variance per layer.")
    chi1: list[float] | None = Field(None, description="sigma_w^2 E[phi'(z)^2], z ~ N(0, q_l).")
    expected_gains: list[float] | None = Field(None, description="sqrt(chi1) per gain.")
    measured_gains: list[float | None] | None = Field(None, description="Measured at step 0.")
    sigma_w2: float | None = None
    sigma_b2: float | None = None


class RecurrentThroughTime(Doc):
    """One recurrent layer's gradient through time at one probe."""

    layer: str
    kind: Literal["rnn", "gru", "lstm"]
    steps: int
    grad_rms: list[float | None] = Field(description="RMS of dL/dh_t for t = 1..T.")
    per_step_gain: float | None = Field(description="Geometric mean of rms[t] / rms[t+1].")
    memory_horizon: int | None = Field(
        description="Steps back from T to the earliest step whose rms is still >= 1% of "
        "rms[T] (null: the first step is, i.e. the gradient reaches the whole sequence)."
    )
    verdict: Verdict
    forget_gate_mean: float | None = Field(description="LSTM: mean forget-gate activation.")


class RecurrentProbe(Doc):
    step: int
    layers: list[RecurrentThroughTime]


class GradientFlow(Doc):
    layers: list[str] = Field(description="Observed layers (block outputs h_l), input first.")
    weight_layers: list[str]
    probe_steps: list[int]
    probes: list[GradientFlowProbe]
    mean_field: MeanField | None
    recurrent: list[RecurrentProbe] | None


class Nonlinearity(Doc):
    layer: str
    activation: str
    slope_coverage: float = Field(description="Share of entries with |phi'| >= tau max|phi'|.")
    saturated_share: float | None = Field(description="Bounded activations: the rest.")
    dead_unit_share: float | None = Field(
        description="ReLU-like: share of units inactive on every probe example."
    )
    mean_sq_derivative: float = Field(description="E[phi'(z)^2].")


class SlopeProbe(Doc):
    step: int
    nonlinearities: list[Nonlinearity]


class LocalLinearityProbe(Doc):
    step: int
    scales: list[float]
    median_error: list[float | None] = Field(
        description="Median ||f(x+d) - f(x) - J d|| / ||f(x+d) - f(x)|| per relative scale."
    )
    mean_error: list[float | None]
    insensitive_share: list[float] = Field(
        description="Share of examples whose output change was below rounding (left out)."
    )


class LocalLinearity(Doc):
    probes: list[LocalLinearityProbe]
    scales: list[float] | None = None
    median_error_at_init: list[float | None] | None = None
    median_error_at_end: list[float | None] | None = None


class Interpolation(Doc):
    alphas: list[float]
    loss: list[float | None] = Field(description="Probe loss at (1-a) theta_0 + a theta_T.")
    monotone: bool
    largest_bump: float = Field(description="max_j (L_j - min_{i<=j} L_i).")
    bump_alpha: float | None
    batchnorm_reestimated: bool


class Linearity(Doc):
    slope_threshold: float | None = None
    probes: list[SlopeProbe] | None = None
    local_linearity: LocalLinearity | None = None
    interpolation: Interpolation | None = None
    linearization_gap: dict[str, float | None] | None = Field(
        None, description="gap: ||f_T - f_0 - J_0 (theta_T - theta_0)|| / ||f_T - f_0||."
    )


class Alignment(Doc):
    steps: list[int]
    cosine: list[float | None] = Field(description="cos(-grad L(theta_t), theta_T - theta_t).")
    mean: float | None


class Trajectory(Doc):
    projection: dict[str, Any] = Field(
        description="method none, or sparse_jl_hashing with its dimension."
    )
    alignment: Alignment | None = None
    distance: float | None = None
    relative_distance: float | None = Field(None, description="||theta_T - theta_0||/||theta_0||.")
    path_efficiency: float | None = Field(
        None, description="||theta_T - theta_0|| / summed segment lengths over snapshots."
    )
    snapshot_steps: list[int] | None = None


class SharpnessProbe(Doc):
    step: int
    top_eigenvalue: float | None = Field(description="Hessian eigenvalue of largest magnitude.")
    stability_threshold: float = Field(description="2 (1 + momentum) / lr.")
    ratio: float | None
    lr: float


class NoiseProbe(Doc):
    step: int
    trace_covariance: float | None
    mean_grad_sq_norm: float | None
    b_simple: float | None = Field(description="tr(Sigma) / ||G||^2 (McCandlish et al. 2018).")
    examples: int


class Noise(Doc):
    probes: list[NoiseProbe]
    skipped: str | None = None


class Curvature(Doc):
    probes: list[SharpnessProbe]


# --- attention and transformers (section ``transformer``) -----------------------------------


class BlockGradientProbe(Doc):
    step: int
    grad_norm: list[float | None] = Field(description="||dL/d theta_b|| per attention block.")
    last_to_first: float | None = Field(
        description="Last block's norm / first's: >> 1 near the output is Post-LN's signature."
    )


class BlockGradients(Doc):
    blocks: list[str] = Field(description="Top-level layers containing attention, input first.")
    norm_position: list[str | None] = Field(description="pre / post / none per block.")
    warmup_steps: int = Field(description="The run's learning-rate warm-up (0: none).")
    probes: list[BlockGradientProbe]


class BranchSignal(Doc):
    branch: Literal["attention", "mlp", "body"]
    branch_variance: float | None = Field(description="Channel variance of what it adds.")
    skip_variance: float | None = Field(description="Channel variance of the stream it joins.")
    ratio: float | None = Field(description="branch_variance / skip_variance.")


class BlockSignal(Doc):
    block: str
    output_variance: float | None = Field(
        description="Mean over units of each unit's variance over batch and steps."
    )
    output_mean_sq: float | None = Field(description="Mean over units of the squared mean.")
    branches: list[BranchSignal]


class SignalProbe(Doc):
    step: int
    blocks: list[BlockSignal]


class SignalPropagation(Doc):
    blocks: list[str]
    probes: list[SignalProbe]
    variance_growth_at_init: float | None = Field(
        description="Output variance of the last block / of the first, at step 0."
    )


class RankCollapseProbe(Doc):
    step: int
    input_cosine: float | None = Field(description="Token cosine entering the first block.")
    input_relative_residual: float | None
    cosine: list[float | None] = Field(
        description="Mean pairwise cosine of token representations after each block."
    )
    relative_residual: list[float | None] = Field(
        description="||h - 1 mean(h)^T||_F / ||h||_F after each block (0: rank one)."
    )


class RankCollapse(Doc):
    blocks: list[str]
    probes: list[RankCollapseProbe]


class AttentionLayerEntropy(Doc):
    layer: str
    entropy: list[float | None] = Field(description="Mean row entropy (nats) per head.")
    max_entropy: float = Field(description="Mean over rows of log(keys the row may see).")
    normalized: list[float | None] = Field(description="entropy / max_entropy per head.")
    logit_std: list[float | None] = Field(
        description="Std of the scaled logits Q K^T / sqrt(d_head) per head."
    )


class EntropyProbe(Doc):
    step: int
    layers: list[AttentionLayerEntropy]


class AttentionEntropy(Doc):
    layers: list[str]
    probes: list[EntropyProbe]
    min_normalized_at_end: float | None = Field(
        description="Lowest head's normalized entropy at the last probe."
    )


class Transformer(Doc):
    block_gradients: BlockGradients | None = None
    signal_propagation: SignalPropagation | None = None
    rank_collapse: RankCollapse | None = None
    attention_entropy: AttentionEntropy | None = None
