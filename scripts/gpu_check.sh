#!/usr/bin/env bash
# One prepared run of every check that needs a CUDA GPU, for sessions that are lent one.
#
# Usage (from the repository root, on the GPU machine; data under $DATA, results under $OUT):
#   DATA=../shared/data OUT=/tmp/gpu scripts/gpu_check.sh [quick|full]
#
# quick (default, about 8 minutes on one H200): the test suite on CUDA (tests/conftest.py adds
#   "cuda" to every device-parametrised test when CUDA is present), the CSGM benchmark, the latent
#   solvers' throughput at B = 1..1024 for every optimizer in fp32 and under bf16 autocast, the
#   range-constrained SR throughput (eager / torch.compile, fp32 / bf16), the sampling benchmark
#   on CUDA, a bf16 mixed-precision smoke training run.
# full: also retrains the shipped priors (scripts/train_priors.sh; training uses CUDA when present).
# Every step writes its log under $OUT; the script stops at the first failure.
set -euo pipefail
MODE="${1:-quick}"
DATA="${DATA:-../shared/data}"
OUT="${OUT:-/tmp/genprior-gpu}"
mkdir -p "$OUT"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'CUDA is not available')"
nvidia-smi > "$OUT/nvidia-smi.txt" || true

python -m pytest -q -x 2>&1 | tee "$OUT/pytest_cuda.txt"
python scripts/bench_csgm.py --device cuda --out "$OUT" --n-images 64 2>&1 | tee "$OUT/bench_csgm.log"
python scripts/bench_compile.py --device cuda 2>&1 | tee "$OUT/bench_compile.log"
SOLVERS=("adam 1000x10 (reference)" "lbfgs 100x10 halving/10" "gauss-newton 10x3")
for problem in mnist celeba; do
  python scripts/bench_solvers.py --problem "$problem" --device cuda --out "$OUT/fp32" \
    --throughput 1 16 64 256 1024 --only "${SOLVERS[@]}" 2>&1 | tee "$OUT/solvers_$problem.log"
  python scripts/bench_solvers.py --problem "$problem" --device cuda --out "$OUT/bf16" \
    --autocast bf16 --throughput 1 16 64 256 1024 --only "${SOLVERS[@]}" 2>&1 \
    | tee "$OUT/solvers_${problem}_bf16.log"
done
python scripts/bench_sr_throughput.py --device cuda --compile --out "$OUT" 2>&1 \
  | tee "$OUT/bench_sr_throughput.log"
python scripts/bench_sampling.py --device cuda --data "$DATA/mnist/mnist_test_00.npz" \
  2>&1 | tee "$OUT/bench_sampling.log"
genprior train vae --arch mlp --data "$DATA/mnist" --out "$OUT/amp-smoke" --overwrite --epochs 1 \
  --batch-size 100 --device cuda --precision bf16 --max-steps 200 2>&1 | tail -5 \
  | tee "$OUT/amp_smoke.log"
if [[ "$MODE" == "full" ]]; then
  for name in mnist-vae celeba-dcgan celeba-vae; do
    scripts/train_priors.sh "$name" "$DATA" "$OUT/runs" 2>&1 | tee "$OUT/train_$name.log"
  done
fi
echo "all GPU checks passed; logs in $OUT"
