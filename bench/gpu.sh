#!/usr/bin/env bash
# The GPU figures in one go, on a lent GPU machine, from the repository root of a fresh checkout:
#
#   bash bench/gpu.sh [OUT_DIR]          # default OUT_DIR: bench/out/gpu-<date>-<time>
#
# 1. installs what it needs when .venv is missing (`make install`: torch 2.13.0 from PyPI, which
#    on Linux x86_64 is the CUDA build, then the project), prints nvidia-smi and torch's view of
#    CUDA, and stops with a clear message when there is no usable GPU;
# 2. runs, on cuda (meant to take under 5 minutes on one GPU after the install; not yet timed
#    on one: each step prints the seconds so far):
#    - the diagnostics overhead, MLP 8x256 (bench_training_overhead.py) and the small
#      transformer (bench_transformer_overhead.py), 5 shuffled repeats each;
#    - K = 8 and 64 seeds batched vs sequential, MLP / CNN / LSTM, and K = 8 of a small
#      transformer (bench_batched_seeds.py);
#    - a sweep cohort of 8 MLP points (lr) vs the points one after another
#      (bench_sweep_cohort.py);
#    - jobs per minute with one worker per GPU (bench_jobs_per_minute.py; needs redis-server,
#      installed with apt-get when missing and this runs as root);
# 3. prints them as one table (bench/gpu_summary.py); every raw number is in OUT_DIR/*.json,
#    every bench's full output in OUT_DIR/*.log.
#
# GPU_SH_SMOKE=1 runs every step with tiny settings (a minute or two on a GPU); GPU_SH_DEVICE=cpu runs the same
# steps on the CPU without the CUDA checks (to test this script on a machine without a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/out/gpu-$(date +%Y%m%d-%H%M%S)}
DEVICE=${GPU_SH_DEVICE:-cuda}
SMOKE=${GPU_SH_SMOKE:-0}
PY=.venv/bin/python
mkdir -p "$OUT"
say() { printf '\n== %s (%ds so far)\n' "$*" "$SECONDS"; }
fail() { printf 'gpu.sh: %s\n' "$*" >&2; exit 1; }

say "install"
if [ ! -f .venv/.installed ] || ! $PY -c "import torch, worker, service" 2>/dev/null; then
    if command -v make >/dev/null; then
        make install || fail "make install failed (see above)"
    else  # what `make install` does
        { test -x $PY || python3 -m venv .venv; } &&
            $PY -m pip install torch==2.13.0 &&
            $PY -m pip install -e '.[api,worker,dev]' &&
            touch .venv/.installed || fail "the install failed (see above)"
    fi
fi

say "the machine"
if [ "$DEVICE" = cuda ]; then
    nvidia-smi || fail "nvidia-smi failed: no NVIDIA driver or GPU on this machine"
fi
$PY - "$DEVICE" <<'EOF' || fail "torch sees no CUDA device. A CPU build of torch is installed? Reinstall a CUDA one: rm -rf .venv && TORCH_PIP_ARGS='--index-url https://download.pytorch.org/whl/cu128' make install"
import sys, torch
print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
      f"cuda available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
for i in range(torch.cuda.device_count()):
    print(f"  cuda:{i} {torch.cuda.get_device_name(i)}")
sys.exit(0 if sys.argv[1] != "cuda" or torch.cuda.is_available() else 1)
EOF
if [ "$DEVICE" = cuda ]; then
    GPUS=$(nvidia-smi -L | grep -c '^GPU')
else
    GPUS=1
fi
echo "gpus: $GPUS; output: $OUT"

if [ "$SMOKE" = 1 ]; then
    OVERHEAD="--steps 30 --repeats 2"
    TRANSFORMER="--steps 20 --repeats 2"
    SEEDS="--k 2,4 --steps 10 --repeats 1"
    SEEDS_TRANSFORMER="--k 2 --steps 10 --repeats 1"
    COHORT="--k 2 --steps 10 --repeats 1"
    JOBS="--jobs 2 --steps 20"
else
    OVERHEAD="--steps 1000 --repeats 5"
    TRANSFORMER="--steps 600 --repeats 5"
    SEEDS="--k 8,64 --steps 200 --repeats 2"
    SEEDS_TRANSFORMER="--k 8 --steps 200 --repeats 2"  # K = 64 one after another: too long
    COHORT="--k 8 --steps 300 --repeats 3"
    JOBS="--jobs $((16 * GPUS))"
fi

# Each step goes on when one fails: the table says what is missing.
step() {  # step NAME COMMAND...: the command's output to OUT/NAME.log (and the screen)
    local name=$1
    shift
    say "$name"
    "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || echo "gpu.sh: $name failed (exit $rc); see $OUT/$name.log"
}

step overhead $PY bench/bench_training_overhead.py --device "$DEVICE" $OVERHEAD \
    --presets off,basic,standard --json "$OUT/overhead.json"
step transformer-overhead $PY bench/bench_transformer_overhead.py --device "$DEVICE" \
    $TRANSFORMER --presets off,basic,standard --json "$OUT/transformer-overhead.json"
step batched-seeds $PY bench/bench_batched_seeds.py --device "$DEVICE" $SEEDS --presets off \
    --no-plain --families mlp,cnn,lstm --json "$OUT/batched-seeds.json"
step batched-seeds-transformer $PY bench/bench_batched_seeds.py --device "$DEVICE" \
    $SEEDS_TRANSFORMER --presets off --no-plain --families transformer \
    --json "$OUT/batched-seeds-transformer.json"
step sweep-cohort $PY bench/bench_sweep_cohort.py --device "$DEVICE" $COHORT \
    --json "$OUT/sweep-cohort.json"

if ! command -v redis-server >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null
then
    say "installing redis-server (apt-get)"
    apt-get install -y redis-server >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y redis-server >/dev/null; }
fi
if command -v redis-server >/dev/null; then
    if [ "$DEVICE" = cuda ]; then
        step jobs-per-minute $PY bench/bench_jobs_per_minute.py --device cuda --gpus "$GPUS" \
            $JOBS --json "$OUT/jobs-per-minute.json"
    else
        step jobs-per-minute $PY bench/bench_jobs_per_minute.py --device cpu --workers 1 \
            $JOBS --json "$OUT/jobs-per-minute.json"
    fi
else
    echo "gpu.sh: redis-server not found (apt-get install redis-server): no jobs per minute"
fi

say "summary"
$PY bench/gpu_summary.py "$OUT" | tee "$OUT/summary.txt"
echo "gpu.sh: done in ${SECONDS}s; raw numbers in $OUT/"
