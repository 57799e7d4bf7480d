"""Diagnostics overhead on a small transformer, side by side in one run.

The transformer counterpart of ``bench_training_overhead.py`` (same method): trains the same
Pre-LN transformer on the same Markov-language token task and batch order several ways:
  plain     a hand-written PyTorch SGD+momentum loop (the floor),
  off       worker.compute.training.train with diagnostics off,
  basic / standard / full
            train with that preset (standard, the default, adds the attention diagnostics:
            block gradients, signal propagation, rank collapse, attention entropy).
Runs are interleaved in a shuffled order and repeated; medians in wall and CPU time, and the
in-run share of training time spent in diagnostics. Usage:
  python bench/bench_transformer_overhead.py [--steps 600] [--depth 4] [--width 32]
      [--length 32] [--device cpu|cuda] [--threads 1] [--presets off,basic,standard]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

import torch

from worker.compute.data import make_dataset
from worker.compute.evaluation import loss_function
from worker.compute.model import build_model
from worker.compute.results import build_probes
from worker.compute.training import train
from worker.core.spec import ExperimentSpec

Timing = tuple[float, float]  # (wall seconds, process CPU seconds)
SHARES: dict[str, list[float]] = {}


def make_spec(args: argparse.Namespace, preset: str) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "spec_version": 1,
        "model": {"family": "transformer", "depth": args.depth, "width": args.width,
                  "heads": 4, "mlp_ratio": 2},
        "data": {"kind": "markov_language", "vocab": 16, "order": 1, "length": args.length,
                 "n_train": 4096},
        "optimizer": {"lr": 0.3, "momentum": 0.9},
        "training": {"steps": args.steps, "batch_size": args.batch, "device": args.device},
        "diagnostics": {"preset": preset},
    })


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    now = _clock()
    return now[0] - start[0], now[1] - start[1]


def time_plain(spec: ExperimentSpec, device: torch.device) -> Timing:
    torch.manual_seed(0)
    data = make_dataset(spec.data, 0, device)
    model = build_model(spec).to(device)
    loss_fn = loss_function(data.shape)
    opt = torch.optim.SGD(model.parameters(), lr=spec.optimizer.lr, momentum=0.9)
    n, b = data.x_train.shape[0], spec.training.batch_size
    g = torch.Generator(device=device).manual_seed(0)
    perm, pos = torch.randperm(n, generator=g, device=device), 0
    _sync(device)
    start = _clock()
    for _ in range(spec.training.steps or 0):
        if pos + b > n:
            perm, pos = torch.randperm(n, generator=g, device=device), 0
        idx = perm[pos : pos + b]
        pos += b
        loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    float(loss.detach())
    return _since(start)


def time_ours(spec: ExperimentSpec, device: torch.device) -> Timing:
    torch.manual_seed(0)
    data = make_dataset(spec.data, 0, device)
    model = build_model(spec).to(device)
    probes = build_probes(spec, model, data, loss_function(data.shape))
    _sync(device)
    start = _clock()
    run = train(spec, model, data, probes)
    SHARES.setdefault(spec.diagnostics.preset, []).append(run.diagnostics_time_s / run.train_time_s)
    return _since(start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--presets", default="off,basic,standard")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    presets = args.presets.split(",")
    specs = {p: make_spec(args, p) for p in presets}
    time_plain(specs[presets[0]], device)  # warm-up
    times: dict[str, list[Timing]] = {"plain": [], **{p: [] for p in presets}}
    order = random.Random(0)
    for _ in range(args.repeats):
        runs = ["plain", *presets]
        order.shuffle(runs)
        for p in runs:
            spec = specs[presets[0] if p == "plain" else p]
            times[p].append(time_plain(spec, device) if p == "plain" else time_ours(spec, device))
    report: dict[str, Any] = {"config": vars(args), "torch_threads": torch.get_num_threads()}
    report["in_run"] = {
        p: {"diagnostics_share": round(statistics.median(v), 4),
            "implied_factor": round(1 / (1 - statistics.median(v)), 3)}
        for p, v in SHARES.items()
    }
    for label, index in (("wall", 0), ("cpu", 1)):
        med = {k: statistics.median(t[index] for t in v) for k, v in times.items()}
        base = med["off"] if "off" in med else med["plain"]
        report[label] = {
            "median_seconds": med,
            "over_plain": {k: round(v / med["plain"], 3) for k, v in med.items()},
            "over_off": {k: round(v / base, 3) for k, v in med.items()},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
