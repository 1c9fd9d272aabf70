#!/usr/bin/env bash
# Retrain the three default models on a GPU machine, longer and wider, in pieces that resume
# from the latest checkpoint (issue 11). Run it again in the next GPU session with the same WORK
# folder and it continues where the last one stopped.
#
#   scripts/retrain_gpu.sh [liver|lung-nodule|brain-tumor ...]   (default: all three, in turn)
#
# Environment:
#   DATA     public data (default ../shared/data)
#   WORK     where runs and checkpoints live (default ./gpu-runs); copy it back and forth
#            between GPU sessions: it is the only state
#   HOURS    wall-clock budget of THIS session for all models together (default 1); each model
#            gets an equal share, and a run that reaches its share is stopped (it loses at most
#            the epoch in progress: `unetpp train` checkpoints after every epoch, atomically)
#   DEVICE   default cuda; UNETPP default .venv/bin/unetpp; PYTHON default .venv/bin/python
#   DRY_RUN  1 prints the commands instead of running them
#
# Every run asks for the FINAL epoch count (EPOCHS_<task>) from the start, so the poly learning
# rate schedule is the same whether the run took one session or ten; `--resume` continues
# bit-exact from the last completed epoch (the trainer refuses a resume with other settings).
# When `unetpp train --help` offers `--time-budget` (the training-plan issue), the session share
# is passed to it as well, so the trainer stops at an epoch boundary by itself.
#
# What this script does NOT do yet: the stronger augmentations issue 11 asks for (elastic
# deformation, gamma, simulated low resolution) are not in training/augment.py; the trainer
# uses flips, rotation, scaling, intensity shift and noise. Add them there before spending
# long GPU runs. Mirroring: the trainer flips all three axes with p = 0.5 each.
#
# Afterwards, on the CPU: validate and measure the package as a user runs it, e.g.
#   python scripts/evaluate_review.py liver --package "$WORK/liver" --json liver.json
# then copy model.json, weights.safetensors, train.log, history.json and training_curve.png into
# UNetPlusPlus/UNetPlusPlusLib/Resources/Models/<task>/ as scripts/train_default_models.sh `ship` does, and regenerate the
# cards (scripts/write_model_cards.py).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${DATA:-$ROOT/../shared/data}"
DATASETS="$ROOT/UNetPlusPlus/UNetPlusPlusLib/Resources/Datasets"
WORK="${WORK:-$ROOT/gpu-runs}"
UNETPP="${UNETPP:-$ROOT/.venv/bin/unetpp}"
DEVICE="${DEVICE:-cuda}"
HOURS="${HOURS:-1}"
DRY_RUN="${DRY_RUN:-0}"
mkdir -p "$WORK"

# Final lengths (epochs x iterations); a few hours per model on one recent GPU is the aim.
EPOCHS_liver="${EPOCHS_liver:-300}"
EPOCHS_brain_tumor="${EPOCHS_brain_tumor:-300}"
EPOCHS_lung_nodule="${EPOCHS_lung_nodule:-200}"

# Wider than the CPU-trained models (features 8..128); check CPU inference speed with
# bench/run before shipping a wider model (`make demo` must stay within seconds).
WIDE=(--features 16 32 64 128 256 16)

if "$UNETPP" train --help 2>/dev/null | grep -q -- "--time-budget"; then
    HAS_TIME_BUDGET=1
else
    HAS_TIME_BUDGET=0
fi

if "$UNETPP" train --help 2>/dev/null | grep -q -- "--overwrite"; then
    HAS_OVERWRITE=1
else
    HAS_OVERWRITE=0
fi

run_piece() {  # run_piece <task> <seconds> <unetpp train arguments...>
    local task="$1" seconds="$2"
    shift 2
    local out="$WORK/$task" resume=()
    # continue a piece that left a checkpoint; otherwise start afresh (an earlier plan.json of
    # a run stopped before its first epoch is replaced: unetpp train refuses it without a flag)
    if [[ -d "$out/checkpoint" ]]; then
        resume=(--resume)
    elif [[ "$HAS_OVERWRITE" == 1 ]]; then
        resume=(--overwrite)
    fi
    local budget=()
    [[ "$HAS_TIME_BUDGET" == 1 ]] && budget=(--time-budget "$seconds")
    local command=("$UNETPP" train "$@" -o "$out" --device "$DEVICE" --no-progress
        "${budget[@]}" "${resume[@]}")
    echo "[$task] $(date -u +%H:%M:%S) up to ${seconds} s: ${command[*]}"
    if [[ "$DRY_RUN" == 1 ]]; then
        return 0
    fi
    # `timeout` ends a piece that would outlast the session; status 124 is that stop, not a
    # failure: the last completed epoch is in $out/checkpoint.
    local status=0
    timeout --signal=TERM --kill-after=60 "$seconds" "${command[@]}" || status=$?
    if [[ "$status" == 124 || "$status" == 137 ]]; then
        echo "[$task] stopped at the session budget; run the script again to continue"
    elif [[ "$status" != 0 ]]; then
        echo "[$task] unetpp train failed with status $status" >&2
        return "$status"
    else
        echo "[$task] finished: package in $out (model.json, weights.safetensors)"
    fi
}

train_liver() {
    # 5 CTs: the three of liver.json plus two LiTS volumes (expert labels, tumour = liver).
    # Held out: the demo CT (TotalSegmentator label) and LiTS volume 1 (expert), by patient.
    # Several spacings and fields of view are in the data (0.7-3 mm, partial and whole torso);
    # scaling augmentation widens that. Foreground oversampled (0.5).
    run_piece liver "$1" "$DATA/liver" --dataset-json "$DATASETS"/liver-lits.json \
        --val-cases ts-example-ct,liver_1 --spacing 3 3 3 --tile 64 64 64 "${WIDE[@]}" \
        --epochs "$EPOCHS_liver" --iterations-per-epoch 250 --batch-size 4 --lr 1e-3 \
        --foreground-fraction 0.5 --val-every 25 --weights-dtype float16 \
        --name liver-ct --task liver
}

train_brain_tumor() {
    # 18 BraTS 2018 cases, the same 4 held out as the shipped model (14 for training now).
    run_piece brain-tumor "$1" "$DATA/brain-tumor/brats2018" \
        --dataset-json "$DATASETS"/brats2018.json \
        --val-cases Brats18_2013_11_1,Brats18_CBICA_ALU_1,Brats18_TCIA01_378_1,Brats18_TCIA02_606_1 \
        --spacing 2 2 2 --tile 64 64 64 "${WIDE[@]}" \
        --epochs "$EPOCHS_brain_tumor" --iterations-per-epoch 250 --batch-size 4 --lr 1e-3 \
        --foreground-fraction 0.5 --val-every 25 --weights-dtype float16 \
        --name brain-tumor-mr --task brain-tumor
}

train_lung_nodule() {
    # 814 LIDC crops split by patient (the dataset description's patient regex).
    run_piece lung-nodule "$1" "$DATA/lung-nodule/lidc-vois" \
        --dataset-json "$DATASETS"/lidc-vois.json \
        --spacing 0.7 0.7 1.25 --tile 48 48 16 "${WIDE[@]}" \
        --epochs "$EPOCHS_lung_nodule" --iterations-per-epoch 250 --batch-size 16 --lr 1e-3 \
        --foreground-fraction 0.5 --val-every 20 --weights-dtype float16 \
        --name lung-nodule-ct --task lung-nodule
}

tasks=("$@")
[[ ${#tasks[@]} == 0 ]] && tasks=(liver brain-tumor lung-nodule)
share=$(awk -v h="$HOURS" -v n="${#tasks[@]}" 'BEGIN { printf "%d", h * 3600 / n }')
for task in "${tasks[@]}"; do
    case "$task" in
        liver) train_liver "$share" ;;
        brain-tumor) train_brain_tumor "$share" ;;
        lung-nodule) train_lung_nodule "$share" ;;
        *) echo "unknown model '$task' (liver, lung-nodule, brain-tumor)" >&2; exit 2 ;;
    esac
done
