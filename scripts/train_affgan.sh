#!/usr/bin/env bash
# Train the shipped 4x face super-resolution models (CPU, 1 thread each, wall-time capped):
#   celeba-sr4-affgan  AffGAN on unpaired halves of CelebA ids 1..8000 (y from 1..4000,
#                      discriminator images from 4001..8000)
#   celeba-sr4-mse     the same network trained with MSE on pairs from ids 1..8000 (AffMSE)
# Ids 8001..9000 are held out for scripts/compare_sr.py.
#
# Issue #18's variants (not shipped unless their card says so; runs in $RUNS/sr/<name>, 2,000
# steps each, the shipped AffGAN's architecture, data split and instance noise):
#   base       the shipped AffGAN recipe alone for the same 2,000 steps (the variants' baseline)
#   div        the shipped AffGAN recipe + the diversity-sensitive term (weight 1, tau 0.02:
#              draws at least ~0.02 apart in per-pixel std)
#   reg        AffGAN with a regularised discriminator: hinge loss, spectral norm, lazy R1
#              (gamma 0.1 every 4 steps), DiffAugment translation+cutout
#   reg-div    reg + the diversity-sensitive term
#   denoiser   the Gaussian denoiser (sigma 0.1) of AffDG, on the discriminator's half (ids 4001..8000)
#   affdg      AffDG: the score of that denoiser instead of a discriminator (+ diversity, tau 0.05)
#   affll      AffLL: the ELBO of celeba-vae as log p(x) (+ diversity as reg-div)
#   long       the shipped AffGAN recipe trained longer: starts from a copy of base's 2,000-step
#              run (the shipped trajectory) and goes on to LONG_STEPS (default 10,000) steps;
#              resumes its own checkpoint when present
#   r1         the shipped recipe with lazy R1 on the discriminator (gamma R1_GAMMA, default
#              0.2, every 4 steps; non-saturating loss, no spectral norm): does a regularised
#              discriminator stay in balance over a long run? R1_STEPS steps (default 8,000)
#              from scratch, in $RUNS/sr/affgan-r1-g<R1_GAMMA>. (Gamma 2.5, Mescheder et al.
#              2018's 10 for images in [-1, 1], kept D at chance: D(real)/D(fake) 0.51/0.49 over
#              steps 1801..2000.) R1_NOISE sets the instance noise's initial std (default 0.1,
#              the shipped recipe's; R1_NOISE=0 turns it off) and suffixes the folder with -n<R1_NOISE>;
#              R1_WIDTH and R1_D_WIDTH set the generator's and discriminator's widths (default 48
#              and 32, the shipped network's) and suffix it with -w<R1_WIDTH>, -dw<R1_D_WIDTH>.
#   r1-div     r1 (gamma R1_GAMMA, default 0.2) + the diversity-sensitive term (weight DIV_WEIGHT,
#              default 1; tau DIV_TAU, default 0.035: the 2,000-step div run's EMA weights spread
#              0.0118 for a raw-generator ratio of 0.0175, so a 0.02 spread of the EMA weights asks
#              ~0.03 of the raw generator); DIV_STEPS steps (default 6,000) from scratch, in
#              $RUNS/sr/affgan-r1-g<R1_GAMMA>[-n<R1_NOISE>]-div<DIV_TAU> (+ -w<DIV_WEIGHT> unless it
#              is 1); R1_NOISE as for r1
#   r1-decay   r1 continued from its step-R1_DECAY_FROM copy (default 6,000; written by
#              scripts/snapshot_checkpoints.py $RUNS/sr/<r1's folder> --every 2000) with both
#              learning rates falling linearly to 0 at R1_DECAY_STEPS (default 8,000), in
#              $RUNS/sr/<r1's folder>-decay<R1_DECAY_FROM>; R1_GAMMA and R1_NOISE as for r1
#   ft-mse     AffGAN fine-tuned from the MSE twin: the generator starts from celeba-sr4-mse
#              (--init-from; so the run uses paired data through its start), a fresh
#              discriminator of width FT_D_WIDTH (default 48) trained alone for 200 steps
#              (--d-warmup), then R1 (gamma 0.2 every 4 steps) without instance noise, learning
#              rates 1e-4 (G) / 2e-4 (D), FT_STEPS steps in all (default 3,000), in
#              $RUNS/sr/affgan-ft-mse-dw<FT_D_WIDTH>
#   ft-w96-div celeba-sr4-affgan-w96 (unpaired) fine-tuned with the diversity term (weight
#              DIV_WEIGHT, default 2; tau DIV_TAU, default 0.05): a fresh width-64 discriminator
#              alone for 300 steps, then R1 as in r1 without instance noise, FT_STEPS steps in all
#              (default 2,500), in $RUNS/sr/affgan-ft-w96-div<DIV_TAU>-w<DIV_WEIGHT>
#   dcheck     200 steps each of the shipped recipe (diag/ns), with --spectral-norm (diag/sn) and
#              with --gan-loss hinge (diag/hinge): does the discriminator still separate real
#              from generated faces? (scripts/log_means.py on their log.csv)
#
# Usage: scripts/train_affgan.sh [gan|mse|both|base|div|reg|reg-div|denoiser|affdg|affll|long|r1|r1-decay|r1-div|ft-mse|ft-w96-div|dcheck]
#        (default both, run concurrently)
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

# the shipped AffGAN's network, data, split and instance noise; 2,000 steps
VARIANT=(--data "$DATA" --train-range 1:8000 --img-size 64 --width 48 --n-blocks 5
  --noise-channels 8 --d-width 32 --batch-size 32 --lr 2e-4 --instance-noise 0.1
  --anneal-steps 2500 --ema-decay 0.999 --max-steps 2000 --ckpt-every 200 --sample-every 200
  --seed 0 --threads 1 --device cpu)
REG=(--gan-loss hinge --spectral-norm --r1-gamma 0.1 --r1-every 4 --diffaugment translation,cutout)
DIV=(--diversity-weight 1 --diversity-tau 0.02)
# the R1 recipe of r1 and r1-div, and the start of their run folders' names
R1=(--r1-gamma "${R1_GAMMA:-0.2}" --r1-every 4 --instance-noise "${R1_NOISE:-0.1}"
  --width "${R1_WIDTH:-48}" --d-width "${R1_D_WIDTH:-32}")
R1_NAME="affgan-r1-g${R1_GAMMA:-0.2}${R1_NOISE:+-n$R1_NOISE}${R1_WIDTH:+-w$R1_WIDTH}${R1_D_WIDTH:+-dw$R1_D_WIDTH}"

variant() {  # NAME ARGS...: train $RUNS/sr/NAME (resumes when its checkpoint exists)
  local name=$1
  shift
  local resume=()
  if [[ -f "$RUNS/sr/$name/checkpoint.safetensors" ]]; then resume=(--resume); fi
  mkdir -p "$(dirname "$RUNS/sr/$name")"
  python -m genprior train "$@" --out "$RUNS/sr/$name" "${resume[@]}" > "$RUNS/sr/$name.log" 2>&1
}

case "$WHAT" in
  base) variant affgan-base affgan --loss gan "${VARIANT[@]}" ;;
  div) variant affgan-div affgan --loss gan "${VARIANT[@]}" "${DIV[@]}" ;;
  reg) variant affgan-reg affgan --loss gan "${VARIANT[@]}" "${REG[@]}" ;;
  reg-div) variant affgan-reg-div affgan --loss gan "${VARIANT[@]}" "${REG[@]}" "${DIV[@]}" ;;
  denoiser)
    variant denoiser denoiser --data "$DATA" --train-range 1:8000 --img-size 64 --sigma 0.1 \
      --width 16 --n-blocks 2 --batch-size 32 --lr 1e-3 --max-steps 1500 --ckpt-every 250 \
      --sample-every 250 --seed 0 --threads 1 --device cpu ;;
  affdg) variant affdg affgan --loss affdg --denoiser "$RUNS/sr/denoiser/final" "${VARIANT[@]}" "${DIV[@]}" --diversity-tau 0.05 ;;
  long)
    if [[ ! -f "$RUNS/sr/affgan-long/checkpoint.safetensors" ]]; then
      [[ -f "$RUNS/sr/affgan-base/checkpoint.safetensors" ]] || { echo "run base first" >&2; exit 2; }
      [[ ! -e "$RUNS/sr/affgan-long" ]] || { echo "$RUNS/sr/affgan-long exists without a checkpoint" >&2; exit 2; }
      cp -r "$RUNS/sr/affgan-base" "$RUNS/sr/affgan-long"
      rm -rf "$RUNS/sr/affgan-long/final"
    fi
    variant affgan-long affgan --loss gan "${VARIANT[@]}" --max-steps "${LONG_STEPS:-10000}" ;;
  r1) variant "$R1_NAME" affgan --loss gan "${VARIANT[@]}" "${R1[@]}" --max-steps "${R1_STEPS:-8000}" ;;
  r1-decay)
    FROM=${R1_DECAY_FROM:-6000}
    name="$R1_NAME-decay$FROM"
    start=()
    if [[ ! -f "$RUNS/sr/$name/checkpoint.safetensors" ]]; then
      start=(--resume "$RUNS/sr/$R1_NAME-snap/step_$FROM.safetensors")
    fi
    variant "$name" affgan --loss gan "${VARIANT[@]}" "${R1[@]}" \
      --max-steps "${R1_DECAY_STEPS:-8000}" --lr-decay-start "$FROM" "${start[@]}" ;;
  r1-div)
    W=${DIV_WEIGHT:-1}
    variant "$R1_NAME-div${DIV_TAU:-0.035}$([[ "$W" == 1 ]] || echo "-w$W")" affgan \
      --loss gan "${VARIANT[@]}" "${R1[@]}" \
      --diversity-weight "$W" --diversity-tau "${DIV_TAU:-0.035}" --max-steps "${DIV_STEPS:-6000}" ;;
  ft-mse)
    variant "affgan-ft-mse-dw${FT_D_WIDTH:-48}" affgan --loss gan "${VARIANT[@]}" \
      --init-from celeba-sr4-mse --d-width "${FT_D_WIDTH:-48}" --d-warmup 200 \
      --r1-gamma 0.2 --r1-every 4 --instance-noise 0 --lr 1e-4 --lr-d 2e-4 \
      --max-steps "${FT_STEPS:-3000}" ;;
  ft-w96-div)
    variant "affgan-ft-w96-div${DIV_TAU:-0.05}-w${DIV_WEIGHT:-2}" affgan --loss gan "${VARIANT[@]}" \
      --init-from celeba-sr4-affgan-w96 --width 96 --d-width 64 --d-warmup 300 \
      --r1-gamma 0.2 --r1-every 4 --instance-noise 0 \
      --diversity-weight "${DIV_WEIGHT:-2}" --diversity-tau "${DIV_TAU:-0.05}" \
      --max-steps "${FT_STEPS:-2500}" ;;
  dcheck)
    variant diag/ns affgan --loss gan "${VARIANT[@]}" --max-steps 200
    variant diag/sn affgan --loss gan "${VARIANT[@]}" --max-steps 200 --spectral-norm
    variant diag/hinge affgan --loss gan "${VARIANT[@]}" --max-steps 200 --gan-loss hinge ;;
  affll) variant affll affgan --loss affll --density celeba-vae "${VARIANT[@]}" "${DIV[@]}" ;;
  gan) train_gan > "$RUNS/celeba-sr4-affgan.log" 2>&1 ;;
  mse) train_mse > "$RUNS/celeba-sr4-mse.log" 2>&1 ;;
  both)
    train_gan > "$RUNS/celeba-sr4-affgan.log" 2>&1 &
    train_mse > "$RUNS/celeba-sr4-mse.log" 2>&1 &
    wait ;;
  *) echo "usage: $0 [gan|mse|both|base|div|reg|reg-div|denoiser|affdg|affll|long|r1|r1-decay|r1-div|ft-mse|ft-w96-div|dcheck]" >&2; exit 2 ;;
esac
