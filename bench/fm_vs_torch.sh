#!/usr/bin/env bash
# mlforge factorization-machines against a PyTorch FM (bench/fm_torch.py: nn.EmbeddingBag /
# sparse-gradient embeddings, SparseAdam + Adam, the same hyperparameters, initialisation and
# mini-batches) on the same recordIO files, at the same thread count: training examples/s.
#
#   bash bench/fm_vs_torch.sh [--threads 2] [--rows 200000] [--features 1000000] [--fields 39]
#        [--ml-rows 80000] [--epochs 2] [--ml-epochs 10] [--k "16 64"] [--device cpu|gpu|both]
#        [--repeats 1] [--log]
#        [--out FILE] [--workdir DIR]
#
# Data (`mlforge data synth fm`, seed 1, regression labels from a ground-truth FM):
#   criteo     --rows rows, --fields 39 one-hot fields over --features 1,000,000 columns with
#              Zipf-skewed ids (p = 39 non-zeros per row)
#   movielens  the MovieLens-100k shape: 943 users + 1682 items, 80,000 rows (p = 2); --ml-epochs
#              epochs (an epoch takes ~0.05 s, too short to time alone)
# Runs, for k in --k:
#   mlforge --threads T train factorization-machines --hp feature_dim=D num_factors=K
#     predictor_type=regressor epochs=E mini_batch_size=1000 --device cpu   (examples/s from its
#     `#throughput_metric: ... train throughput=X records/second` lines: rows x epochs over the
#     summed epoch times; the process's wall time is printed too)
#   python bench/fm_torch.py --threads T --device cpu (both formulations; the faster is the peer)
# GPU rows (--device gpu|both, only where a GPU is visible): mlforge --device gpu and torch cuda,
# with Adam (the default) and SGD (`_optimizer=sgd`, torch.optim.SGD on sparse gradients); each is
# reported against the gather-bandwidth bound of the H200's 4.8 TB/s HBM3e: SGD reads and writes
# w_i and v_i of every non-zero, 8 p (k + 1) bytes per example; Adam also its two moments, 24 p (k + 1).
# Torch comes from `bash scripts/pyenv.sh torch`, or from $MLFORGE_TORCH_PYTHON where a python with torch exists
# already; without either the torch rows say so. MLFORGE_BIN names another mlforge executable.
# --repeats N runs every case N times (alternating mlforge and torch) and the table keeps the best
# of each (the machine is shared: interference only ever slows a run down).
# --log writes everything to bench/results/fm_vs_torch_<date>.txt (or --out FILE).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
threads=2 rows=200000 features=1000000 fields=39 ml_rows=80000 epochs=2 ml_epochs=10 ks="16 64" device=cpu repeats=1
out="" work=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --features) features=$2; shift 2 ;;
    --fields) fields=$2; shift 2 ;;
    --ml-rows) ml_rows=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --ml-epochs) ml_epochs=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --k) ks=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --log) out="$root/bench/results/fm_vs_torch_$(date +%F).txt"; shift ;;
    --out) out=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case "$device" in cpu | gpu | both) ;; *) echo "--device is cpu, gpu or both" >&2; exit 2 ;; esac
build=${MLFORGE_BUILD_DIR:-$root/build}
ml=${MLFORGE_BIN:-$build/cli/mlforge}  # MLFORGE_BIN: another mlforge executable (a GPU bundle's)
[ -x "$ml" ] || bash "$root/scripts/build.sh" --target mlforge
if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/mlforge-fm-bench-XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  exec > >(tee "$out") 2>&1
fi

py=""
if [ -n "${MLFORGE_TORCH_PYTHON:-}" ]; then  # a python that already has torch (a GPU machine's)
  py=$MLFORGE_TORCH_PYTHON
elif py=$(bash "$root/scripts/pyenv.sh" torch 2>"$work/pyenv.err"); then :; else
  echo "# torch: not available ($(tail -1 "$work/pyenv.err")); the torch rows are skipped"
  py=""
fi
have_fm=1
"$ml" train --help 2>&1 | grep -q "factorization-machines" || have_fm=0
gpu=0
if [ "$device" != cpu ]; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    gpu=1
  else
    echo "# GPU rows skipped: no GPU visible here (nvidia-smi -L)"
  fi
fi

echo "# factorization machines: mlforge vs PyTorch, $(date -u +%FT%TZ)"
echo "# machine: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
src=${src:-$root}
echo "# mlforge: $ml, built from $src at $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "(no git)")$(git -C "$src" diff --quiet HEAD -- \
  algos kernels io core cli 2>/dev/null || echo ' + uncommitted changes') ($("$ml" info | sed -n 2p | sed 's/^build: *//'))"
[ -n "$py" ] && echo "# $("$py" -c 'import torch, numpy; print(f"torch {torch.__version__} (CUDA build {torch.version.cuda}), numpy {numpy.__version__}")')"
echo "# threads $threads; epochs $epochs (movielens $ml_epochs); best of $repeats run(s); mini_batch_size 1000; predictor_type regressor; SageMaker default optimizer (adam) and learning rates / weight decays"
[ "$have_fm" = 1 ] || echo "# mlforge: this build has no factorization-machines trainer ($("$ml" train --help 2>&1 | grep -o 'this build has: .*')); its rows are skipped"

# --- data ---------------------------------------------------------------------------------------
t0=$(date +%s.%N)
"$ml" --threads "$threads" --log-level warn data synth fm "$work/criteo.pbr" --rows "$rows" --cols "$features" \
  --fields "$fields" --factors 4 --noise 0.1 --seed 1 --no-truth
"$ml" --threads "$threads" --log-level warn data synth fm "$work/movielens.pbr" --rows "$ml_rows" --users 943 \
  --items 1682 --factors 4 --noise 0.1 --seed 1 --no-truth
echo "# data: criteo-like $rows rows x $features features, $fields fields ($(du -m "$work/criteo.pbr" | cut -f1) MB);" \
  "movielens $ml_rows rows x 2625 (943 users + 1682 items, $(du -m "$work/movielens.pbr" | cut -f1) MB);" \
  "generated in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
cat "$work/criteo.pbr" "$work/movielens.pbr" >/dev/null  # in the page cache for everyone

# --- runs ---------------------------------------------------------------------------------------
results="$work/results.tsv"  # set k peer device optimizer examples_per_s note
: >"$results"

# run_mlforge SET FILE D K DEVICE OPTIMIZER
run_mlforge() {
  local set=$1 file=$2 d=$3 k=$4 dev=$5 opt=$6 extra=() ep=$epochs
  [ "$set" = movielens ] && ep=$ml_epochs
  [ "$opt" = sgd ] && extra=(--hp _optimizer=sgd)
  rm -rf "$work/model"
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$ml" --threads "$threads" train factorization-machines --train "$file" --model-dir "$work/model" \
    --hp feature_dim="$d" --hp num_factors="$k" --hp predictor_type=regressor --hp epochs="$ep" \
    --hp mini_batch_size=1000 "${extra[@]}" --device "$dev" >"$work/ml.log" 2>&1; then
    echo "mlforge $set k=$k $dev $opt FAILED:"
    tail -5 "$work/ml.log"
    return 0
  fi
  t1=$(date +%s.%N)
  local rows_file=$rows
  [ "$set" = movielens ] && rows_file=$ml_rows
  # examples/s over all epochs: rows x epochs / sum(rows / throughput_e)
  local eps
  eps=$(grep -o 'train throughput=[0-9.eE+]*' "$work/ml.log" | cut -d= -f2 |
    awk -v n="$rows_file" '{t += n / $1; c++} END {if (c) printf "%.0f", c * n / t; else print "nan"}')
  local per_epoch
  per_epoch=$(grep -o 'train throughput=[0-9.eE+]*' "$work/ml.log" | cut -d= -f2 | awk '{printf "%s%.0f", (NR > 1 ? "," : ""), $1}')
  local loss
  loss=$(grep -E 'epoch=[0-9]+, train mse <loss>=' "$work/ml.log" | tail -1 | awk -F'<loss>=' '{printf "%.6f", $2}')
  printf '%s\t%s\tmlforge\t%s\t%s\t%s\twall %.2f s, epochs %s ex/s, last epoch train mse %s\n' "$set" "$k" "$dev" "$opt" "$eps" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" "$per_epoch" "${loss:-?}" >>"$results"
  echo "mlforge $set k=$k $dev $opt: $eps examples/s (epochs: $per_epoch; wall $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s; train mse ${loss:-?})"
}

# run_torch SET FILE D K DEVICE(cpu|cuda) OPTIMIZER
run_torch() {
  local set=$1 file=$2 d=$3 k=$4 dev=$5 opt=$6 ep=$epochs
  [ "$set" = movielens ] && ep=$ml_epochs
  [ -n "$py" ] || return 0
  if ! "$py" "$root/bench/fm_torch.py" --train "$file" --feature-dim "$d" --num-factors "$k" --epochs "$ep" \
    --mini-batch-size 1000 --threads "$threads" --device "$dev" --optimizer "$opt" --impl all >"$work/torch.log" 2>&1; then
    echo "torch $set k=$k $dev $opt FAILED:"
    tail -5 "$work/torch.log"
    return 0
  fi
  grep '^RESULT' "$work/torch.log" | sed 's/^RESULT //'
  # Two peers: torch.optim (SparseAdam / SGD on sparse gradients; the faster of bag and embed) and
  # the hand-written lazy update (manual).
  local eps_of impl best which
  eps_of() { grep '^RESULT' "$work/torch.log" | grep " impl=$1 " | grep -o ' examples_per_s=[0-9]*' | cut -d= -f2; }
  best=0 which=""
  for impl in bag embed; do
    local e
    e=$(eps_of $impl)
    if [ -n "$e" ] && [ "$e" -gt "$best" ]; then best=$e which=$impl; fi
  done
  printf '%s\t%s\ttorch_optim\t%s\t%s\t%s\t%s\n' "$set" "$k" "${dev/cuda/gpu}" "$opt" "$best" "$which" >>"$results"
  printf '%s\t%s\ttorch_lazy\t%s\t%s\t%s\tmanual\n' "$set" "$k" "${dev/cuda/gpu}" "$opt" "$(eps_of manual)" >>"$results"
}

for set in criteo movielens; do
  file="$work/$set.pbr"
  d=$features
  [ "$set" = movielens ] && d=2625
  for k in $ks; do
    echo
    echo "## $set, k=$k (load $(cut -d' ' -f1 /proc/loadavg))"
    for ((r = 0; r < repeats; r++)); do
      if [ "$device" != gpu ]; then
        [ "$have_fm" = 1 ] && run_mlforge "$set" "$file" "$d" "$k" cpu adam
        run_torch "$set" "$file" "$d" "$k" cpu adam
      fi
      if [ "$gpu" = 1 ]; then
        for opt in adam sgd; do
          [ "$have_fm" = 1 ] && run_mlforge "$set" "$file" "$d" "$k" gpu "$opt"
          run_torch "$set" "$file" "$d" "$k" cuda "$opt"
        done
      fi
    done
  done
done

# --- table --------------------------------------------------------------------------------------
echo
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## training examples/s. mlforge: from its throughput lines (reading the file each epoch). torch (data preloaded):"
echo "## torch.optim = SparseAdam (or SGD) on sparse gradients, the faster of the EmbeddingBag (bag) and embedding (embed)"
echo "## formulations; hand lazy = the same model with a hand-written lazy update of the touched rows (impl manual)"
awk -F'\t' -v fields="$fields" -v bw=4.8e12 '
  { key = $1 "\t" $2 "\t" $4 "\t" $5
    if ($6 != "" && $6 != "nan" && (!((key "\t" $3) in v) || $6 + 0 > v[key "\t" $3] + 0)) { v[key "\t" $3] = $6; note[key "\t" $3] = $7 }
    if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
  function ratio(m, t) { return (m != "" && t != "" && t > 0) ? sprintf("%.2fx", m / t) : "-" }
  function show(x) { return x == "" ? "-" : x }
  END {
    printf "%-9s %3s %-3s %-4s %9s | %9s %-5s %6s | %9s %6s | %9s %7s\n", "set", "k", "dev", "opt", "mlforge",
      "torch.opt", "impl", "ratio", "hand lazy", "ratio", "GPU bound", "% bound"
    for (i = 1; i <= n; i++) {
      split(order[i], a, "\t"); set = a[1]; k = a[2]; dev = a[3]; opt = a[4]
      m = v[order[i] "\tmlforge"]; t = v[order[i] "\ttorch_optim"]; h = v[order[i] "\ttorch_lazy"]
      p = (set == "criteo") ? fields : 2
      bound = bw / ((opt == "sgd" ? 8 : 24) * p * (k + 1))
      pct = (dev == "gpu" && m != "") ? sprintf("%.1f%%", 100 * m / bound) : "-"
      printf "%-9s %3s %-3s %-4s %9s | %9s %-5s %6s | %9s %6s | %9s %7s\n", set, k, dev, opt, show(m), show(t),
        show(note[order[i] "\ttorch_optim"]), ratio(m, t), show(h), ratio(m, h),
        (dev == "gpu" ? sprintf("%.3g", bound) : "-"), pct
    }
  }' "$results"
echo
echo "GPU bound: H200 HBM3e 4.8 TB/s over the bytes each example must gather and scatter: SGD 8 p (k + 1)"
echo "(w_i and v_i of each of the p non-zeros read and written, float32), Adam 24 p (k + 1) (plus both moments)."
for k in $ks; do
  for p in "$fields" 2; do
    awk -v p="$p" -v k="$k" 'BEGIN {printf "  p=%-3d k=%-3d SGD %6d B/example -> %.3g examples/s; Adam %6d B -> %.3g examples/s\n", p, k, 8*p*(k+1), 4.8e12/(8*p*(k+1)), 24*p*(k+1), 4.8e12/(24*p*(k+1))}'
  done
done
[ "$gpu" = 1 ] || echo "No GPU here: the GPU rows (mlforge --device gpu, torch cuda, % of the bound) were not run."
