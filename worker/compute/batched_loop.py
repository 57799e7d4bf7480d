"""The batched training loop: K models of one design stepped at once as one ``BatchedNet``.

Two callers: ``training.seeds`` (``seeds.py``: K initializations of one spec, one job, one
dataset, one stop for all) and sweep cohorts (``cohort.py``: K points that differ in seed,
learning rate, momentum or init gain, each its own job with its own data, progress and
cancellation). Per member, everything a single run does happens at the same steps: its batch
order, logging, probes (on its ordinary ``Net``, its weights copied out at the probe step) and
evaluations; a member that diverges or is cancelled stops there and is finished at once
(``on_end``), the others go on. The time limit stops every member at the same step.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from worker.compute.batched import BatchedNet, FlatSGD, clip_per_member
from worker.compute.evaluation import Evaluation, loss_function
from worker.compute.seed_members import SeedMember, batched_losses
from worker.compute.training import (
    EVAL_CURVE_EXAMPLES,
    STOP_POLL_S,
    Batches,
    LossWindow,
    Member,
    MemberBatches,
    Outcome,
    Plan,
    StopClock,
    TrainHooks,
    TrainOutcome,
    lr_schedule,
    record_evaluation,
)
from worker.core.spec import ExperimentSpec

#: Steps of per-member learning rates sent to the device at once (cohorts with their own lrs).
LR_ROWS = 1024
#: Called with a member's index and its outcome as soon as it ends (early, or with the rest).
EndFn = Callable[[int, TrainOutcome], None]


class BatchedRun:
    """The batched run's shared state: the stacked model, its optimizer, the members.

    ``member_hooks`` (cohorts): each member's own progress and stop; without them (seeds) the
    run reports one progress (the members' median loss) and ``hooks.should_stop`` stops all.
    """

    def __init__(self, spec: ExperimentSpec, members: list[SeedMember], net: BatchedNet,
                 hooks: TrainHooks, member_hooks: list[TrainHooks] | None = None,
                 on_end: EndFn | None = None) -> None:
        self.spec, self.net, self.hooks = spec, net, hooks
        self.member_hooks, self.on_end = member_hooks, on_end
        data = members[0].data
        self.flat = net.flatten()  # one tensor for the optimizer
        o = spec.optimizer
        self.sgd = FlatSGD(self.flat, momentum=[m.spec.optimizer.momentum for m in members],
                           nesterov=o.nesterov, weight_decay=o.weight_decay,
                           members=net.member_of_flat())
        self.plan = Plan.of(spec, data)
        schedules = [lr_schedule(m.spec) for m in members]
        self.lr_ats = [lr_at for lr_at, _ in schedules]
        self.same_lr = len({m.spec.optimizer.lr for m in members}) == 1
        self._lr_rows: tuple[int, Tensor] | None = None  # (first step, its [LR_ROWS, K] rates)
        self._lr_fixed: Tensor | None = None  # [K]: constant schedules
        self._lr_constant = all(constant for _, constant in schedules)
        loss_fn = loss_function(data.shape, spec.training.loss)
        self.members = [Member(m.model, m.probes, m.data, loss_fn, member_hooks[k]
                               if member_hooks else hooks, self.plan, self.lr_ats[k])
                        for k, m in enumerate(members)]
        shared = all(m.data is data for m in members)
        # one dataset (seeds) or each member's rows stacked, member k's at [k * n, (k + 1) * n)
        self.x, self.y = ((data.x_train, data.y_train) if shared else
                          (torch.cat([m.data.x_train for m in members]),
                           torch.cat([m.data.y_train for m in members])))
        self.shared_data = shared
        self.batches = MemberBatches([Batches(self.plan.n_train, self.plan.batch, m.seed,
                                              data.x_train.device) for m in members],
                                     stacked_rows=not shared)
        self.ones = torch.ones(len(members), device=data.x_train.device)  # d(sum)/d(loss_k)
        self.member_loss = batched_losses(data.shape, spec.training.loss)
        self.active = [True] * len(members)
        self.outs: list[TrainOutcome | None] = [None] * len(members)
        self._next_poll = time.monotonic() + STOP_POLL_S

    def live(self) -> list[int]:
        return [k for k, on in enumerate(self.active) if on]

    def lr(self, step: int) -> float | Tensor:
        """This step's learning rate: one for all members, or each member's (a ``[K]`` row on
        the device, from a table made every ``LR_ROWS`` steps: never a host-to-device copy a
        step; the same float32 values as each member's own rate)."""
        if self.same_lr:
            return self.lr_ats[0](step)
        if self._lr_constant:  # one row for the whole run (the same tensor: FlatSGD keeps it)
            if self._lr_fixed is None:
                self._lr_fixed = torch.tensor([lr_at(0) for lr_at in self.lr_ats],
                                              dtype=self.flat.dtype, device=self.flat.device)
            return self._lr_fixed
        first = step - step % LR_ROWS
        if self._lr_rows is None or self._lr_rows[0] != first:
            rows = [[lr_at(s) for lr_at in self.lr_ats]
                    for s in range(first, min(first + LR_ROWS, max(self.plan.steps, 1)))]
            self._lr_rows = (first, torch.tensor(rows, dtype=self.flat.dtype,
                                                 device=self.flat.device))
        return self._lr_rows[1][step - first]

    def probe(self, step: int) -> None:
        for k in self.live():
            probes = self.members[k].probes
            if probes is not None and probes.due(step):
                self.net.export(k)
                probes.run(self.members[k].model, step, self.members[k].lr(step))

    def after_update(self, step: int) -> None:
        for k in self.live():
            probes = self.members[k].probes
            if probes is not None and probes.wants_update:
                self.net.export(k)
                probes.after_update(self.members[k].model, step)

    @torch.no_grad()
    def evaluate(self, step: int) -> None:
        """Every live member's curve evaluation in one batched forward per split."""
        was_training = self.net.training
        self.net.eval()
        try:
            pairs = [self._split(lambda d: (d.x_train, d.y_train)),
                     self._split(lambda d: (d.x_val, d.y_val))]
        finally:
            self.net.train(was_training)
        for k in self.live():
            (tl, ta), (vl, va) = ((loss[k], None if acc is None else acc[k])
                                  for loss, acc in pairs)
            record_evaluation(self.members[k].curves, step, Evaluation(tl, ta, vl, va))

    def _split(self, split: Callable[[Any], tuple[Tensor, Tensor]]
               ) -> tuple[list[float], list[float] | None]:
        if self.shared_data:
            x, y = (t[:EVAL_CURVE_EXAMPLES] for t in split(self.members[0].data))
            xs, ys = x.expand(self.net.k, *x.shape), y.expand(self.net.k, *y.shape)
        else:
            xs, ys = (torch.stack(ts) for ts in zip(
                *((t[:EVAL_CURVE_EXAMPLES] for t in split(m.data)) for m in self.members),
                strict=True))
        out = self.net(xs)
        loss: list[float] = self.member_loss(out, ys).tolist()  # a host sync: eval points only
        if ys.dtype != torch.long:
            return loss, None
        acc: list[float] = (out.argmax(dim=-1) == ys).float().flatten(1).mean(1).tolist()
        return loss, acc

    def log(self, done: int, rows: list[list[float]]) -> None:
        """Per member: its curve point, or its divergence (it stops there); then progress."""
        for k in self.live():
            diverged_at = self.members[k].log(done, [row[k] for row in rows])
            if diverged_at is not None:
                self.end(k, ("diverged", done, diverged_at))
        live = self.live()
        if self.member_hooks is not None:
            for k in live:
                m = self.members[k]
                self.member_hooks[k].on_progress({
                    **self.plan.progress(done, m.curves.train_loss[-1], m.started),
                    "cohort": {"size": len(self.members), "live": len(live)}})
        elif live:
            losses = [self.members[k].curves.train_loss[-1] for k in live]
            self.hooks.on_progress({**self.plan.progress(done, statistics.median(losses),
                                                         self.members[0].started),
                                    "seeds": len(self.members), "seeds_live": len(live)})

    def leaving(self, force: bool = False) -> list[int]:
        """The live members whose own hooks ask them to stop (cohorts; polled every
        ``STOP_POLL_S``, or now with ``force``)."""
        if self.member_hooks is None:
            return []
        now = time.monotonic()
        if not force and now < self._next_poll:
            return []
        self._next_poll = now + STOP_POLL_S
        return [k for k in self.live() if self.member_hooks[k].should_stop()]

    def stop(self, members: list[int], done: int) -> None:
        for k in members:
            self.net.export(k)  # its weights at the step it stopped
            self.end(k, ("stopped", done, None))

    def end(self, k: int, end: tuple[Outcome, int, int | None]) -> None:
        """Member k stops here: it is finished now, and the caller hears it (``on_end``)."""
        self.active[k] = False
        out = self.outs[k] = self.members[k].finish(*end)
        if self.on_end is not None:
            self.on_end(k, out)


def train_batched(spec: ExperimentSpec, members: list[SeedMember], net: BatchedNet,
                  hooks: TrainHooks, member_hooks: list[TrainHooks] | None = None,
                  on_end: EndFn | None = None) -> list[TrainOutcome]:
    """Long: the batched twin of ``training.train``, one step for every member at once; kept
    as one loop so it reads side by side with the single-model loop. Members that end early
    are reported through ``on_end``; the rest are finished (and reported) at the end."""
    run = BatchedRun(spec, members, net, hooks, member_hooks, on_end)
    plan, clock, window = run.plan, StopClock(hooks), LossWindow()
    x, y, clip = run.x, run.y, spec.optimizer.clip_grad_norm
    done, stop = 0, None
    net.train()
    for member in run.members:
        member.model.train()
    run.probe(0)
    clock.reserve = max((m.probes.end_reserve_s() for m in run.members if m.probes), default=0)
    run.evaluate(0)
    stop = clock.poll(force=True) if plan.steps else None
    run.stop(run.leaving(force=True) if plan.steps else [], 0)
    kb = (len(run.members), plan.batch)  # a step's [K, B] batch
    while stop is None and done < plan.steps and run.live():
        idx = run.batches.next()  # [K * B]: each member's own order, member-major
        # index_select with a flat index: half the time of x[idx] for a [K, B] one
        losses = run.member_loss(net(x.index_select(0, idx).view(*kb, *x.shape[1:])),
                                 y.index_select(0, idx).view(*kb, *y.shape[1:]))  # [K]
        assert run.flat.grad is not None
        run.flat.grad.zero_()
        # the gradient of the members' summed loss, without a sum op and its backward
        torch.autograd.backward(losses, run.ones)
        if clip is not None:
            clip_per_member(net, clip)
        run.sgd.step(run.lr(done))
        run.after_update(done + 1)
        window.push(losses)
        done += 1
        stop = clock.poll()
        leaving = run.leaving()
        probe_due = any(m.probes is not None and m.probes.due(done) for m in run.members)
        if (window.filled == plan.log_every or done == plan.steps or probe_due or stop
                or leaving):
            run.log(done, window.read())  # the loop's only host-device sync
            stop = clock.poll(force=True)
            run.stop(run.leaving(force=True), done)  # a stop asked stays asked
        if probe_due and stop is None:
            run.probe(done)
        if done % plan.eval_every == 0 and done < plan.steps and stop is None and run.live():
            run.evaluate(done)
    outcome: Outcome = stop or "completed"
    for k in run.live():
        net.export(k)
        run.end(k, (outcome, done, None))
    return [out for out in run.outs if out is not None]
