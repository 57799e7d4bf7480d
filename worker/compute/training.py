"""The training loop: SGD with momentum over an in-memory dataset, probes on a schedule.

Performance notes (ARCHITECTURE.md): the data stays on the device and batches are index
lookups into a seeded permutation; per-step losses stay on the device (a list of detached
scalars, stacked at a logging point), so the hot loop has no host-device synchronization. The
stop checks are host-side: the deadline is compared with the host clock every step, and the
cancel flag is polled at logging points and every ``STOP_POLL_S`` seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from worker.compute.data import Dataset
from worker.compute.diagnostics.probes import ProbeSet
from worker.compute.evaluation import (
    EVAL_MAX_EXAMPLES,
    Evaluation,
    LossFn,
    evaluation,
    loss_function,
)
from worker.compute.model import Net
from worker.core.spec import ExperimentSpec, lr_factor, total_steps

Outcome = Literal["completed", "diverged", "stopped", "timed_out"]
EVAL_MAX_POINTS = 20  # evaluations of train/validation loss per run, at most (plus step 0)
EVAL_CURVE_EXAMPLES = 512  # examples per split in the evaluations along the curve
EVAL_BUDGET = 0.02  # curve evaluations cost at most this share of training compute
STOP_POLL_S = 0.25  # host seconds between cancel-flag polls between logging points


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
    final: Evaluation | None = None  # on up to EVAL_MAX_EXAMPLES per split; None: diverged
    skipped_analyses: list[str] = field(default_factory=list)  # end analyses past the deadline
    probe_batch: int | None = None  # examples in the probe batch; None: no probes


def eval_interval(steps: int, batch: int, examples_per_eval: int) -> int:
    """Steps between evaluations, so that they cost at most EVAL_BUDGET of training.

    A training step costs about three forward passes of a batch (forward, backward, update);
    an evaluation is one forward pass over ``examples_per_eval`` examples.
    """
    affordable = int(EVAL_BUDGET * 3 * steps * batch / examples_per_eval)
    points = min(EVAL_MAX_POINTS, max(1, affordable))
    return max(1, math.ceil(steps / points))


def make_optimizer(spec: ExperimentSpec, params: Any) -> torch.optim.SGD:
    o = spec.optimizer
    return torch.optim.SGD(
        params,
        lr=o.lr,
        momentum=o.momentum,
        nesterov=o.nesterov,
        weight_decay=o.weight_decay,
    )


class Batches:
    """Batch indices without replacement from a seeded permutation, reshuffled when used up."""

    def __init__(self, n: int, batch: int, seed: int, device: torch.device) -> None:
        self.n, self.batch, self.device = n, batch, device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.generator, device=device)
        self.pos = 0

    def next(self) -> Tensor:
        if self.pos + self.batch > self.n:
            self.reshuffle()
        idx = self.perm[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return idx

    def reshuffle(self) -> None:
        self.perm = torch.randperm(self.n, generator=self.generator, device=self.device)
        self.pos = 0


class MemberBatches:
    """K members' ``Batches`` (same size and batch, each its own seed) read as one ``[K, n]``
    permutation: a step's ``[K * B]`` indices are one slice, not K slices and a stack. Member
    k's rows are exactly the ones its own ``Batches`` would give (its permutations, reshuffled
    at the same steps). ``stacked_rows``: each member has its own data, stacked, member k's
    rows at ``[k * n, (k + 1) * n)``; its indices carry that offset (added when a permutation
    is drawn, never per step)."""

    def __init__(self, members: list[Batches], stacked_rows: bool = False) -> None:
        self.members, self.batch, self.n = members, members[0].batch, members[0].n
        device = members[0].perm.device
        self.offsets = (torch.arange(len(members), device=device)[:, None] * self.n
                        if stacked_rows else None)
        self.perm = self._stack()
        self.pos = 0

    def _stack(self) -> Tensor:
        perm = torch.stack([m.perm for m in self.members])
        return perm if self.offsets is None else perm + self.offsets

    def next(self) -> Tensor:
        """Member-major flat indices: member k's batch is ``[k * B : (k + 1) * B]``."""
        if self.pos + self.batch > self.n:
            for m in self.members:
                m.reshuffle()
            self.perm = self._stack()
            self.pos = 0
        idx = self.perm[:, self.pos : self.pos + self.batch].reshape(-1)
        self.pos += self.batch
        return idx


class LossWindow:
    """Per-step losses since the last logging point, kept on the device.

    A list of detached scalars (or of per-member vectors), stacked when read: appending costs
    no kernel, where writing into a preallocated buffer costs an indexing op every step.
    """

    def __init__(self) -> None:
        self.losses: list[Tensor] = []

    @property
    def filled(self) -> int:
        return len(self.losses)

    def push(self, loss: Tensor) -> None:
        self.losses.append(loss.detach())

    def read(self) -> list[Any]:
        """The losses so far (floats, or per-step lists of member losses), emptying the
        window: a host-device sync."""
        losses: list[Any] = torch.stack(self.losses).tolist()
        self.losses = []
        return losses


class StopClock:
    """When to stop, read from the host clock (never a device sync).

    ``deadline`` is compared every step (a float comparison); ``should_stop`` (the cancel flag)
    at logging points and every ``STOP_POLL_S`` between them. ``reserve`` seconds before the
    deadline are kept for the end-of-run analyses.
    """

    def __init__(self, hooks: TrainHooks) -> None:
        self.hooks = hooks
        self.reserve = 0.0
        self._next_poll = time.monotonic() + STOP_POLL_S

    def expired(self) -> bool:
        deadline = self.hooks.deadline
        return deadline is not None and time.monotonic() > deadline - self.reserve

    def poll(self, force: bool = False) -> Outcome | None:
        """``timed_out`` past the deadline, ``stopped`` when the caller asks (cancel)."""
        now = time.monotonic()
        deadline = self.hooks.deadline
        if deadline is not None and now > deadline - self.reserve:
            return "timed_out"
        if force or now >= self._next_poll:
            self._next_poll = now + STOP_POLL_S
            if self.hooks.should_stop():
                return "stopped"
        return None


def record_evaluation(curves: Curves, step: int, ev: Evaluation) -> None:
    curves.eval_step.append(step)
    curves.train_eval_loss.append(ev.train_loss)
    curves.val_loss.append(ev.val_loss)
    if ev.train_accuracy is not None and ev.val_accuracy is not None:
        curves.train_accuracy.append(ev.train_accuracy)
        curves.val_accuracy.append(ev.val_accuracy)


def zero_grads(params: Sequence[Tensor]) -> None:
    """``optimizer.zero_grad(set_to_none=True)`` without its profiler and compiler wrappers,
    which cost more than the work on a small model."""
    for p in params:
        p.grad = None


def _sgd_step(
    params: Sequence[Tensor], optimizer: torch.optim.SGD, loss: Tensor, clip: float | None
) -> None:
    zero_grads(params)
    loss.backward()  # type: ignore[no-untyped-call]
    if clip is not None:  # clamps on the device; no sync
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()


@dataclass(frozen=True)
class Plan:
    """The run's sizes: steps, batch, and how often it logs and evaluates."""

    steps: int
    batch: int
    n_train: int
    log_every: int
    eval_every: int

    @classmethod
    def of(cls, spec: ExperimentSpec, data: Dataset) -> Plan:
        n_train, steps = data.x_train.shape[0], total_steps(spec)
        batch = min(spec.training.batch_size, n_train)
        per_eval = min(n_train, EVAL_CURVE_EXAMPLES) + min(
            data.x_val.shape[0], EVAL_CURVE_EXAMPLES
        )
        return cls(
            steps=steps,
            batch=batch,
            n_train=n_train,
            log_every=max(1, math.ceil(steps / spec.diagnostics.curve_points)),
            eval_every=eval_interval(steps, batch, per_eval),
        )

    def progress(self, done: int, train_loss: float, started: float) -> dict[str, Any]:
        return {
            "step": done, "total_steps": self.steps, "epoch": (done * self.batch) / self.n_train,
            "train_loss": train_loss, "elapsed_s": time.perf_counter() - started,
        }


def first_non_finite(losses: list[float]) -> int | None:
    return next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)


def lr_schedule(spec: ExperimentSpec) -> tuple[Callable[[int], float], bool]:
    """The learning rate at each step, and whether it is constant (no per-step update)."""
    schedule, base_lr, steps = spec.optimizer.schedule, spec.optimizer.lr, total_steps(spec)
    constant = schedule.kind == "constant" and schedule.warmup_steps == 0

    def lr_at(step: int) -> float:
        return base_lr if constant else base_lr * lr_factor(schedule, step, steps)

    return lr_at, constant


@dataclass
class Member:
    """One model being trained and what ends its run: its probes, curves, loss and clock.

    A single run has one; a batched multi-seed run (``seeds.py``) one per seed.
    """

    model: Net
    probes: ProbeSet | None
    data: Dataset
    loss_fn: LossFn
    hooks: TrainHooks
    plan: Plan
    lr_at: Callable[[int], float]
    started: float = field(default_factory=time.perf_counter)
    curves: Curves = field(default_factory=Curves)

    def lr(self, step: int) -> float:
        """The learning rate a probe at ``step`` reports (the last step's at the end)."""
        return self.lr_at(min(step, self.plan.steps - 1))

    def record_eval(self, step: int, limit: int = EVAL_CURVE_EXAMPLES) -> Evaluation:
        ev = evaluation(self.model, self.data, self.loss_fn, limit)
        record_evaluation(self.curves, step, ev)
        return ev

    def log(self, done: int, losses: list[float]) -> int | None:
        """Append the window's mean loss to the curve; the first non-finite step instead."""
        bad = first_non_finite(losses)
        if bad is not None:
            return done - len(losses) + bad + 1
        self.curves.step.append(done)
        self.curves.train_loss.append(sum(losses) / len(losses))
        return None

    def finish(self, outcome: Outcome, done: int, diverged_at: int | None) -> TrainOutcome:
        """The final evaluation (the summary's numbers, also the curve's last point) and the
        end-of-run analyses, unless the run diverged."""
        final: Evaluation | None = None
        skipped: list[str] = []
        probes = self.probes
        if outcome != "diverged":
            final = self.record_eval(done, EVAL_MAX_EXAMPLES)
            if probes is not None:
                # Stopped early (cancel, time limit): probe where it stopped, then end analyses.
                if probes.last_step != done:
                    probes.run(self.model, done, self.lr(done))
                skipped = probes.finish(self.model, done, self.hooks.deadline)
        return TrainOutcome(
            outcome=outcome, steps_done=done, diverged_at_step=diverged_at, curves=self.curves,
            train_time_s=time.perf_counter() - self.started,
            diagnostics_time_s=probes.spent_s if probes is not None else 0.0,
            batch_size=self.plan.batch, final=final, skipped_analyses=skipped,
            probe_batch=int(probes.x.shape[0]) if probes is not None else None,
        )


def train(
    spec: ExperimentSpec,
    model: Net,
    data: Dataset,
    probes: ProbeSet | None = None,
    hooks: TrainHooks | None = None,
) -> TrainOutcome:
    """Train ``model`` as the spec says; run ``probes`` when due; stop early on divergence,
    cancellation or the deadline (checked every step)."""
    hooks = hooks or TrainHooks()
    plan, (lr_at, constant_lr) = Plan.of(spec, data), lr_schedule(spec)
    run = Member(model, probes, data, loss_function(data.shape, spec.training.loss), hooks,
                 plan, lr_at)
    params = list(model.parameters())
    optimizer = make_optimizer(spec, params)
    batches = Batches(plan.n_train, plan.batch, spec.training.seed, data.x_train.device)
    window, clock, x, y = LossWindow(), StopClock(hooks), data.x_train, data.y_train
    outcome: Outcome = "completed"
    diverged_at: int | None = None
    done = 0
    model.train()
    if probes is not None and probes.due(0):
        probes.run(model, 0, lr_at(0))
        clock.reserve = probes.end_reserve_s()
    run.record_eval(0)
    stop = clock.poll(force=True) if plan.steps else None
    while stop is None and done < plan.steps:
        idx = batches.next()
        if not constant_lr:  # a host-side float: no sync
            for group in optimizer.param_groups:
                group["lr"] = lr_at(done)
        loss = run.loss_fn(model(x[idx]), y[idx])
        _sgd_step(params, optimizer, loss, spec.optimizer.clip_grad_norm)
        if probes is not None and probes.wants_update:
            probes.after_update(model, done + 1)
        window.push(loss)
        done += 1
        stop = clock.poll()
        probe_due = probes is not None and probes.due(done)
        if window.filled == plan.log_every or done == plan.steps or probe_due or stop:
            # The only host-device sync of the loop: one read per logging window.
            diverged_at = run.log(done, window.read())
            if diverged_at is not None:
                outcome = "diverged"
                break
            hooks.on_progress(plan.progress(done, run.curves.train_loss[-1], run.started))
            stop = clock.poll(force=True)
        if probe_due and probes is not None and stop is None:
            probes.run(model, done, run.lr(done))
        if done % plan.eval_every == 0 and done < plan.steps and stop is None:
            run.record_eval(done)
    if stop is not None and outcome == "completed":
        outcome = stop
    return run.finish(outcome, done, diverged_at)
