"""The result of an experiment, field by field (torch-free).

These models document the JSON the worker writes (they become the OpenAPI schema of
``GET /v1/experiments/{id}``'s ``result``) and validate it: the runner's output is checked
against them in tests, so the documentation cannot drift from what is computed.
Steps count optimizer updates: step 0 is the initialization, step t follows t updates.
Every float may be ``null`` where the value is not finite or not defined.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["vanishing", "exploding", "healthy"]


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Summary(Doc):
    outcome: Literal["completed", "diverged", "stopped", "timed_out"] = Field(
        description="completed; diverged (non-finite loss: a result, not an error); stopped "
        "(cancelled); timed_out (time limit) -- the last two with partial diagnostics."
    )
    steps: int = Field(description="Optimizer updates taken.")
    planned_steps: int = Field(description="Updates the spec asked for.")
    epochs: float = Field(description="Passes over the training set (steps x batch / n_train).")
    batch_size: int
    diverged_at_step: int | None = Field(description="First update whose loss was non-finite.")
    task: Literal["classification", "regression"]
    wall_time_s: float = Field(description="Whole run: data, model, training, diagnostics.")
    train_time_s: float = Field(description="Training loop including probes.")
    diagnostics_time_s: float = Field(
        description="The part of train_time_s spent in probes and end-of-run analyses."
    )
    samples_per_s: float = Field(description="Training examples per second of train_time_s.")
    device: str
    final_train_loss: float | None = Field(description="Loss on up to 1024 training examples.")
    final_val_loss: float | None = Field(description="Loss on up to 1024 validation examples.")
    final_train_accuracy: float | None
    final_val_accuracy: float | None
    baseline_val_loss: float | None = Field(
        None,
        description="Validation loss of the best constant prediction (class frequencies or the "
        "mean target, fitted on the training set): the trivial baseline. final_val_loss / "
        "baseline_val_loss is the outcome measure of the findings benchmark.",
    )


class Curves(Doc):
    step: list[int] = Field(description="Steps of the train_loss points.")
    train_loss: list[float | None] = Field(
        description="Mean training-batch loss over the window ending at each step."
    )
    eval_step: list[int] = Field(description="Steps of the evaluation points (<= 5% of compute).")
    train_eval_loss: list[float | None]
    val_loss: list[float | None]
    train_accuracy: list[float | None]
    val_accuracy: list[float | None]


class ModelEcho(Doc):
    spec: dict[str, Any] = Field(description="The model spec as given (family or layers).")
    layers: list[dict[str, Any]] = Field(description="Normalized layer list (family compiled).")
    head: dict[str, Any] = Field(description="The linear head appended to the task's output.")
    shapes: list[dict[str, Any]] = Field(description="Input and output shape of every layer.")
    parameters: int
    flops_per_example: int = Field(description="Forward-pass FLOPs for one example.")


class Environment(Doc):
    torch_version: str
    python_version: str
    device: str
    device_name: str
    seed: int
    spec_hash: str = Field(description="SHA-256 of the normalized spec.")
    cpu_threads: int
    device_memory_bytes: int | None = None


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


class Finding(Doc):
    code: str
    severity: Literal["info", "warning", "critical"]
    message: str
    evidence: dict[str, Any] = Field(description="The numbers that triggered the finding.")
    suggestion: str


class ExperimentResult(Doc):
    """Everything the worker measured for one experiment."""

    summary: Summary
    curves: Curves
    model: ModelEcho
    environment: Environment
    gradient_flow: GradientFlow | None = None
    linearity: Linearity | None = None
    trajectory: Trajectory | None = None
    curvature: Curvature | None = None
    noise: Noise | None = None
    findings: list[Finding]
