"""The training loop: SGD with momentum over an in-memory dataset, probes on a schedule.

Performance notes (ARCHITECTURE.md): the data stays on the device and batches are index
lookups into a seeded permutation; per-step losses are written into a device buffer and read
back only at logging points, so the hot loop has no host-device synchronization.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from worker.compute.data import Dataset
from worker.compute.diagnostics.probes import ProbeSet
from worker.compute.model import Net
from worker.core.spec import DataShape, ExperimentSpec, lr_factor, total_steps

Outcome = Literal["completed", "diverged", "stopped", "timed_out"]
EVAL_MAX_POINTS = 20  # evaluations of train/validation loss per run, at most (plus step 0)
EVAL_MAX_EXAMPLES = 1024  # examples per split and evaluation, at most
EVAL_BUDGET = 0.05  # evaluations cost at most this share of training compute


@dataclass
class TrainHooks:
    """Callbacks at logging points: progress reports and a cooperative stop check."""

    on_progress: Callable[[dict[str, Any]], None] = lambda _p: None
    should_stop: Callable[[], bool] = lambda: False
    deadline: float | None = None  # time.monotonic() after which the run stops: timed_out


@dataclass
class Curves:
    """Downsampled learning curves; each list is aligned with its ``*_step`` list."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    train_eval_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


@dataclass
class TrainOutcome:
    outcome: Outcome
    steps_done: int
    diverged_at_step: int | None
    curves: Curves
    train_time_s: float
    diagnostics_time_s: float  # the part of train_time_s spent in probes
    batch_size: int


LossFn = Callable[[Tensor, Tensor], Tensor]


def uses_cross_entropy(shape: DataShape, choice: str = "auto") -> bool:
    return choice == "cross_entropy" or (choice == "auto" and shape.task == "classification")


def loss_function(shape: DataShape, choice: str = "auto") -> LossFn:
    """The training loss: cross-entropy for classification, MSE for regression (``auto``).

    Per-step tasks average over every step. MSE on a classification task regresses one-hot
    targets.
    """
    use_ce = uses_cross_entropy(shape, choice)
    classes = shape.output_dim

    def loss(out: Tensor, y: Tensor) -> Tensor:
        out = out.reshape(-1, out.shape[-1])
        if use_ce:
            return F.cross_entropy(out, y.reshape(-1))
        target = (
            F.one_hot(y.reshape(-1), classes).to(out.dtype)
            if y.dtype == torch.long
            else (y.reshape(out.shape))
        )
        return F.mse_loss(out, target)

    return loss


def eval_interval(steps: int, batch: int, examples_per_eval: int) -> int:
    """Steps between evaluations, so that they cost at most EVAL_BUDGET of training.

    A training step costs about three forward passes of a batch (forward, backward, update);
    an evaluation is one forward pass over ``examples_per_eval`` examples.
    """
    affordable = int(EVAL_BUDGET * 3 * steps * batch / examples_per_eval)
    points = min(EVAL_MAX_POINTS, max(1, affordable))
    return max(1, math.ceil(steps / points))


@torch.no_grad()
def evaluate(model: Net, x: Tensor, y: Tensor, loss_fn: LossFn) -> tuple[float, float | None]:
    """Loss and accuracy (classification: class ids in ``y``) in eval mode.

    A host sync, so only at evaluation points.
    """
    was_training = model.training
    model.eval()
    try:
        x, y = x[:EVAL_MAX_EXAMPLES], y[:EVAL_MAX_EXAMPLES]
        out = model(x)
        loss = float(loss_fn(out, y))
        acc = None
        if y.dtype == torch.long:
            acc = float((out.argmax(dim=-1) == y).float().mean())
        return loss, acc
    finally:
        model.train(was_training)


@torch.no_grad()
def baseline_loss(data: Dataset, loss_fn: LossFn, use_ce: bool) -> float:
    """Validation loss of the best constant prediction fitted on the training set.

    The trivial baseline every design must beat: class frequencies (their logarithm under
    cross-entropy) for class ids, the mean target for regression. Outcome labels of the findings
    benchmark are final losses as a share of it.
    """
    classes = data.shape.output_dim
    y_train, y_val = data.y_train, data.y_val[:EVAL_MAX_EXAMPLES]
    if y_train.dtype == torch.long:
        counts = torch.bincount(y_train.reshape(-1), minlength=classes).double()
        prior = counts / counts.sum()
        const = prior.clamp_min(1e-12).log() if use_ce else prior
        rows = y_val.numel()
    else:
        const = y_train.reshape(-1, classes).double().mean(dim=0)
        rows = y_val.numel() // classes
    out = const.to(data.x_val.dtype).expand(rows, classes)
    return float(loss_fn(out, y_val))


def make_optimizer(spec: ExperimentSpec, model: Net) -> torch.optim.SGD:
    o = spec.optimizer
    return torch.optim.SGD(
        model.parameters(),
        lr=o.lr,
        momentum=o.momentum,
        nesterov=o.nesterov,
        weight_decay=o.weight_decay,
    )


class _Batches:
    """Batch indices without replacement from a seeded permutation, reshuffled when used up."""

    def __init__(self, n: int, batch: int, seed: int, device: torch.device) -> None:
        self.n, self.batch, self.device = n, batch, device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.generator, device=device)
        self.pos = 0

    def next(self) -> Tensor:
        if self.pos + self.batch > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator, device=self.device)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return idx


class _LossWindow:
    """Per-step losses since the last logging point, kept on the device."""

    def __init__(self, size: int, device: torch.device) -> None:
        self.buffer = torch.empty(size + 1, device=device)
        self.filled = 0

    def push(self, loss: Tensor) -> None:
        self.buffer[self.filled] = loss.detach()
        self.filled += 1

    def read(self) -> list[float]:
        """The losses so far, emptying the window: a host-device sync."""
        losses: list[float] = self.buffer[: self.filled].tolist()
        self.filled = 0
        return losses


def _record_eval(curves: Curves, model: Net, data: Dataset, loss_fn: LossFn, step: int) -> None:
    tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train, loss_fn)
    val_loss, val_acc = evaluate(model, data.x_val, data.y_val, loss_fn)
    curves.eval_step.append(step)
    curves.train_eval_loss.append(tr_loss)
    curves.val_loss.append(val_loss)
    if tr_acc is not None and val_acc is not None:
        curves.train_accuracy.append(tr_acc)
        curves.val_accuracy.append(val_acc)


def _sgd_step(
    model: Net, optimizer: torch.optim.SGD, loss: Tensor, clip: float | None
) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    if clip is not None:  # clamps on the device; no sync
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()


@dataclass(frozen=True)
class _Plan:
    """The run's sizes: steps, batch, and how often it logs and evaluates."""

    steps: int
    batch: int
    n_train: int
    log_every: int
    eval_every: int

    @classmethod
    def of(cls, spec: ExperimentSpec, data: Dataset) -> _Plan:
        n_train, steps = data.x_train.shape[0], total_steps(spec)
        batch = min(spec.training.batch_size, n_train)
        per_eval = min(n_train, EVAL_MAX_EXAMPLES) + min(data.x_val.shape[0], EVAL_MAX_EXAMPLES)
        return cls(
            steps=steps,
            batch=batch,
            n_train=n_train,
            log_every=max(1, math.ceil(steps / spec.diagnostics.curve_points)),
            eval_every=eval_interval(steps, batch, per_eval),
        )


def _stop_reason(hooks: TrainHooks) -> Outcome | None:
    """``stopped`` when the caller asks (cancel), ``timed_out`` past the deadline."""
    if hooks.should_stop():
        return "stopped"
    if hooks.deadline is not None and time.monotonic() > hooks.deadline:
        return "timed_out"
    return None


def _log_point(
    done: int, losses: list[float], plan: _Plan, curves: Curves, hooks: TrainHooks, started: float
) -> tuple[Outcome, int | None] | None:
    """Log the window's mean loss and report progress; the outcome (and divergence step) when
    the run ends here: a non-finite loss, a stop request or the deadline."""
    bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is not None:
        return "diverged", done - len(losses) + bad + 1
    curves.step.append(done)
    curves.train_loss.append(sum(losses) / len(losses))
    hooks.on_progress({
        "step": done, "total_steps": plan.steps, "epoch": (done * plan.batch) / plan.n_train,
        "train_loss": curves.train_loss[-1], "elapsed_s": time.perf_counter() - started,
    })
    stop = _stop_reason(hooks)
    return None if stop is None else (stop, None)


def _lr_schedule(spec: ExperimentSpec) -> tuple[Callable[[int], float], bool]:
    """The learning rate at each step, and whether it is constant (no per-step update)."""
    schedule, base_lr, steps = spec.optimizer.schedule, spec.optimizer.lr, total_steps(spec)
    constant = schedule.kind == "constant" and schedule.warmup_steps == 0

    def lr_at(step: int) -> float:
        return base_lr if constant else base_lr * lr_factor(schedule, step, steps)

    return lr_at, constant


def train(
    spec: ExperimentSpec,
    model: Net,
    data: Dataset,
    probes: ProbeSet | None = None,
    hooks: TrainHooks | None = None,
) -> TrainOutcome:
    """Train ``model`` as the spec says; run ``probes`` when due; stop early on divergence."""
    hooks = hooks or TrainHooks()
    loss_fn = loss_function(data.shape, spec.training.loss)
    optimizer = make_optimizer(spec, model)
    lr_at, constant_lr = _lr_schedule(spec)
    plan = _Plan.of(spec, data)
    batches = _Batches(plan.n_train, plan.batch, spec.training.seed, data.x_train.device)
    window = _LossWindow(plan.log_every, data.x_train.device)
    curves = Curves()
    outcome: Outcome = "completed"
    diverged_at: int | None = None
    done = 0
    model.train()
    started = time.perf_counter()
    if probes is not None and probes.due(0):
        probes.run(model, 0, lr_at(0))
    _record_eval(curves, model, data, loss_fn, 0)
    while done < plan.steps:
        idx = batches.next()
        if not constant_lr:  # a host-side float: no sync
            for group in optimizer.param_groups:
                group["lr"] = lr_at(done)
        loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
        _sgd_step(model, optimizer, loss, spec.optimizer.clip_grad_norm)
        if probes is not None and probes.wants_update:
            probes.after_update(model, done + 1)
        window.push(loss)
        done += 1

        probe_due = probes is not None and probes.due(done)
        if window.filled == plan.log_every or done == plan.steps or probe_due:
            # The only host-device sync of the loop: one read per logging window.
            ended = _log_point(done, window.read(), plan, curves, hooks, started)
            if ended is not None:
                outcome, diverged_at = ended
                break
        if probe_due and probes is not None:
            probes.run(model, done, lr_at(min(done, plan.steps - 1)))
        if done % plan.eval_every == 0 and done < plan.steps:
            _record_eval(curves, model, data, loss_fn, done)
    if outcome != "diverged":
        _record_eval(curves, model, data, loss_fn, done)
        if probes is not None:
            # Stopped early (cancel, time limit): probe where it stopped, then end analyses.
            if probes.last_step != done:
                probes.run(model, done, lr_at(min(done, plan.steps - 1)))
            probes.finish(model, done)
    return TrainOutcome(
        outcome=outcome, steps_done=done, diverged_at_step=diverged_at, curves=curves,
        train_time_s=time.perf_counter() - started,
        diagnostics_time_s=probes.spent_s if probes is not None else 0.0, batch_size=plan.batch,
    )
