#!/usr/bin/env bash
# A recipe search around specs/mnist_best.yaml on one GPU machine, in about 7 minutes.
#
#   OUT=/path/to/results bash benchmarks/nielsen/gpu_search.sh
#   bash benchmarks/nielsen/gpu_search.sh --dry-run     # the same steps on this machine's CPU, tiny
#   OUT=... VARIANTS='r2_*' ENSEMBLES='r2_b64e12 r2_b64e12lr5' bash benchmarks/nielsen/gpu_search.sh
#
# Written for one NVIDIA GPU with 16 CPU cores, PyTorch with CUDA and no network or package index. It
#   0. prints the machine and which Python modules are missing; installs those from
#      benchmarks/nielsen/wheels/ into a directory under /tmp, on PYTHONPATH (gpu_prelude.sh);
#   1. trains the chosen specs of benchmarks/nielsen/variants/ (mnist_best with one change and a seed each,
#      `<round>_<variant>_s<seed>.yaml`; $VARIANTS, default `best_*`, the first round) with run.py on CUDA,
#      16 at once sharing the GPU, each pinned to its own CPU core, the most training steps (epochs x
#      mini-batches) first; every run still training $DEADLINE seconds after the start (default 330, less
#      when the step before took long) is stopped there, its kept epoch among those done reported as such;
#   2. for each group of $ENSEMBLES (default `best_base`): combines the kept weights of the runs
#      `<group>_s0` ... `<group>_s4` that have weights into one ensemble weights file (combine_members.py:
#      member i = seed i, the layout of specc/train/ensemble.py) and evaluates it on the test split with
#      `specc eval` and a spec that extends `<group>_s0.yaml` by `training.ensemble: {members: N, combine: mean}`;
#   3. writes $OUT/search.json (every run's figures and per-epoch accuracies, the per-variant means and the
#      ensembles' results; see search_bundle.py), $OUT/search-table.md and $OUT/search-records.tar.gz (each
#      run's JSON records and log, no weights). Everything it prints also goes to $OUT/gpu_search.log.
# Each step is time-bounded: the whole search ends within $BUDGET seconds (default 460) of its start. The
# deadline of step 1 leaves room for the worst case after it: $STOP_RESERVE seconds (default 45) for run.py
# to stop its runs, $ENS_TIMEOUT (default 60) per ensemble and 25 for the bundle; steps 2 and 3 are also cut
# to what is left of $BUDGET when step 1 took its whole reserve.
# The weights and run directories stay in $RUNS (default /tmp/search-runs-<time>), outside $OUT.
#
# Settings (environment): OUT, VARIANTS (space-separated name patterns of variants/, without .yaml, e.g.
# 'r2_*' or 'r2_b64e12_s0 r2_lr5_s2'), ENSEMBLES (space-separated groups, a group's members being the chosen
# runs `<group>_s<seed>`, seeds 0-4; '' for none), SPECC_MNIST_DIR (the MNIST IDX files; default
# benchmarks/nielsen/mnist when that exists), DEADLINE, BUDGET, STOP_RESERVE, ENS_TIMEOUT, PARALLEL, PYTHON,
# RUNS. With --dry-run and no VARIANTS, the runs are the base runs and best_ema_s0; with VARIANTS, those.

set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT" || exit 1
STARTED=$(date +%s)

DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
OUT="${OUT:-$ROOT/search-out}"
RUNS="${RUNS:-/tmp/search-runs-$STARTED}"
WORK="/tmp/search-work-$STARTED"   # run.py's results, logs and records: bundled into $OUT at the end
. "$HERE/gpu_prelude.sh"
find_python
DEADLINE="${DEADLINE:-330}"
BUDGET="${BUDGET:-460}"
STOP_RESERVE="${STOP_RESERVE:-45}"
ENS_TIMEOUT="${ENS_TIMEOUT:-60}"
VARIANTS_SET="${VARIANTS+set}"
VARIANTS="${VARIANTS:-best_*}"
ENSEMBLES="${ENSEMBLES-best_base}"
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/gpu_search.log") 2>&1
TEE_PID=$!

elapsed() { echo $(( $(date +%s) - STARTED )); }
say() { echo "[gpu_search $(date +%H:%M:%S), +$(elapsed)s] $*"; }

# --- 0. the machine and the Python modules --------------------------------------------------------
describe_machine torch=required numpy=required "yaml=required (pyyaml)" safetensors=required
install_wheels "/tmp/search-site-packages-$STARTED" || exit 1

# --- the plan ---------------------------------------------------------------------------------------
find_mnist
[ -n "$DATA" ] || { say "no MNIST: set SPECC_MNIST_DIR to the directory of its IDX files"; exit 1; }

# The chosen variants ($VARIANTS: patterns, not expanded against the current directory)
read -r -a PATTERNS <<< "$VARIANTS"
read -r -a GROUPS_ <<< "$ENSEMBLES"
SPECS=()
for pattern in ${PATTERNS[@]+"${PATTERNS[@]}"}; do
    for spec in "$HERE"/variants/$pattern.yaml; do
        [ -f "$spec" ] || continue
        case " ${SPECS[*]-} " in *" $spec "*) ;; *) SPECS+=("$spec") ;; esac
    done
done
[ "${#SPECS[@]}" -gt 0 ] || { say "no variant in $HERE/variants matches VARIANTS='$VARIANTS'"; exit 1; }
EVAL_DATA="$DATA"
if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu; PARALLEL="${PARALLEL:-2}"; DEADLINE=300
    RUN_ARGS=(--epochs 1 --limit-train 2000 --limit-test 1000)
    if [ -z "$VARIANTS_SET" ]; then
        KEEP=()  # the base runs (the ensemble) and one other variant
        for spec in "${SPECS[@]}"; do
            case "$(basename "$spec")" in *_base_*|best_ema_s0.yaml) KEEP+=("$spec") ;; esac
        done
        SPECS=("${KEEP[@]}")
    fi
    # the ensembles are evaluated on the same small data (run.py writes it to $WORK/data/mnist-first-2000)
    EVAL_DATA="$WORK/data/mnist-first-2000"
else
    DEVICE=cuda; PARALLEL="${PARALLEL:-16}"
    RUN_ARGS=()
    timeout 60 "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
        || { say "PyTorch sees no CUDA GPU here: nothing to run on CUDA"; exit 1; }
fi
# The most training steps first, so that a run left over for a later slot is a short one; among equals the
# runs the ensembles need, then the order of VARIANTS and of the file names.
mapfile -t SPECS < <(timeout 30 "$PYTHON" - "$ENSEMBLES" "${SPECS[@]}" <<'EOF' || printf '%s\n' "${SPECS[@]}"
import os, re, sys
import yaml
def training(path, depth=0):  # `training` with the `extends` chain merged (shallow: epochs and batch_size)
    with open(path) as handle:
        tree = yaml.safe_load(handle) or {}
    base = training(os.path.join(os.path.dirname(path), tree["extends"]), depth + 1) \
        if tree.get("extends") and depth < 16 else {}
    return {**base, **(tree.get("training") or {})}
def steps(path):
    try:
        t = training(path)
        return int(t.get("epochs") or 1) * -(-55000 // int(t.get("batch_size") or 128))
    except Exception:
        return 0
groups = sys.argv[1].split()
def in_group(path):
    return any(re.fullmatch(re.escape(g) + r"_s\d+", os.path.basename(path)[:-5]) for g in groups)
print("\n".join(sorted(sys.argv[2:], key=lambda p: (-steps(p), not in_group(p)))))
EOF
)
PIN=()
[ "$(nproc)" -ge "$PARALLEL" ] && [ "$DRY_RUN" = 0 ] && PIN=(--cores "0-$((PARALLEL - 1))")

# The time bound: run.py needs ~8 s before its runs start and up to 30 s to stop them at the deadline
# (bounded at DEADLINE + STOP_RESERVE - 5 s, then killed 5 s later); after it, at most ENS_TIMEOUT s per
# ensemble and 25 s for the bundle and the records.
LEFT=$(( BUDGET - $(elapsed) - STOP_RESERVE - ${#GROUPS_[@]} * ENS_TIMEOUT - 25 ))
[ "$LEFT" -lt "$DEADLINE" ] && DEADLINE=$LEFT
[ "$DEADLINE" -ge 60 ] || { say "only ${DEADLINE}s left for training: stopping"; exit 1; }

# --- 1. the runs ------------------------------------------------------------------------------------
say "1. ${#SPECS[@]} runs on $DEVICE, $PARALLEL at once, stopped after ${DEADLINE}s; ensembles: ${ENSEMBLES:-none}"
printf '   %s\n' "${SPECS[@]##*/}"
timeout -s INT -k 5 $(( DEADLINE + STOP_RESERVE - 5 )) "$PYTHON" "$HERE/run.py" "${SPECS[@]}" --device "$DEVICE" \
    --parallel "$PARALLEL" --threads-per-run 1 ${PIN[@]+"${PIN[@]}"} --deadline "$DEADLINE" --data "$DATA" \
    ${RUN_ARGS[@]+"${RUN_ARGS[@]}"} --out "$WORK" --runs "$RUNS" --note "recipe search" 2>&1 \
    | grep -v '^|' | sed -u 's/^/(1) /'  # run.py's Nielsen table has nothing to say about these runs
say "1. run.py ended with ${PIPESTATUS[0]} (124: stopped by the time bound)"

# --- 2. the ensembles -----------------------------------------------------------------------------
# Each group: the chosen runs <group>_s0 ... <group>_s4 that have weights, member i = the i-th of them.
BUNDLE_ENSEMBLES=()
for group in ${GROUPS_[@]+"${GROUPS_[@]}"}; do
    MEMBERS=(); FIRST_SPEC=""
    for seed in 0 1 2 3 4; do
        spec="$HERE/variants/${group}_s$seed.yaml"
        case " ${SPECS[*]} " in *" $spec "*) ;; *) continue ;; esac
        if [ -f "$RUNS/${group}_s$seed/model.safetensors" ]; then
            MEMBERS+=("$RUNS/${group}_s$seed"); FIRST_SPEC="${FIRST_SPEC:-$spec}"
        else
            say "2. ${group}_s$seed has no weights"
        fi
    done
    if [ "${#MEMBERS[@]}" -lt 2 ]; then say "2. no ensemble $group: fewer than two of its runs have weights"; continue; fi
    LIMIT=$(( BUDGET - $(elapsed) - 20 ))  # what is left, less the bundle's share
    [ "$LIMIT" -gt "$ENS_TIMEOUT" ] && LIMIT=$ENS_TIMEOUT
    [ "$LIMIT" -ge 5 ] || { say "2. no time left for the ensemble $group"; continue; }
    ENSEMBLE_FILE="$RUNS/${group}_ensemble.safetensors"
    ENSEMBLE_SPEC="$WORK/${group}_ensemble.yaml"
    COMBINED="$WORK/combined-$group.json"; REPORT="$WORK/ensemble_eval-$group.json"
    {   # the members' spec as an ensemble of the members there are
        printf 'specc: 1\nextends: %s\nname: %s_ensemble\ntraining:\n  ensemble: {members: %d, combine: mean}\n' \
            "$FIRST_SPEC" "$group" "${#MEMBERS[@]}"
        [ "$DRY_RUN" = 1 ] && printf '  data: {dataset: idx, path: %s, validation: 333}\n' "$EVAL_DATA"
    } > "$ENSEMBLE_SPEC"
    say "2. the ensemble $group of ${#MEMBERS[@]} runs: combine, then specc eval on $DEVICE (at most ${LIMIT}s)"
    timeout "$LIMIT" bash -c '
        "$0" "$1/combine_members.py" "${@:8}" -o "$2" --combine mean --name "${7}_ensemble" > "$5/combined-$7.json" || exit 1
        "$0" -m specc eval "$3" --weights "$2" --data "$4" --format json --device "$6" > "$5/ensemble_eval-$7.json"
    ' "$PYTHON" "$HERE" "$ENSEMBLE_FILE" "$ENSEMBLE_SPEC" "$EVAL_DATA" "$WORK" "$DEVICE" "$group" "${MEMBERS[@]}"
    say "2. ended with $? (124: out of time)"
    cat "$COMBINED" 2>/dev/null
    "$PYTHON" -c "import json,sys; r=json.load(open(sys.argv[1])); print('ensemble', sys.argv[2] + ':', r['members'],
        'members,', r['examples'], 'test images, accuracy', r['metrics']['accuracy'])" "$REPORT" "$group" 2>/dev/null \
        || { say "2. no result for the ensemble $group; specc eval printed:"; head -c 2000 "$REPORT" 2>/dev/null; }
    BUNDLE_ENSEMBLES+=(--ensemble-group "$group" "$COMBINED" "$REPORT")
done

# --- 3. the bundle ---------------------------------------------------------------------------------
say "3. the bundle"
timeout 15 "$PYTHON" "$HERE/search_bundle.py" "${SPECS[@]}" --runs "$RUNS" --results "$WORK/results.json" \
    --logs "$WORK/logs" ${BUNDLE_ENSEMBLES[@]+"${BUNDLE_ENSEMBLES[@]}"} \
    --info "device=$DEVICE" --info "parallel=$PARALLEL" --info "deadline_seconds=$DEADLINE" \
    --info "dry_run=$DRY_RUN" --info "run_args=${RUN_ARGS[*]-}" --info "search_seconds=$(elapsed)" \
    -o "$OUT/search.json" --table "$OUT/search-table.md" || say "3. the bundle failed (see above)"
RECORDS=()
for item in results.json logs; do [ -e "$WORK/$item" ] && RECORDS+=("$item"); done
for group in ${GROUPS_[@]+"${GROUPS_[@]}"}; do
    for item in "combined-$group.json" "ensemble_eval-$group.json" "${group}_ensemble.yaml"; do
        [ -e "$WORK/$item" ] && RECORDS+=("$item")
    done
done
for spec in "${SPECS[@]}"; do
    name="$(basename "$spec" .yaml)"; [ -d "$WORK/$name" ] && RECORDS+=("$name")
done
[ "${#RECORDS[@]}" -gt 0 ] && timeout 10 tar -czf "$OUT/search-records.tar.gz" -C "$WORK" "${RECORDS[@]}"
say "done in $(elapsed)s: $OUT/search.json, $OUT/search-table.md, $OUT/search-records.tar.gz, $OUT/gpu_search.log"
exec >&- 2>&-
wait "$TEE_PID"  # every line is in $OUT/gpu_search.log before the script ends
