#!/bin/sh
# Retrain the toy denoiser on one GPU (s2i/train/denoiser.py): three recipes side by side, as
# many thousands of steps as fit in SECONDS each; every run judged on the tuning stills.
#   python -m s2i.train.denoiser export build/stills.npz     # first, on a machine with PyAV
#   sh scripts/gpu_denoiser.sh build/stills.npz build/denoiser 240
#   python -m s2i.train.denoiser install build/denoiser/<best run>
STILLS=${1:-build/stills.npz}
RUNS=${2:-build/denoiser}
SECONDS_EACH=${3:-240}
PY=${PYTHON:-python3}
mkdir -p "$RUNS"
$PY -m s2i.train.denoiser train "$STILLS" "$RUNS/b512" --batch 512 --lr 7e-4 --ema-decay 0.999 --seconds "$SECONDS_EACH" >"$RUNS/b512.log" 2>&1 &
$PY -m s2i.train.denoiser train "$STILLS" "$RUNS/b1024" --batch 1024 --lr 1e-3 --ema-decay 0.999 --seconds "$SECONDS_EACH" >"$RUNS/b1024.log" 2>&1 &
$PY -m s2i.train.denoiser train "$STILLS" "$RUNS/b2048" --batch 2048 --lr 1.4e-3 --ema-decay 0.9995 --seconds "$SECONDS_EACH" >"$RUNS/b2048.log" 2>&1 &
wait
tail -n 3 "$RUNS"/*.log
