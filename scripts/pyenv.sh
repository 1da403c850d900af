#!/usr/bin/env bash
# Creates (idempotently) a Python virtual environment and prints the path of its python on stdout.
#
#   scripts/pyenv.sh [sklearn|intelex|sdk|torch|python]
#     sklearn (default)  numpy + scikit-learn: the scikit-learn comparisons and CPU benchmarks; and
#                        matplotlib (the demo's PC scatter plots, scripts/plot_pca.py)
#     intelex            the same plus scikit-learn-intelex (benchmark peer only); venv <repo>/.venv-intelex
#     sdk                the SageMaker Python SDK 2.x (its serializers and deserializers): the
#                        server's compatibility test; venv <repo>/.venv-sdk
#     torch              PyTorch (benchmark peer only: bench/fm_torch.py); venv <repo>/.venv-torch.
#                        PyPI's Linux x86_64 wheel is the CUDA build and pulls the nvidia-* runtime
#                        wheels (~3 GB download, ~6 GB installed); where PyTorch's own CPU wheel
#                        index answers, set PIP_INDEX_URL to it for a ~200 MB install instead.
#     python             the Python package's build and test tools (nanobind, scikit-build-core,
#                        pytest) with numpy, scipy and scikit-learn; tests/python/run.sh installs
#                        the mlforge package into it (pip install --no-build-isolation .);
#                        venv <repo>/.venv-py
#
#   MLFORGE_VENV   where the venv lives (default: <repo>/.venv or <repo>/.venv-sdk, gitignored)
#   MLFORGE_PYTHON the interpreter that creates it (default: python3; needs the venv module)
#
# Exit status: 0 with the python path on stdout; 77 (the ctest skip code) with the reason on stderr
# when the venv cannot be made here (PyPI unreachable, no python3, no venv module); 1 when
# PyPI answered but the install failed anyway.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile="${1:-sklearn}"
py="${MLFORGE_PYTHON:-python3}"

case "$profile" in
  sklearn)
    venv="${MLFORGE_VENV:-$repo/.venv}"
    # Pinned versions: wheels exist for CPython 3.9-3.12 on manylinux x86_64 and aarch64.
    requirements=(
      "numpy==1.26.4"
      "scipy==1.13.1"
      "joblib==1.4.2"
      "threadpoolctl==3.5.0"
      "scikit-learn==1.5.2"
      "matplotlib==3.9.2"
    )
    imports="import numpy, sklearn, threadpoolctl, matplotlib"
    ;;
  intelex)
    # Benchmarks only (bench/pca_vs_sklearn.py's peer): scikit-learn-intelex with the scikit-learn it
    # supports; kept apart so the test venv does not download oneDAL.
    venv="${MLFORGE_VENV:-$repo/.venv-intelex}"
    requirements=(
      "numpy==1.26.4"
      "scipy==1.13.1"
      "joblib==1.4.2"
      "threadpoolctl==3.5.0"
      "scikit-learn==1.5.2"
      "scikit-learn-intelex==2024.7.0"
      "packaging==24.1"
    )
    imports="import numpy, sklearn, threadpoolctl, sklearnex"
    ;;
  sdk)
    venv="${MLFORGE_VENV:-$repo/.venv-sdk}"
    # The last 2.x release line (3.x dropped sagemaker.amazon, whose RecordSerializer we test).
    requirements=("sagemaker==2.257.7")
    imports="import numpy, sagemaker.serializers, sagemaker.deserializers, sagemaker.amazon.common"
    ;;
  torch)
    venv="${MLFORGE_VENV:-$repo/.venv-torch}"
    requirements=("numpy==1.26.4" "torch==2.5.1")
    imports="import numpy, torch"
    ;;
  python)
    venv="${MLFORGE_VENV:-$repo/.venv-py}"
    # The build backend and bindings library are pinned too: the package builds without build
    # isolation (no download per build, and CMake's cache in build-py/ stays valid).
    requirements=(
      "numpy==1.26.4"
      "scipy==1.13.1"
      "joblib==1.4.2"
      "threadpoolctl==3.5.0"
      "scikit-learn==1.5.2"
      "nanobind==2.4.0"
      "scikit-build-core==0.10.7"
      "pytest==8.3.3"
    )
    imports="import numpy, scipy, sklearn, nanobind, scikit_build_core, pytest"
    ;;
  *)
    echo "pyenv.sh: unknown profile '$profile' (sklearn, intelex, sdk, torch or python)" >&2
    exit 2
    ;;
esac
stamp_text="$(printf '%s\n' "${requirements[@]}")"

say() { echo "pyenv.sh: $*" >&2; }
skip() { say "SKIP: $*"; exit 77; }

ready() {
  [[ -x "$venv/bin/python" && -f "$venv/.mlforge-requirements" ]] &&
    [[ "$(cat "$venv/.mlforge-requirements")" == "$stamp_text" ]] &&
    SAGEMAKER_SUPPRESS_V2_WARNING=1 "$venv/bin/python" -c "$imports" >/dev/null 2>&1
}

if ready; then
  echo "$venv/bin/python"
  exit 0
fi

command -v "$py" >/dev/null 2>&1 || skip "no '$py' interpreter on PATH (set MLFORGE_PYTHON)"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' ||
  skip "$py is older than 3.9; the pinned packages need 3.9+"
"$py" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
  skip "$py has no venv/ensurepip module (Debian: apt-get install python3-venv)"

mkdir -p "$(dirname "$venv")"
# Serialise concurrent callers (e.g. ctest -j and a benchmark) on one lock per venv path (kept
# outside the repository so it never shows up as an untracked file).
lock="${TMPDIR:-/tmp}/mlforge-pyenv-$(printf '%s' "$venv" | cksum | cut -d' ' -f1).lock"
exec 9>"$lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if ready; then  # someone else finished it while we waited
  echo "$venv/bin/python"
  exit 0
fi

# Is the package index reachable? (PIP_INDEX_URL / pip.conf's index-url are honoured by pip; probe
# the same host.) Without it the install cannot work: skip rather than fail.
index="${PIP_INDEX_URL:-$("$py" -m pip config get global.index-url 2>/dev/null || true)}"
index="${index:-https://pypi.org/simple/}"
if ! "$py" - "$index" >/dev/null 2>&1 <<'EOF'
import sys, urllib.request
url = sys.argv[1].rstrip("/") + "/pip/"
urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15)
EOF
then
  skip "the package index $index is unreachable; cannot install ${requirements[*]}"
fi

if [[ ! -x "$venv/bin/python" ]]; then
  say "creating $venv with $("$py" --version 2>&1)"
  "$py" -m venv "$venv" >&2 || skip "'$py -m venv $venv' failed"
fi
say "installing ${requirements[*]}"
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --timeout 60 \
    "${requirements[@]}" >&2; then
  say "pip install failed although $index answered"
  exit 1
fi
SAGEMAKER_SUPPRESS_V2_WARNING=1 "$venv/bin/python" -c "$imports" >&2 || { say "imports fail after install"; exit 1; }
printf '%s' "$stamp_text" >"$venv/.mlforge-requirements"
say "ready ($profile): $("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE '^(numpy|scikit-learn|sagemaker|torch|nanobind)==' | tr '\n' ' ')"
echo "$venv/bin/python"
