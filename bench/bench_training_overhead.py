"""Training-loop overhead, side by side in one run.

Trains the same MLP on the same data and batch order several ways and prints the ratios:
  plain     a hand-written PyTorch SGD+momentum loop (the floor),
  off       worker.compute.training.train with diagnostics off (curves and evaluations only),
  basic / standard / full
            worker.compute.training.train with that diagnostics preset (standard is the default:
            probes at step 0, ~8 more, and the end, plus end-of-run analyses).
Runs are interleaved in a shuffled order and repeated; medians are reported, in wall and CPU
time, and, measured inside each run, the share of its training time spent in diagnostics
(steady even when the machine's speed drifts between runs). Usage:
  python bench/bench_training_overhead.py [--steps 1000] [--depth 8] [--width 256]
      [--device cpu|cuda] [--threads 1] [--presets off,basic,standard,full]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from worker.compute.data import make_dataset
from worker.compute.evaluation import loss_function
from worker.compute.model import build_model
from worker.compute.results import build_probes
from worker.compute.training import train
from worker.core.spec import ExperimentSpec


def make_spec(args: argparse.Namespace, preset: str) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "spec_version": 1,
            "model": {"depth": args.depth, "width": args.width, "activation": "relu"},
            "init": {"scheme": "kaiming_normal"},
            "data": {"kind": "teacher", "input_dim": 32, "output_dim": 10, "n_train": 8192},
            "optimizer": {"lr": 0.01, "momentum": 0.9},
            "training": {"steps": args.steps, "batch_size": args.batch, "device": args.device},
            "diagnostics": {"preset": preset},
        }
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


Timing = tuple[float, float]  # (wall seconds, process CPU seconds)


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    now = _clock()
    return now[0] - start[0], now[1] - start[1]


def time_plain(spec: ExperimentSpec, device: torch.device) -> Timing:
    torch.manual_seed(0)
    data = make_dataset(spec.data, 0, device)
    model = build_model(spec).to(device)
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
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    float(loss.detach())  # wait for the last step
    return _since(start)


SHARES: dict[str, list[float]] = {}  # per preset: diagnostics time / training time, per run


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
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--presets", default="off,basic,standard,full")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    presets = args.presets.split(",")
    specs = {p: make_spec(args, p) for p in presets}
    time_plain(specs[presets[0]], device)  # warm-up (allocator, kernels, thread pool)
    times: dict[str, list[Timing]] = {"plain": [], **{p: [] for p in presets}}
    order = random.Random(0)
    for _ in range(args.repeats):
        # a fresh random order each repeat, so no configuration always runs first or last
        runs = ["plain", *presets]
        order.shuffle(runs)
        for p in runs:
            if p == "plain":
                times["plain"].append(time_plain(specs[presets[0]], device))
            else:
                times[p].append(time_ours(specs[p], device))
    report: dict[str, Any] = {
        "config": vars(args),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
    }
    # Measured inside each run (immune to drift between runs): the share of training time
    # spent in diagnostics, and the slowdown it implies, 1 / (1 - share).
    report["in_run"] = {
        p: {
            "diagnostics_share": round(statistics.median(v), 4),
            "implied_factor": round(1 / (1 - statistics.median(v)), 3),
        }
        for p, v in SHARES.items()
    }
    # CPU time is the steadier measure on a shared machine; wall time is what a user waits.
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
