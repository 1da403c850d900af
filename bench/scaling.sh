#!/usr/bin/env bash
# Scaling of the Gloo group on this machine: k-means and linear learner trained with
# `mlforge launch -n R` for R = 1, 2, 4, the training time rank 0 reports, and the share of it
# spent inside collectives (the "Gloo: rank 0 ran N collective(s) over B MB in T s" line; waiting
# for slower ranks counts as collective time). Then, on paper, the collective time of the same
# job on 8 GPUs from the measured collective count and bytes with a latency/bandwidth model whose
# two parameters are ASSUMPTIONS (ALPHA_US per collective, BUSBW_GBS bus bandwidth), not figures
# measured here.
#   bench/scaling.sh [--mlforge PATH] [--rows N] [--out FILE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mlforge=$root/build/cli/mlforge
rows=200000
out=$root/bench/results/scaling_$(date +%F).txt
while [ $# -gt 0 ]; do
  case $1 in
    --mlforge) mlforge=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--mlforge PATH] [--rows N] [--out FILE]" >&2; exit 2 ;;
  esac
done
alpha_us=${ALPHA_US:-20}
busbw=${BUSBW_GBS:-400}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$mlforge" data synth blobs "$tmp/blobs.pbr" --rows "$rows" --cols 50 --k 10 --no-labels --no-truth >/dev/null 2>&1
"$mlforge" data synth linear "$tmp/lin.pbr" --rows "$rows" --cols 50 --task binary --no-truth >/dev/null 2>&1
{
  echo "# bench/scaling.sh $(date -Is)"
  echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "# data: $rows rows x 50 (k-means: blobs, k=10, 3 epochs, batch 5000; linear learner: binary, 32 models, 2 epochs, batch 1000)"
  echo "# all ranks share this machine's cores (launch gives each nproc/R threads)"
  printf "%-15s %5s %10s %12s %10s %9s %12s\n" algo ranks train_s collectives coll_MB coll_s coll_share
} >"$out"
run() {  # algo ranks args...
  local algo=$1 r=$2
  shift 2
  local log=$tmp/$algo.$r.log
  "$mlforge" launch -n "$r" -- train "$algo" --model-dir "$tmp/m.$algo.$r" "$@" >"$log" 2>&1 || {
    echo "FAILED: $algo on $r ranks" >>"$out"
    tail -5 "$log" >>"$out"
    return
  }
  local train_s n mb cs
  train_s=$(grep -h '\[rank 0\].*Training finished in' "$log" | sed -E 's/.*finished in ([0-9.]+) s.*/\1/')
  if [ "$r" -gt 1 ]; then
    read -r n mb cs < <(grep -h '\[rank 0\].*Gloo: rank 0 ran' "$log" |
      sed -E 's/.*ran ([0-9]+) collective\(s\) over ([0-9.]+) MB in ([0-9.]+) s.*/\1 \2 \3/')
  else
    n=0 mb=0 cs=0
  fi
  printf "%-15s %5d %10s %12s %10s %9s %11.1f%%\n" "$algo" "$r" "$train_s" "$n" "$mb" "$cs" \
    "$(python3 -c "print(100.0 * $cs / $train_s if $train_s > 0 else 0)")" >>"$out"
  if [ "$r" -eq 2 ]; then
    # mini_batch_size is per rank, so a pass has rows / (R x batch) steps: 8 ranks run about 2/8
    # of the 2-rank run's collectives, each of the same size (k x d or models x d sums); a ring
    # all-reduce moves 2 (R-1)/R of each over the bus.
    python3 - "$algo" "$n" "$mb" "$alpha_us" "$busbw" >>"$out" <<'EOF'
import sys
algo, n, mb, alpha_us, busbw = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
n8, mb8 = n * 2 / 8, mb * 2 / 8
t = n8 * alpha_us * 1e-6 + 2 * 7 / 8 * mb8 * 1e6 / (busbw * 1e9)
print(f"  on paper, 8 GPUs: ~{n8:.0f} collectives x {alpha_us:g} us + {mb8:.3f} MB at {busbw:g} GB/s bus bandwidth "
      f"= {t*1e3:.2f} ms of collectives for the whole job (alpha and bandwidth assumed, not measured)")
EOF
  fi
}
for r in 1 2 4; do
  run kmeans "$r" --train "$tmp/blobs.pbr" --hp feature_dim=50 --hp k=10 --hp epochs=3 --hp mini_batch_size=5000
done
for r in 1 2 4; do
  run linear-learner "$r" --train "$tmp/lin.pbr" --hp feature_dim=50 --hp predictor_type=binary_classifier \
    --hp epochs=2 --hp mini_batch_size=1000 --hp num_models=32 --hp early_stopping_patience=10
done
cat "$out"
