#!/usr/bin/env bash
# The CUDA path, proved on any machine with an NVIDIA GPU, in one command (issue 14):
#   1. the CUDA tests of the suite (those named *cuda*, which skip without a GPU);
#   2. a GPU tile benchmark: ours (autocast) at L1..L4 vs MONAI's BasicUNetPlusPlus, same
#      weights, plus TensorRT (torch_tensorrt) and OpenVINO's GPU plugin where installed;
#   3. the out-of-memory fallback under an artificial memory cap
#      (torch.cuda.set_per_process_memory_fraction): smaller tile batch, then the CPU, with
#      the labels of an uncapped CPU run.
# The last line is one summary: gpu_check: cuda_tests=... speedup_vs_monai_L4=... oom_fallback=...
#
# Usage: scripts/gpu_check.sh [--dry-run]
#   --dry-run: no GPU needed; runs steps 2 and 3 on the CPU with a tiny network to check the
#   plumbing, and prints the pytest command of step 1 instead of running it.
set -u
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/UNetPlusPlus${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1

json_field() {  # json_field FIELD < one JSON line
    "$PYTHON" -c 'import json,sys; v=json.loads(sys.stdin.read().strip().splitlines()[-1]).get(sys.argv[1]); print(f"{v:.2f}" if isinstance(v, float) else v)' "$1"
}

if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    TINY=--tiny
    echo "gpu_check: dry run on the CPU (tiny network); step 1 would run:"
    echo "  $PYTHON -m pytest -q Testing -k cuda"
    TESTS=skipped
else
    if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "gpu_check: no CUDA device visible to torch (nvidia-smi, a CUDA build of torch?)"
        echo "gpu_check: cuda_tests=not-run speedup_vs_monai_L4=n/a oom_fallback=not-run"
        exit 1
    fi
    DEVICE=cuda
    TINY=
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    echo "== 1. CUDA tests"
    if "$PYTHON" -m pytest -q Testing -k cuda; then TESTS=pass; else TESTS=FAIL; fi
fi

echo "== 2. GPU tile benchmark (ours vs MONAI; TensorRT / OpenVINO-GPU where installed)"
BENCH=$("$PYTHON" scripts/gpu_check.py bench --device "$DEVICE" $TINY) || BENCH='{"speedup_vs_monai_L4": "FAIL"}'
echo "$BENCH"
SPEEDUP=$(echo "$BENCH" | json_field speedup_vs_monai_L4)

echo "== 3. out-of-memory fallback under a memory cap"
OOM=$("$PYTHON" scripts/gpu_check.py oom --device "$DEVICE" $TINY) || OOM='{"ok": "FAIL"}'
echo "$OOM"
case "$(echo "$OOM" | json_field ok)" in
    True) FALLBACK=pass ;;
    *) FALLBACK=FAIL ;;
esac
[ "$DRY" = 1 ] && FALLBACK="$FALLBACK(uncapped-cpu)"

echo "gpu_check: device=$DEVICE cuda_tests=$TESTS speedup_vs_monai_L4=$SPEEDUP oom_fallback=$FALLBACK"
[ "$TESTS" != FAIL ] && [ "${FALLBACK%%(*}" = pass ] && [ "$SPEEDUP" != FAIL ]
