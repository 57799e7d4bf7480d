"""Where a batched-seeds training step goes: the README's breakdown of the K = 8 MLP step.

Prints, for the MLP of ``bench_batched_seeds.py`` (depth 4, width 64, batch 64, one CPU thread):
  1. the time of one batched step (``batched_loop.train_batched``'s loop body) for K = 1, 2,
     4, 8, 16, min and median over interleaved repeats: the fixed cost (K = 1) and the cost
     per member;
  2. kernels alone: one batched product [8, 64, 64] x [8, 64, 64] (and its GFLOP/s), a ReLU of
     [8, 64, 64], log-softmax over 10 classes along the last axis and along a strided one;
  3. ``torch.profiler`` over 200 steps at K = 8: self CPU time per call of the heaviest ops (the
     profiler's own per-op cost is in them: small elementwise ops look several times slower
     than alone), and the step's batched products at their time alone, as a share of (1);
  4. the same batched product over a working set that grows (pairs of operands taken in turn).

Usage (about a minute):
  .venv/bin/python bench/profile_batched_step.py
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_batched_seeds import make_spec  # noqa: E402
from worker.compute.batched import BatchedNet
from worker.compute.batched_loop import BatchedRun
from worker.compute.data import make_dataset
from worker.compute.seeds import build_members
from worker.compute.training import TrainHooks

KS = (1, 2, 4, 8, 16)


def batched_step(k: int) -> Callable[[], None]:
    """One step of the batched loop for K seeds of the bench's MLP (no logging, no probes)."""
    spec = make_spec("mlp", "off", 300, 64, "cpu")
    spec = spec.model_copy(update={
        "training": spec.training.model_copy(update={"seeds": list(range(k))})})
    data = make_dataset(spec.data, 0, torch.device("cpu"))
    members = build_members(spec, data)
    net = BatchedNet([m.model for m in members], data.shape.input_shape)
    run = BatchedRun(spec, members, net, TrainHooks())
    x, y, kb = data.x_train, data.y_train, (k, run.plan.batch)
    assert run.flat.grad is not None
    grad = run.flat.grad

    def step() -> None:
        idx = run.batches.next()
        losses = run.member_loss(net(x.index_select(0, idx).view(*kb, *x.shape[1:])),
                                 y.index_select(0, idx).view(*kb))
        grad.zero_()
        torch.autograd.backward(losses, run.ones)
        run.sgd.step(0.01)

    return step


def per_call_us(fn: Callable[[], object], calls: int = 2000) -> float:
    for _ in range(100):
        fn()
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    """Long: the profile as one script read top to bottom, its five sections in the order the
    module docstring lists them."""
    torch.set_num_threads(1)
    steps = {k: batched_step(k) for k in KS}
    for fn in steps.values():
        for _ in range(20):
            fn()
    times: dict[int, list[float]] = {k: [] for k in KS}
    for _ in range(15):
        for k, fn in steps.items():
            start = time.process_time()
            for _ in range(20):
                fn()
            times[k].append((time.process_time() - start) / 20 * 1e3)
    print("1. one batched step, CPU ms (min / median of 15 repeats of 20 steps)")
    for k, t in times.items():
        print(f"   K = {k:>2}: {min(t):6.3f} / {statistics.median(t):6.3f}")
    lo = {k: min(t) for k, t in times.items()}
    med = {k: statistics.median(t) for k, t in times.items()}
    print(f"   per member from K = 1 to 8: {(lo[8] - lo[1]) / 7:.3f} / "
          f"{(med[8] - med[1]) / 7:.3f} ms")

    a, b = torch.randn(8, 64, 64), torch.randn(8, 64, 64)
    logits = torch.randn(8, 64, 10)
    bmm_us = per_call_us(lambda: torch.bmm(a, b))
    print("2. kernels alone, CPU us per call")
    print(f"   bmm [8, 64, 64] x [8, 64, 64]: {bmm_us:.1f} "
          f"({2 * 8 * 64 * 64 * 64 / bmm_us / 1e3:.0f} GFLOP/s)")
    big_a, big_b = torch.randn(512, 512), torch.randn(512, 512)
    peak_us = per_call_us(lambda: big_a @ big_b, 200)
    print(f"   one matmul 512 x 512 by 512 x 512 (this CPU's single-thread peak): "
          f"{2 * 512 ** 3 / peak_us / 1e3:.0f} GFLOP/s")
    print(f"   relu [8, 64, 64]: {per_call_us(lambda: torch.relu(a)):.1f}")
    print(f"   log_softmax [8, 64, 10], last axis: "
          f"{per_call_us(lambda: logits.log_softmax(-1)):.1f}; strided class axis "
          f"([8, 10, 64] view): {per_call_us(lambda: logits.movedim(-1, 1).log_softmax(1)):.1f}")

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(200):
            steps[8]()
    print("3. inside the loop (torch.profiler, K = 8, 200 steps): self CPU us per call")
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    for event in rows[:8]:
        print(f"   {event.key:<28} {event.self_cpu_time_total / event.count:8.1f} us "
              f"x {event.count // 200} a step")

    products = sum(event.count for event in rows if event.key in ("aten::bmm", "aten::baddbmm"))
    floor_ms = products / 200 * bmm_us / 1e3
    print(f"   (the profiler's own cost lands on each op: the step's plain time is (1)); the "
          f"step's {products // 200} batched products at their time alone: {floor_ms:.2f} ms, "
          f"{floor_ms / lo[8]:.0%} of the K = 8 step")

    print("4. bmm [8, 64, 64] x [8, 64, 64] over a growing working set, CPU us per call")
    for pairs in (1, 4, 16, 64):
        operands = itertools.cycle(
            [(torch.randn(8, 64, 64), torch.randn(8, 64, 64)) for _ in range(pairs)])

        def one(operands: Iterator[tuple[torch.Tensor, torch.Tensor]] = operands) -> torch.Tensor:
            return torch.bmm(*next(operands))

        print(f"   {pairs * 2 * 8 * 64 * 64 * 4 / 2**20:5.2f} MB: {per_call_us(one):.1f}")

    q, keys = torch.randn(2048, 16, 8), torch.randn(2048, 8, 16)
    parts = [(q[i * 256:(i + 1) * 256].contiguous(), keys[i * 256:(i + 1) * 256].contiguous())
             for i in range(8)]
    print("5. attention products 16 x 8 by 8 x 16, CPU us: one bmm of 2048 "
          f"{per_call_us(lambda: torch.bmm(q, keys), 300):.0f}, 8 bmm of 256 "
          f"{per_call_us(lambda: [torch.bmm(a, b) for a, b in parts], 300):.0f}")


if __name__ == "__main__":
    main()
