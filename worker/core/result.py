"""The result of an experiment, field by field (torch-free).

These models document the JSON the worker writes (they become the OpenAPI schema of
``GET /v1/experiments/{id}``'s ``result``) and validate it: the runner's output is checked
against them in tests, so the documentation cannot drift from what is computed.
Steps count optimizer updates: step 0 is the initialization, step t follows t updates.
Every float may be ``null`` where the value is not finite or not defined.

The diagnostic sections (``gradient_flow``, ``linearity``, ...) are models of
``worker/core/diagnostic_results.py``; which sections the result has, and in what order, comes
from the group table (``worker/core/diagnostic_groups.SECTIONS``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, create_model

from worker.core.diagnostic_groups import SECTIONS
from worker.core.diagnostic_results import (  # noqa: F401 - re-exported: the result's models
    Alignment,
    Curvature,
    Doc,
    GradientFlow,
    GradientFlowProbe,
    Interpolation,
    Linearity,
    LocalLinearity,
    LocalLinearityProbe,
    MeanField,
    Noise,
    NoiseProbe,
    Nonlinearity,
    RecurrentProbe,
    RecurrentThroughTime,
    SharpnessProbe,
    SlopeProbe,
    Trajectory,
    Verdict,
)


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
    probe_batch_size: int | None = Field(
        None,
        description="Examples in the fixed probe batch the diagnostics ran on (the spec's, or "
        "its default for the data); none when diagnostics are off.",
    )
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
    analyses_skipped: list[str] = Field(
        default_factory=list,
        description="End-of-run analyses left out because the time limit had passed.",
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


class SpecEdit(Doc):
    path: str = Field(description="Dotted path into the submitted spec, e.g. model.activation.")
    value: Any = Field(description="The new value (null removes a setting's override).")


class FindingFix(Doc):
    label: str = Field(description="The one change, in words (e.g. 'ReLU + He init').")
    edits: list[SpecEdit] = Field(
        description="The change as spec edits; the edited spec was validated like a submission."
    )


class FindingCalibration(Doc):
    threshold: float = Field(description="The rule's threshold on its feature.")
    calibrated: bool = Field(description="False: a hand-set default the benchmark did not set.")
    source: str = Field(description="Where the threshold came from.")
    precision: dict[str, float | None] = Field(
        description="Measured precision on the labeled benchmark, per split (dev, heldout)."
    )
    recall: dict[str, float | None]
    firings: dict[str, int]


class SeedAgreement(Doc):
    fired: int = Field(description="Initializations it fired on.")
    of: int = Field(description="Initializations it was judged on.")
    seeds: list[int] = Field(description="The seeds of those initializations.")
    fired_on: list[int] = Field(default_factory=list, description="The seeds it fired on.")
    basis: Literal["training_seeds", "init_seeds"] = Field(
        "init_seeds",
        description="training_seeds: whole runs (training.seeds); init_seeds: the step-0 "
        "probes of fresh initializations (diagnostics.init_seeds), for init-time findings.",
    )


class Finding(Doc):
    code: str
    severity: Literal["info", "warning", "critical"] = Field(
        description="critical: will not train as specified; warning: trains worse than a "
        "documented fix; info: worth knowing."
    )
    message: str
    evidence: dict[str, Any] = Field(
        description="The numbers that triggered the finding, with the rule's value and "
        "threshold."
    )
    suggestion: str
    fixes: list[FindingFix] = Field(
        default_factory=list, description="The suggestion as spec edits, one fix per change."
    )
    at_init: bool = Field(
        False, description="Judged on the step-0 probe alone (a preflight can tell)."
    )
    calibration: FindingCalibration | None = None
    seed_agreement: SeedAgreement | None = None


class ResultTruncation(Doc):
    """Why this result is smaller than what was measured (``max_result_bytes``)."""

    max_result_bytes: int = Field(description="The server's limit on a stored result.")
    original_bytes: int = Field(description="Size of the result as measured (compact JSON).")
    lists_kept_at_most: int | None = Field(
        description="Long lists in curves and the diagnostic sections were decimated to at "
        "most this many evenly spaced entries (the first and the last kept); null: none."
    )
    dropped_sections: list[str] = Field(
        description="Diagnostic sections left out entirely (still too large)."
    )
    note: str


class Spread(Doc):
    median: float | None
    min: float | None
    max: float | None
    n: int = Field(description="Seeds with a value (diverged runs have no final loss).")


class SeedRun(Doc):
    """One initialization of a multi-seed run."""

    seed: int
    trained: bool = Field(description="False: not started (the job stopped before it).")
    outcome: Literal["completed", "diverged", "stopped", "timed_out"] | None
    steps: int
    diverged_at_step: int | None
    final_train_loss: float | None
    final_val_loss: float | None
    final_train_accuracy: float | None
    final_val_accuracy: float | None
    grad_ratio_init: float | None = Field(description="End-to-end gradient ratio at step 0.")
    findings: list[str] = Field(description="Codes of the findings that fired on this seed.")
    diagnostics_time_s: float


class SeedRuns(Doc):
    """``training.seeds``: every initialization's outcome and the spread over them."""

    seeds: list[int]
    primary: int = Field(description="The seed whose sections, curves and summary the result "
                         "shows (the first).")
    batched: bool = Field(description="True: trained together as one batched model.")
    fallback: str | None = Field(
        description="Why the seeds trained one after another (a layer that cannot be batched)."
    )
    train_time_s: float = Field(description="Training all seeds, probes included.")
    runs: list[SeedRun]
    spread: dict[str, Spread] = Field(
        description="Median, min and max over seeds of final_train_loss, final_val_loss and "
        "final_val_accuracy."
    )


class CohortRun(Doc):
    """A sweep point trained together with others of its sweep as one batched model
    (points that differ only in seed, lr, momentum or init gain; worker/core/cohorts.py)."""

    size: int = Field(description="How many points trained together (1: this one trained "
                      "alone, its design has no batched form; see fallback).")
    index: int = Field(description="This point's member of the batched model.")
    batched: bool = Field(description="True: trained as one batched model; false: one after "
                          "another (see fallback).")
    fallback: str | None = Field(
        description="Why the points trained one after another (a layer that cannot be batched)."
    )
    job_ids: list[str] = Field(description="The jobs of the cohort, this one among them.")


class _Measured(Doc):
    """What every result holds, before the diagnostic sections."""

    summary: Summary
    curves: Curves
    model: ModelEcho
    environment: Environment


if TYPE_CHECKING:
    _WithSections = _Measured
else:  # one optional field per diagnostic section, from the table in diagnostic_groups.py
    _WithSections = create_model(
        "_WithSections",
        __base__=_Measured,
        __module__=__name__,
        **{section.name: (section.model | None, None) for section in SECTIONS},
    )


class ExperimentResult(_WithSections):
    """Everything the worker measured for one experiment."""

    findings: list[Finding]
    headline: str | None = Field(
        None, description="The verdict in one line: the worst finding and its first fix."
    )
    seeds: SeedRuns | None = Field(
        None, description="Present for training.seeds: every seed's outcome and the spread."
    )
    cohort: CohortRun | None = Field(
        None, description="Present for a sweep point trained together with other points "
        "(its own result all the same; the summary's times are the cohort's)."
    )
    truncated: ResultTruncation | None = Field(
        None, description="Present when the result was larger than max_result_bytes and was "
        "stored decimated: what was cut."
    )


#: The top-level parts of a result, in order (what ``?fields=`` may name).
RESULT_PARTS: tuple[str, ...] = tuple(ExperimentResult.model_fields)

if TYPE_CHECKING:
    ExperimentResultPart = ExperimentResult
else:  # the same parts, each optional: what ``GET /v1/experiments/{id}?fields=...`` returns
    ExperimentResultPart = create_model(
        "ExperimentResultPart",
        __base__=Doc,
        __module__=__name__,
        __doc__="Some parts of a result (``?fields=``); each part as in ExperimentResult.",
        **{name: (field.annotation | None, None)
           for name, field in ExperimentResult.model_fields.items()},
    )

