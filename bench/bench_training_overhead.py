"""Training-loop overhead, side by side in one run.

Trains the same MLP on the same data and batch order several ways and prints the ratios:
  plain     a hand-written PyTorch SGD+momentum loop (the floor),
  off       worker.compute.training.train with diagnostics off (curves and evaluations only),
  basic / standard / full
            worker.compute.training.train with that diagnostics preset (standard is the default:
            probes at step 0, ~8 more, and the end, plus end-of-run analyses).
Every configuration first runs once, short, unmeasured (the first probe run compiles code
paths). Then the runs are interleaved in a shuffled order and repeated; each run's time is
divided by the plain loop's time *of the same repeat*, and the table gives the median of those
per-repeat ratios with their spread (min-max and interquartile range), in process CPU time (the
steadier measure on a shared machine) and in wall time. Measured inside each run, the share of
its training time spent in diagnostics is immune to drift between runs. The target checked:
the default preset (standard) costs <= 1.05x the plain loop.

Usage (the full measurement, CPU, one thread: about 4 minutes on a 2-core machine):
  .venv/bin/python bench/bench_training_overhead.py --steps 1000 --repeats 5 --threads 1 \
      --presets off,basic,standard --json bench/out/overhead-cpu.json
Smoke run (seconds):
  .venv/bin/python bench/bench_training_overhead.py --steps 40 --repeats 2 --threads 1
Options: [--depth 8] [--width 256] [--batch 128] [--device cpu|cuda] [--target 1.05]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.raw_numbers import write_report  # noqa: E402
from worker.compute.data import Dataset, make_dataset
from worker.compute.evaluation import loss_function
from worker.compute.model import build_model
from worker.compute.results import build_probes
from worker.compute.training import train
from worker.core.spec import ExperimentSpec

TARGET_PRESET = "standard"
Timing = tuple[float, float]  # (wall seconds, process CPU seconds)


def make_spec(args: argparse.Namespace, preset: str, steps: int | None = None) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "spec_version": 1,
            "model": {"depth": args.depth, "width": args.width, "activation": "relu"},
            "init": {"scheme": "kaiming_normal"},
            "data": {"kind": "teacher", "input_dim": 32, "output_dim": 10, "n_train": 8192},
            "optimizer": {"lr": 0.01, "momentum": 0.9},
            "training": {"steps": args.steps if steps is None else steps,
                         "batch_size": args.batch, "device": args.device},
            "diagnostics": {"preset": preset},
        }
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    now = _clock()
    return now[0] - start[0], now[1] - start[1]


def plain_loop(spec: ExperimentSpec, model: torch.nn.Module, data: Dataset,
               loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int) -> None:
    """The floor: SGD + momentum steps on batches of a seeded permutation, nothing else."""
    device = data.x_train.device
    opt = torch.optim.SGD(model.parameters(), lr=spec.optimizer.lr, momentum=0.9)
    n, b = data.x_train.shape[0], spec.training.batch_size
    g = torch.Generator(device=device).manual_seed(seed)
    perm, pos = torch.randperm(n, generator=g, device=device), 0
    for _ in range(spec.training.steps or 0):
        if pos + b > n:
            perm, pos = torch.randperm(n, generator=g, device=device), 0
        idx = perm[pos : pos + b]
        pos += b
        loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        opt.step()
    float(loss.detach())  # wait for the last step


def time_plain(spec: ExperimentSpec, device: torch.device) -> Timing:
    torch.manual_seed(0)
    data = make_dataset(spec.data, 0, device)
    model = build_model(spec).to(device)
    loss_fn = loss_function(data.shape)  # cross-entropy for classes, per token for tokens
    _sync(device)
    start = _clock()
    plain_loop(spec, model, data, loss_fn, 0)
    return _since(start)


def time_ours(spec: ExperimentSpec, device: torch.device) -> tuple[Timing, float]:
    """Our loop's time, and the in-run share of its training time spent in diagnostics."""
    torch.manual_seed(0)
    data = make_dataset(spec.data, 0, device)
    model = build_model(spec).to(device)
    probes = build_probes(spec, model, data, loss_function(data.shape))
    _sync(device)
    start = _clock()
    run = train(spec, model, data, probes)
    _sync(device)
    return _since(start), run.diagnostics_time_s / run.train_time_s


# --- statistics and the table (bench_transformer_overhead.py uses them too) ----------------


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and quartiles of per-repeat values."""
    ordered = sorted(values)
    q1, q3 = ((statistics.quantiles(ordered, n=4, method="inclusive")[i] for i in (0, 2))
              if len(ordered) > 1 else (ordered[0], ordered[0]))
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "q1": q1, "q3": q3, "n": len(ordered)}


def ratios(runs: list[dict[str, Any]], config: str, base: str, clock: str) -> list[float]:
    """``config``'s time over ``base``'s, per repeat (each repeat divided by its own base)."""
    by_repeat: dict[int, dict[str, float]] = {}
    for r in runs:
        by_repeat.setdefault(r["repeat"], {})[r["config"]] = r[clock]
    return [v[config] / v[base] for v in by_repeat.values() if config in v and base in v]


def verdict(s: dict[str, float], target: float) -> str:
    if s["max"] <= target:
        return f"met (every repeat <= {target:.2f})"
    if s["median"] <= target:
        return f"met by the median; {s['max']:.3f} in the worst repeat"
    if s["min"] <= target:
        return f"NOT met by the median ({s['median']:.3f}); within the repeats' spread"
    return f"NOT met (every repeat > {target:.2f})"


def summarize(runs: list[dict[str, Any]], configs: list[str],
              shares: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for clock in ("cpu", "wall"):
        out[clock] = {c: {
            "seconds": spread([r[clock] for r in runs if r["config"] == c]),
            "over_plain": spread(ratios(runs, c, "plain", clock)),
            **({"over_off": spread(ratios(runs, c, "off", clock))}
               if "off" in configs else {}),
        } for c in configs}
    out["in_run_share"] = {c: spread(v) for c, v in shares.items()}
    return out


def table(summary: dict[str, Any], configs: list[str]) -> list[str]:
    def cell(s: dict[str, float]) -> str:
        return f"{s['median']:.3f} [{s['min']:.3f}-{s['max']:.3f}] IQR {s['q1']:.3f}-{s['q3']:.3f}"

    lines = []
    for clock in ("cpu", "wall"):
        rows = summary[clock]
        lines.append(f"{clock} time: median of per-repeat ratios [min-max] IQR q1-q3")
        header = f"  {'config':<9} {'median s':>9}  {'x plain loop':<38}"
        header += f" {'x diagnostics off':<38}" if "over_off" in rows[configs[0]] else ""
        lines.append(header)
        for c in configs:
            row = rows[c]
            line = f"  {c:<9} {row['seconds']['median']:>9.3f}  {cell(row['over_plain']):<38}"
            if "over_off" in row:
                line += f" {cell(row['over_off']):<38}"
            lines.append(line)
    lines.append("in-run diagnostics share of training time: median [min-max] -> implied factor")
    for c, s in summary["in_run_share"].items():
        lines.append(f"  {c:<9} {s['median']:.2%} [{s['min']:.2%}-{s['max']:.2%}]"
                     f" -> {1 / (1 - s['median']):.3f}x")
    return lines


SpecMaker = Callable[[argparse.Namespace, str, "int | None"], ExperimentSpec]


def add_arguments(parser: argparse.ArgumentParser, *, steps: int, presets: str,
                  target: float) -> None:
    """The options every overhead bench takes (each adds its model's own)."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--presets", default=presets)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=target,
                        help=f"the most {TARGET_PRESET} may cost, over the plain loop")
    parser.add_argument("--json", type=Path, default=None, help="write every raw number here")


def run_bench(args: argparse.Namespace, name: str, title: str, make: SpecMaker) -> None:
    """Warm up, run every configuration shuffled per repeat, print the table and the target."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    presets = args.presets.split(",")
    configs = ["plain", *presets]
    specs = {p: make(args, p, None) for p in presets}
    # warm-up, unmeasured: allocator, kernels, thread pool, and each preset's probe code paths
    # (without it the first measured run of a preset pays for them)
    time_plain(make(args, presets[0], min(args.steps, 50)), device)
    for p in presets:
        time_ours(make(args, p, min(args.steps, 50)), device)
    runs: list[dict[str, Any]] = []
    shares: dict[str, list[float]] = {}
    order = random.Random(0)
    for repeat in range(args.repeats):
        # a fresh random order each repeat, so no configuration always runs first or last
        shuffled = list(configs)
        order.shuffle(shuffled)
        for position, c in enumerate(shuffled):
            share = None
            if c == "plain":
                (wall, cpu) = time_plain(specs[presets[0]], device)
            else:
                (wall, cpu), share = time_ours(specs[c], device)
                shares.setdefault(c, []).append(share)
            runs.append({"repeat": repeat, "position": position, "config": c, "wall": wall,
                         "cpu": cpu, "diagnostics_share": share})
    summary = summarize(runs, configs, shares)
    report: dict[str, Any] = {
        "bench": name,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "runs": runs,
        "summary": summary,
    }
    print(f"{title}, {args.steps} steps, {args.repeats} repeats, {report['device_name']}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("\n".join(table(summary, configs)))
    if TARGET_PRESET in presets:
        for clock in ("cpu", "wall"):
            s = summary[clock][TARGET_PRESET]["over_plain"]
            report.setdefault("target", {})[clock] = {"limit": args.target,
                                                      "verdict": verdict(s, args.target)}
            print(f"target {TARGET_PRESET} <= {args.target:.2f}x plain ({clock}): "
                  f"{verdict(s, args.target)}")
    if args.json is not None:
        write_report(args.json, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    add_arguments(parser, steps=1000, presets="off,basic,standard,full", target=1.05)
    args = parser.parse_args()
    run_bench(args, "training_overhead", f"MLP {args.depth}x{args.width}, batch {args.batch}",
              make_spec)


if __name__ == "__main__":
    main()
