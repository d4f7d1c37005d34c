#!/usr/bin/env bash
# Train the shipped 4x face super-resolution models (CPU, 1 thread each, wall-time capped):
#   celeba-sr4-affgan  AffGAN on unpaired halves of CelebA ids 1..8000 (y from 1..4000,
#                      discriminator images from 4001..8000)
#   celeba-sr4-mse     the same network trained with MSE on pairs from ids 1..8000 (AffMSE)
# Ids 8001..9000 are held out for scripts/compare_sr.py.
#
# Usage: scripts/train_affgan.sh [gan|mse|both]   (default both, run concurrently)
# Env:   DATA (default ../shared/data/celeba), RUNS (default /work/runs), GAN_MINUTES, MSE_MINUTES
# Resume an interrupted run by re-running with RESUME=1.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/celeba}
RUNS=${RUNS:-/work/runs}
WHAT=${1:-both}
RESUME_FLAG=()
if [[ "${RESUME:-0}" == 1 ]]; then RESUME_FLAG=(--resume); fi
mkdir -p "$RUNS"

train_gan() {
  python -m genprior train affgan --loss gan --data "$DATA" --train-range 1:8000 --img-size 64 \
    --out "$RUNS/celeba-sr4-affgan" --width 48 --n-blocks 5 --noise-channels 8 --d-width 32 \
    --batch-size 32 --lr 2e-4 --instance-noise 0.1 --anneal-steps 2500 --ema-decay 0.999 \
    --max-steps 6000 --max-minutes "${GAN_MINUTES:-60}" --ckpt-every 200 --sample-every 200 \
    --seed 0 --threads 1 --device cpu "${RESUME_FLAG[@]}"
  mkdir -p pretrained/celeba-sr4-affgan
  cp "$RUNS/celeba-sr4-affgan/final/config.json" "$RUNS/celeba-sr4-affgan/final/model.safetensors" \
    pretrained/celeba-sr4-affgan/
}

train_mse() {
  python -m genprior train affgan --loss mse --data "$DATA" --train-range 1:8000 --img-size 64 \
    --out "$RUNS/celeba-sr4-mse" --width 48 --n-blocks 5 --noise-channels 8 \
    --batch-size 32 --lr 5e-4 --ema-decay 0.999 \
    --max-steps 6000 --max-minutes "${MSE_MINUTES:-25}" --ckpt-every 200 --sample-every 200 \
    --seed 0 --threads 1 --device cpu "${RESUME_FLAG[@]}"
  mkdir -p pretrained/celeba-sr4-mse
  cp "$RUNS/celeba-sr4-mse/final/config.json" "$RUNS/celeba-sr4-mse/final/model.safetensors" \
    pretrained/celeba-sr4-mse/
}

case "$WHAT" in
  gan) train_gan > "$RUNS/celeba-sr4-affgan.log" 2>&1 ;;
  mse) train_mse > "$RUNS/celeba-sr4-mse.log" 2>&1 ;;
  both)
    train_gan > "$RUNS/celeba-sr4-affgan.log" 2>&1 &
    train_mse > "$RUNS/celeba-sr4-mse.log" 2>&1 &
    wait ;;
  *) echo "usage: $0 [gan|mse|both]" >&2; exit 2 ;;
esac
