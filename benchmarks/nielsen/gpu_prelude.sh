# The first steps of gpu_run.sh and gpu_search.sh, sourced by both (not run on its own).
#
# A GPU session of those scripts has no network and no package index, and a failure cannot be looked at
# afterwards, so each step says what it found and is bounded in time:
#   find_python          sets PYTHON (when unset) to the first of python3, python that imports torch
#   describe_machine M.. prints the GPU, the CPU, the Python and which of the modules M.. are missing
#                        (each "module=why": why the script wants it)
#   install_wheels SITE  installs the missing modules from benchmarks/nielsen/wheels/ (wheelhouse.py) into
#                        SITE, puts the repository and SITE on PYTHONPATH, sets SPECC_DEBUG=1 (a run that
#                        fails leaves its traceback in its log), and fails when specc cannot train
#   find_mnist           sets DATA to the MNIST IDX directory: $SPECC_MNIST_DIR, else the copy carried
#                        beside these scripts (benchmarks/nielsen/mnist); empty when there is none
# They use HERE (benchmarks/nielsen), ROOT (the repository) and the caller's `say`.

find_python() {
    [ -n "${PYTHON:-}" ] && return 0
    local candidate
    for candidate in python3 python; do
        if "$candidate" -c "import torch" 2>/dev/null; then PYTHON=$candidate; return 0; fi
    done
    PYTHON=python3
}

describe_machine() {
    say "repository $ROOT, results in $OUT, run directories in $RUNS"
    command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) logical CPUs"
    timeout 60 "$PYTHON" - "$@" <<'EOF'
import importlib.util, sys
print("python", sys.version.split()[0], sys.executable)
need = dict(item.split("=", 1) for item in sys.argv[1:])
missing = [name for name in need if importlib.util.find_spec(name) is None]
for name in missing:
    print(f"missing: {name} - {need[name]}")
if not missing:
    print("every module is here")
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
except Exception as exc:
    print("torch cannot be imported:", exc)
EOF
}

install_wheels() {
    local site=$1
    timeout 90 "$PYTHON" "$HERE/wheelhouse.py" install --target "$site" --wheels "$HERE/wheels" \
        || say "some modules could not be installed from $HERE/wheels (see above); going on with what is here"
    export PYTHONPATH="$ROOT:$site${PYTHONPATH:+:$PYTHONPATH}"
    export SPECC_DEBUG=1
    timeout 60 "$PYTHON" -c "import yaml, safetensors, numpy, torch" \
        || { say "specc cannot train without those: stopping"; return 1; }
}

find_mnist() {
    DATA="${SPECC_MNIST_DIR:-}"
    [ -z "$DATA" ] && [ -d "$HERE/mnist" ] && DATA="$HERE/mnist"
    [ -n "$DATA" ] && DATA="$(cd "$DATA" && pwd)"
    return 0
}
