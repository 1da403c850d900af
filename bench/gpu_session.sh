#!/usr/bin/env bash
# One prepared call on a GPU machine (issue 16): every `gpu`-labelled test, the CLI end to end with
# --device gpu against --device cpu, the GPU micro-benchmarks and their PyTorch peers. Nothing
# compiles there: the executables come from a bundle made here (../shared/tools/gpu-bundle) of a
# build for sm_90 with a portable CPU target (MLFORGE_CPU_ARCH=x86-64-v3).
#
#   bash bench/gpu_session.sh BUNDLE OUTDIR [STAGE...]
#     stages (default all, in this order): info tests launch bench torch e2e fm serve profile profile2
#     python (the Python package's GPU tests: see that stage for the wheel it needs)
# Each stage has its own time limit, so one that hangs cannot take the others' logs with it; the
# output goes to OUTDIR/session.log (everything), OUTDIR/gpu_tests.xml and OUTDIR/e2e_commands.log.
# Making the bundle, here:
#   MLFORGE_BUILD_DIR=build-gpu MLFORGE_CMAKE_ARGS=-DMLFORGE_CPU_ARCH=x86-64-v3 bash scripts/build.sh \
#     --target mlforge mlforge_gpu_tests kmeans_bench linear_learner_bench genotype_bench
#   ../shared/tools/gpu-bundle gpu-bundle build-gpu/cli/mlforge build-gpu/tests/mlforge_gpu_tests \
#     build-gpu/bench/{kmeans,linear_learner,genotype,pca}_bench /usr/bin/wrk
#   (wrk: Debian's package, for the serve stage), then carry it as a .tar.xz (the tree travels at
#   64 MiB at most) and unpack it there.
set -uo pipefail
bundle=$(cd "$1" && pwd)
out=$2
shift 2
stages=${*:-info tests launch bench torch e2e fm serve profile profile2 python}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
exec > >(tee -a "$out/session.log") 2>&1
# A plain path for scripts that want one mlforge executable.
printf '#!/usr/bin/env bash\nexec "%s/run" mlforge "$@"\n' "$bundle" >"$bundle/mlforge"
chmod +x "$bundle/mlforge"
stage() { echo; echo "=== $1 ($(date -u +%H:%M:%S))"; }
has() { [[ " $stages " == *" $1 "* ]]; }

if has info; then
  stage info
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
  nvidia-smi | head -15
  nvcc --version 2>/dev/null | tail -1
  lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)" 2>&1
  ls /usr/local/cuda/lib64 2>/dev/null | grep -E "cublas|cusolver|cusparse|curand" | head -8
  "$bundle/run" mlforge info 2>&1 | head -30
fi

if has tests; then
  stage "gpu tests"
  # One process (a CUDA context per test would dominate); --gtest_filter narrows a rerun.
  timeout -k 5 ${MLFORGE_GPU_TEST_TIMEOUT:-150} "$bundle/run" mlforge_gpu_tests --gtest_color=no \
    --gtest_output=xml:"$out/gpu_tests.xml" ${MLFORGE_GPU_TEST_FILTER:+--gtest_filter=$MLFORGE_GPU_TEST_FILTER}
  echo "# gpu tests exit $?"
fi

if has e2e; then
  stage "end to end: --device gpu against --device cpu"
  timeout -k 5 ${MLFORGE_E2E_TIMEOUT:-150} python3 "$root/bench/gpu_e2e.py" --mlforge "$bundle/mlforge" \
    --work /tmp/mlforge-e2e --log "$out/e2e_commands.log" ${MLFORGE_E2E_ONLY:+--only $MLFORGE_E2E_ONLY}
  echo "# e2e exit $?"
fi

if has launch; then
  stage "two ranks on the GPU (mlforge launch -n 2, LOCAL_RANK, Gloo) against one process"
  w=/tmp/mlforge-launch
  rm -rf "$w" && mkdir -p "$w"
  ml="$bundle/mlforge"
  "$ml" --log-level warn data synth blobs "$w/b.pbr" --rows 200000 --cols 32 --k 8 --no-labels --no-truth --seed 3
  km=(--hp k=8 --hp feature_dim=32 --hp mini_batch_size=5000 --hp init_method=kmeans++
      --hp full_batch_lloyd_iterations=50 --hp full_batch_lloyd_tol=0)
  "$ml" --log-level warn data synth linear "$w/l.pbr" --rows 100000 --cols 20 --task binary --noise 0.3 --seed 5 --no-truth
  ll() { echo --hp predictor_type=binary_classifier --hp feature_dim=20 --hp mini_batch_size=$1 --hp num_models=4 \
    --hp epochs=3 --hp early_stopping_patience=10; }
  dev=${MLFORGE_LAUNCH_DEVICE:-gpu}  # cpu: the stage's own check on a machine without a GPU
  t() { timeout -k 5 60 "$@"; }
  t "$ml" --log-level warn train kmeans --train "$w/b.pbr" --model-dir "$w/km1" --device "$dev" "${km[@]}"
  t "$ml" launch -n 2 -- train kmeans --train "$w/b.pbr" --model-dir "$w/km2" --device "$dev" "${km[@]}" 2>&1 |
    grep -E "device:|Gloo:|rror" | cut -c1-200
  # shellcheck disable=SC2046
  t "$ml" --log-level warn train linear-learner --train "$w/l.pbr" --validation "$w/l.pbr" --model-dir "$w/ll1" \
    --device "$dev" $(ll 1000)
  # shellcheck disable=SC2046
  t "$ml" launch -n 2 -- train linear-learner --train "$w/l.pbr" --validation "$w/l.pbr" --model-dir "$w/ll2" \
    --device "$dev" $(ll 500) 2>&1 | grep -E "device:|Gloo:|rror" | cut -c1-200
  for m in km1 km2; do t "$ml" --log-level warn predict --model "$w/$m" --input "$w/b.pbr" --accept application/jsonlines --output "$w/$m.jsonl"; done
  for m in ll1 ll2; do t "$ml" --log-level warn predict --model "$w/$m" --input "$w/l.pbr" --accept application/jsonlines --output "$w/$m.jsonl"; done
  python3 - "$w" <<'PY'
import json, sys
w = sys.argv[1]
def rows(name):
    with open(f"{w}/{name}.jsonl") as f:
        return [json.loads(l) for l in f if l.strip()]
try:
    a, b = rows("km1"), rows("km2")
    # The two runs may number the same centers differently: compare the partitions (the share of
    # rows whose pair of labels is the most common one for their 1-process label) and distances.
    from collections import Counter
    pairs = Counter((x["closest_cluster"], y["closest_cluster"]) for x, y in zip(a, b))
    best = {}
    for (p, q), c in pairs.items():
        best[p] = max(best.get(p, 0), c)
    agree = sum(best.values()) / len(a)
    rel = max(abs(x["distance_to_cluster"] - y["distance_to_cluster"]) / max(1e-6, x["distance_to_cluster"]) for x, y in zip(a, b))
    print(f"kmeans 1 process vs 2 ranks on the GPU: same partition for {agree:.6f} of rows, distances max rel {rel:.3g}",
          "PASS" if agree >= 0.9999 and rel <= 1e-3 else "FAIL")
    a, b = rows("ll1"), rows("ll2")
    d = max(abs(x["score"] - y["score"]) for x, y in zip(a, b))
    agree = sum(x["predicted_label"] == y["predicted_label"] for x, y in zip(a, b)) / len(a)
    print(f"linear learner 1 process vs 2 ranks on the GPU: scores max abs {d:.3g}, labels agree {agree:.6f}",
          "PASS" if d <= 1e-3 and agree >= 0.999 else "FAIL")
except Exception as e:
    print("launch comparison ERROR", e)
PY
fi

if has bench; then
  stage "GPU micro-benchmarks (medians of 3)"
  common=(--benchmark_repetitions=3 --benchmark_report_aggregates_only=true --benchmark_min_time=0.2)
  timeout -k 5 100 "$bundle/run" kmeans_bench --benchmark_filter='Gpu|Floor' "${common[@]}"
  echo "# kmeans_bench exit $?"
  timeout -k 5 45 "$bundle/run" linear_learner_bench --benchmark_filter='Gpu' "${common[@]}"
  echo "# linear_learner_bench exit $?"
  timeout -k 5 90 "$bundle/run" pca_bench --benchmark_filter='ScatterGpu|SymEigenGpu' --benchmark_min_time=0.2
  echo "# pca_bench exit $?"
  # One repetition: each repetition would generate the cohort again on the host.
  timeout -k 5 60 "$bundle/run" genotype_bench --benchmark_filter='BM_GrmGpu/(1126|4096|10000)' --benchmark_min_time=0.5
  echo "# genotype_bench exit $?"
fi

if has torch; then
  stage "PyTorch peers and ceilings"
  timeout -k 5 60 python3 "$root/bench/gpu_torch_peers.py" --reps 10
  echo "# gpu_torch_peers exit $?"
  timeout -k 5 60 python3 "$root/bench/kmeans_torch.py" --rows 10000000 --reps 5
  echo "# kmeans_torch exit $?"
fi

if has fm; then
  stage "factorization machines: mlforge --device gpu against torch cuda"
  MLFORGE_BIN="$bundle/mlforge" MLFORGE_TORCH_PYTHON=python3 timeout -k 5 ${MLFORGE_FM_TIMEOUT:-100} \
    bash "$root/bench/fm_vs_torch.sh" --device gpu --threads "$(nproc)" --k "16 64" --workdir /tmp/mlforge-fm
  echo "# fm_vs_torch exit $?"
fi
if has serve; then
  stage "serving with --device gpu against --device cpu (serve_load.sh; wrk comes in the bundle)"
  # The bundle carries wrk (add /usr/bin/wrk to the gpu-bundle call): a wrapper on PATH.
  if [ -x "$bundle/bin/wrk" ]; then
    mkdir -p "$bundle/path"
    printf '#!/usr/bin/env bash\nexec "%s/run" wrk "$@"\n' "$bundle" >"$bundle/path/wrk"
    chmod +x "$bundle/path/wrk"
    for dev in gpu cpu; do
      PATH="$bundle/path:$PATH" timeout -k 5 ${MLFORGE_SERVE_TIMEOUT:-120} bash "$root/bench/serve_load.sh" \
        --mlforge "$bundle/mlforge" --device $dev --duration 10 --repeats 1
      echo "# serve_load $dev exit $?"
    done
  else
    echo "# no wrk in the bundle: serving not measured"
  fi
fi

if has profile; then
  stage "profile: Nsight Compute speed-of-light of the slowest kernels (clocks left alone)"
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
  if [ -z "$ncu" ]; then
    echo "# no ncu here"
  else
    one=(--benchmark_repetitions=1 --benchmark_min_time=0.01)
    timeout -k 5 90 "$ncu" --clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis \
      -k 'regex:GemmEpilogue|FusedAssign' --launch-count 4 \
      "$bundle/run" kmeans_bench --benchmark_filter='AssignGpu/n:1000000/d:(100/k:1000/path:2|16/k:20/path:1)/nosums:0/tile:0' "${one[@]}"
    echo "# ncu kmeans exit $?"
    timeout -k 5 60 "$ncu" --clock-control none --section SpeedOfLight \
      -k 'regex:LossKernel|ColumnSum|ReduceSlices|gemv|gemm|Gemm' --launch-count 20 \
      "$bundle/run" linear_learner_bench --benchmark_filter='LossGradGpu' "${one[@]}"
    echo "# ncu linear_learner exit $?"
  fi
fi
if has profile2; then
  stage "profile: FM step, PCA accumulation and the genotype GRM (Nsight Compute speed of light)"
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
  w=/tmp/mlforge-prof
  rm -rf "$w" && mkdir -p "$w"
  ml="$bundle/mlforge"
  "$ml" --log-level warn data synth fm "$w/fm.pbr" --rows 50000 --cols 1000000 --fields 39 --zipf 1.1 --factors 4 --no-truth
  "$ml" --log-level warn data synth lowrank "$w/low.pbr" --rows 1000000 --cols 128 --rank 8 --no-truth
  wall() {  # NAME COMMAND...: wall time and the command's throughput / timing lines
    local name=$1 t0 rc
    shift
    t0=$(date +%s.%N)
    "$@" >"$w/out.log" 2>&1
    rc=$?
    echo "$name: wall $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}') s, exit $rc"
    grep -E "throughput|finished|pass [0-9]|epoch" "$w/out.log" | cut -c1-160 | tail -4
  }
  for dev in cpu gpu; do
    wall "fm $dev" "$ml" train factorization-machines --train "$w/fm.pbr" --model-dir "$w/fm_$dev" --device $dev \
      --hp feature_dim=1000000 --hp num_factors=16 --hp predictor_type=regressor --hp epochs=2 --hp mini_batch_size=1000
    wall "pca $dev" "$ml" train pca --train "$w/low.pbr" --model-dir "$w/pca_$dev" --device $dev \
      --hp num_components=8 --hp feature_dim=128 --hp mini_batch_size=10000
  done
  if [ -n "$ncu" ]; then
    timeout -k 5 60 "$ncu" --clock-control none --section SpeedOfLight --launch-skip 200 --launch-count 8 \
      "$bundle/run" mlforge train factorization-machines --train "$w/fm.pbr" --model-dir "$w/fm_ncu" --device gpu \
      --hp feature_dim=1000000 --hp num_factors=16 --hp predictor_type=regressor --hp epochs=1 --hp mini_batch_size=1000 \
      2>&1 | grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Compute \(SM\)|Memory Throughput" | cut -c1-160
    echo "# ncu fm exit $?"
    timeout -k 5 60 "$ncu" --clock-control none --section SpeedOfLight --launch-skip 5 --launch-count 6 \
      "$bundle/run" mlforge train pca --train "$w/low.pbr" --model-dir "$w/pca_ncu" --device gpu \
      --hp num_components=8 --hp feature_dim=128 --hp mini_batch_size=10000 \
      2>&1 | grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Compute \(SM\)|Memory Throughput" | cut -c1-160
    echo "# ncu pca exit $?"
    timeout -k 5 60 "$ncu" --clock-control none --section SpeedOfLight --launch-count 4 \
      "$bundle/run" genotype_bench --benchmark_filter='BM_GrmGpu/4096' --benchmark_min_time=0.01 \
      2>&1 | grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Compute \(SM\)|Memory Throughput" | cut -c1-160
    echo "# ncu grm exit $?"
  fi
fi
if has python; then
  # The Python package's extension built here with CUDA for the device's Python (3.12):
  #   /root/.pyenv/versions/3.12.1/bin/python -m venv /tmp/v312 && /tmp/v312/bin/pip install nanobind \
  #     scikit-build-core numpy scipy scikit-learn pytest
  #   CMAKE_ARGS="-DMLFORGE_CPU_ARCH=x86-64-v3 -DCMAKE_CUDA_ARCHITECTURES=90" /tmp/v312/bin/python -m pip wheel . \
  #     --no-build-isolation --no-deps -Cbuild-dir=build-py312-cuda -w gpu-bundle-carry   (about 8 minutes)
  # and its _core*.so passed to gpu-bundle too, so that the libraries it needs are in the bundle's lib/.
  # The device needs numpy, scipy, scikit-learn and pytest for that Python; the stage says which lack.
  stage "python package: device=gpu against device=cpu (tests/python/test_device.py)"
  whl=${MLFORGE_PY_WHEEL:-$(ls "$bundle"/../mlforge-*.whl "$root"/gpu-bundle-carry/mlforge-*.whl 2>/dev/null | head -1)}
  py=${MLFORGE_PYTHON:-python3}
  "$py" --version
  missing=$("$py" -c "import importlib.util as u; print(' '.join(m for m in ('numpy', 'scipy', 'sklearn', 'pytest') if u.find_spec(m) is None))")
  if [ -z "$whl" ]; then
    echo "# python: no wheel (set MLFORGE_PY_WHEEL)"
  elif [ -n "$missing" ]; then
    echo "# python: this machine's $py lacks: $missing"
  else
    rm -rf /tmp/mlforge-py && mkdir -p /tmp/mlforge-py
    "$py" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall('/tmp/mlforge-py')" "$whl"
    (cd "$root/tests/python" && LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      PYTHONPATH=/tmp/mlforge-py timeout -k 5 ${MLFORGE_PY_TIMEOUT:-120} "$py" -m pytest -q -rs -p no:cacheprovider \
      test_device.py)
    echo "# python exit $?"
  fi
fi

echo
echo "=== done ($(date -u +%H:%M:%S))"
