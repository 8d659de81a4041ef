#!/bin/sh
# The next retraining of the toy generator's latent side, on one GPU (s2i/train/denoiser.py;
# docs/results.md, eighth round): an autoencoder whose reconstructions keep more of the shapes
# than the shipped one (the same 8x8 latents, 6,000 steps instead of 1,500: the drawing costs
# the same), then a denoiser on its latents twice, side by side, as many thousands of steps as fit
# in SECONDS each: on the stage's 16,000 stills and on 3 times as many (a long run sees the
# 16,000 hundreds of times and starts to fit them), both with the x0 loss weighing every timestep
# alike (--snr-floor 5; docs/results.md, ninth round). Every run judged on the tuning stills.
#   python -m s2i.train.denoiser export build/stills48k.npz --n-stills 48000   # first, with PyAV
#   sh scripts/gpu_latents.sh build/stills48k.npz build/latents 420
#   python -m s2i.train.denoiser install build/latents/<best run>               # with its autoencoder
STILLS=${1:-build/stills48k.npz}
RUNS=${2:-build/latents}
SECONDS_EACH=${3:-420}
PY=${PYTHON:-python3}
mkdir -p "$RUNS"
$PY -m s2i.train.denoiser autoencoder "$STILLS" "$RUNS/ae8" --steps 6000 >"$RUNS/ae8.log" 2>&1
RECIPE="--autoencoder $RUNS/ae8 --batch 2048 --lr 1.4e-3 --ema-decay 0.9995 --snr-floor 5 --bf16 auto --seconds $SECONDS_EACH"
$PY -m s2i.train.denoiser train "$STILLS" "$RUNS/s16k" --n-stills 16000 $RECIPE >"$RUNS/s16k.log" 2>&1 &
$PY -m s2i.train.denoiser train "$STILLS" "$RUNS/s48k" $RECIPE >"$RUNS/s48k.log" 2>&1 &
wait
tail -n 2 "$RUNS"/*.log
