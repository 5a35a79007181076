#!/usr/bin/env bash
# Nielsen's MNIST table on a GPU machine, in one go of about 9 minutes.
#
#   SPECC_MNIST_DIR=/path/to/mnist OUT=/path/to/results bash benchmarks/nielsen/gpu_run.sh
#   bash benchmarks/nielsen/gpu_run.sh --dry-run      # the same steps on this machine's CPU, tiny
#
# Written for one NVIDIA GPU with 16 CPU cores, PyTorch with CUDA and no network or package index. It
#   0. prints the machine and which Python modules are missing; installs those from
#      benchmarks/nielsen/wheels/ (see wheelhouse.py) into a directory under /tmp, on PYTHONPATH;
#   (a) trains rows 1-7 of the table and mnist_best on CUDA, 8 runs at once sharing the GPU, each pinned to
#      its own CPU core (cores 0-7): Nielsen's epochs x $SCALE (default 0.25; mnist_best its own 14), and
#      every run still training $DEADLINE seconds after the start (default 450) is stopped there, its
#      kept epoch among those done reported as such;
#   (b) at the same time, mnist_best on the CPU pinned to 2 cores (14-15) for 2 epochs: seconds per epoch
#      on a 2-core CPU, to check the 15-minute budget of specs/mnist_best.yaml;
#   (c) after (b), on cores 8-13 while (a) goes on: python -m pytest -q -m gpu, with what time is left;
#   then renders the results into $OUT/nielsen.md (docs/nielsen.md with the tables filled in).
# Everything it prints goes to stdout and to $OUT/gpu_run.log; $OUT also gets results.json, the logs and
# each run's run.json, summary.json and metrics.jsonl (the weights stay in $RUNS, default /tmp).
#
# Settings (environment): OUT, SPECC_MNIST_DIR (the MNIST IDX files; default benchmarks/nielsen/mnist when
# that exists), SCALE, DEADLINE, PYTHON, RUNS.

set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT" || exit 1
STARTED=$(date +%s)

DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
OUT="${OUT:-$ROOT/nielsen-out}"
RUNS="${RUNS:-/tmp/nielsen-runs-$STARTED}"
. "$HERE/gpu_prelude.sh"
find_python
SCALE="${SCALE:-0.25}"
DEADLINE="${DEADLINE:-450}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_run.log") 2>&1
TEE_PID=$!

elapsed() { echo $(( $(date +%s) - STARTED )); }
say() { echo "[gpu_run $(date +%H:%M:%S), +$(elapsed)s] $*"; }

# --- 0. the machine and the Python modules --------------------------------------------------------
describe_machine torch=required numpy=required "yaml=required (pyyaml)" safetensors=required \
    "tqdm=progress bars (runs here use --no-progress)" "matplotlib=plots (runs here use --no-plots)" \
    jsonschema=tests "pytest=step (c)" "hypothesis=some test modules" "onnx=some gpu tests" \
    "onnxruntime=some gpu tests"
install_wheels "/tmp/nielsen-site-packages-$STARTED" || exit 1

# --- the plan ---------------------------------------------------------------------------------------
find_mnist
if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu; SCALE=0.02; DEADLINE=300; B_EPOCHS=1
    DATA_ARGS=(--limit-train 2000 --limit-test 1000)
    [ -n "$DATA" ] || { DATA_ARGS=(--sample); }
else
    DEVICE=cuda; B_EPOCHS=2
    DATA_ARGS=()
    if [ -z "$DATA" ]; then
        say "no MNIST: set SPECC_MNIST_DIR to the directory of its IDX files (or copy them to $HERE/mnist)"
        exit 1
    fi
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
        || { say "PyTorch sees no CUDA GPU here: nothing to run on CUDA"; exit 1; }
fi
[ -n "$DATA" ] && DATA_ARGS+=(--data "$DATA")
if [ "$(nproc)" -ge 16 ]; then
    A_PIN=(--cores 0-7); B_PIN=(--cores 14,15); C_TASKSET=()
    command -v taskset >/dev/null && C_TASKSET=(taskset -c 8-13)
else  # a smaller machine (the dry run): no pinning beyond what run.py does with the cores there are
    A_PIN=(); B_PIN=(); C_TASKSET=()
fi
A_PARALLEL=8; [ "$DRY_RUN" = 1 ] && A_PARALLEL=2

# --- (a) the table on the GPU, (b) 2-core CPU timing, at once ------------------------------------------
say "(a) rows 1-7 and mnist_best on $DEVICE, $A_PARALLEL at once, epochs x$SCALE, stopped after ${DEADLINE}s"
"$PYTHON" "$HERE/run.py" --device "$DEVICE" --parallel "$A_PARALLEL" --threads-per-run 1 ${A_PIN[@]+"${A_PIN[@]}"} \
    --epochs-scale "$SCALE" --unscaled mnist_best --deadline "$DEADLINE" ${DATA_ARGS[@]+"${DATA_ARGS[@]}"} \
    --out "$OUT/table" --runs "$RUNS/table" > >(sed -u 's/^/(a) /') 2>&1 &
A_PID=$!

say "(b) mnist_best on the CPU, 2 threads, $B_EPOCHS epochs"
"$PYTHON" "$HERE/run.py" specs/mnist_best.yaml --device cpu --parallel 1 --threads-per-run 2 ${B_PIN[@]+"${B_PIN[@]}"} \
    --epochs "$B_EPOCHS" --timing --deadline "$DEADLINE" ${DATA_ARGS[@]+"${DATA_ARGS[@]}"} \
    --out "$OUT/cpu-2-cores" --runs "$RUNS/cpu-2-cores" 2>&1 | sed -u 's/^/(b) /'

# --- (c) the GPU tests, with the time that is left ------------------------------------------------------
LEFT=$(( DEADLINE + 60 - $(elapsed) ))
if [ "$LEFT" -ge 60 ]; then
    say "(c) python -m pytest -q -m gpu (at most ${LEFT}s)"
    env -u SPECC_DEBUG timeout "$LEFT" ${C_TASKSET[@]+"${C_TASKSET[@]}"} "$PYTHON" -m pytest -q -m gpu \
        -p no:cacheprovider --continue-on-collection-errors 2>&1 | tail -40 | sed -u 's/^/(c) /'
    C_CODE=${PIPESTATUS[0]}
    say "(c) pytest ended with $C_CODE (5: no test selected, 124: out of time)"
else
    say "(c) skipped: ${LEFT}s left"
fi

wait "$A_PID"
A_CODE=$?
say "(a) ended with $A_CODE"

# --- the tables -------------------------------------------------------------------------------------------
cp "$ROOT/docs/nielsen.md" "$OUT/nielsen.md" 2>/dev/null || true
RESULTS=()  # the results already in the repository, then this session's
for f in "$HERE"/results/*/results.json "$OUT/table/results.json" "$OUT/cpu-2-cores/results.json"; do
    [ -f "$f" ] && RESULTS+=("$f")
done
if [ "${#RESULTS[@]}" -gt 0 ]; then
    "$PYTHON" "$HERE/report.py" "${RESULTS[@]}" --doc "$OUT/nielsen.md"
fi
say "done in $(elapsed)s; $OUT/nielsen.md has the tables (copy it to docs/nielsen.md, and $OUT/table and"
say "$OUT/cpu-2-cores to benchmarks/nielsen/results/, results.json and all)"
exec >&- 2>&-
wait "$TEE_PID"  # every line is in $OUT/gpu_run.log before the script ends
