#!/usr/bin/env bash
# Serves a model locally, like the bring-your-own-container examples' serve_local.sh, but without
# Docker: runs `mlforge container serve --opt-ml DIR` (the model in DIR/model, as SageMaker
# extracts model.tar.gz into /opt/ml/model) or `mlforge serve --model PATH`, in the foreground,
# on port 8080 (SAGEMAKER_BIND_TO_PORT). Stop it with Ctrl-C (SIGINT/SIGTERM are passed on).
# Then send requests with container/predict.sh.
#
#   container/serve_local.sh [options] [OPT_ML_DIR]
#
# OPT_ML_DIR           an /opt/ml tree, e.g. the one train_local.sh made (default: $MLFORGE_OPT_ML)
# Options:
#   --model PATH         serve PATH instead (a model directory, model.tar.gz or model_algo-1)
#   --port N             port (default: $SAGEMAKER_BIND_TO_PORT, else 8080)
#   --mlforge BIN        the binary (default: $MLFORGE_BIN, else build/cli/mlforge of this
#                        checkout, else `mlforge` on PATH)
#   --docker IMAGE       run `docker run -p N:8080 -v DIR/model:/opt/ml/model IMAGE serve` instead
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "serve_local.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
opt_ml=${MLFORGE_OPT_ML:-} model="" port=${SAGEMAKER_BIND_TO_PORT:-8080} mlforge=${MLFORGE_BIN:-} image=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --model) model=${2:?--model needs a path}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    --mlforge) mlforge=${2:?--mlforge needs a path}; shift 2 ;;
    --docker) image=${2:?--docker needs an image}; shift 2 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) opt_ml=$1; shift ;;
  esac
done
[[ "$port" =~ ^[0-9]+$ ]] || die "--port '$port' is not a number"
if [ -z "$model" ]; then
  [ -n "$opt_ml" ] || { usage >&2; die "give an /opt/ml tree (OPT_ML_DIR) or --model PATH"; }
  [ -d "$opt_ml/model" ] || die "$opt_ml/model does not exist (train first: container/train_local.sh)"
  [ -n "$(ls -A "$opt_ml/model")" ] || die "$opt_ml/model is empty (did training fail? see $opt_ml/output/failure)"
else
  [ -e "$model" ] || die "$model does not exist"
fi

if [ -n "$image" ]; then
  command -v docker >/dev/null 2>&1 || die "--docker: docker is not installed"
  src=${model:-$opt_ml/model}
  src=$(cd "$(dirname "$src")" && pwd)/$(basename "$src")
  mount=()
  case "$src" in
    *.tar.gz)  # SageMaker extracts model.tar.gz into /opt/ml/model; do the same
      tmp=$(mktemp -d "${TMPDIR:-/tmp}/serve_model.XXXXXX"); tar -xzf "$src" -C "$tmp"; mount=(-v "$tmp":/opt/ml/model) ;;
    *) if [ -d "$src" ]; then mount=(-v "$src":/opt/ml/model); else mount=(-v "$src":/opt/ml/model/model_algo-1); fi ;;
  esac
  gpus=()
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then gpus=(--gpus all); fi
  echo "serve_local.sh: docker run $image serve on port $port" >&2
  exec docker run --rm "${gpus[@]+"${gpus[@]}"}" -p "$port":8080 "${mount[@]}" "$image" serve
fi

if [ -z "$mlforge" ]; then
  if [ -x "$here/../build/cli/mlforge" ]; then mlforge="$here/../build/cli/mlforge"
  elif command -v mlforge >/dev/null 2>&1; then mlforge=$(command -v mlforge)
  else die "no mlforge binary: build it (bash scripts/build.sh), pass --mlforge BIN or set MLFORGE_BIN"
  fi
fi
[ -x "$mlforge" ] || die "$mlforge is not an executable"

if [ -n "$model" ]; then
  cmd=("$mlforge" serve --model "$model" --port "$port")
else
  cmd=("$mlforge" container serve --opt-ml "$opt_ml")
fi
echo "serve_local.sh: ${cmd[*]} (port $port; container/predict.sh FILE sends a request)" >&2
# In the background so that SIGINT/SIGTERM can be passed on (graceful shutdown) and the exit
# status inspected.
SAGEMAKER_BIND_TO_PORT=$port "${cmd[@]}" &
pid=$!
signalled=0
trap 'signalled=1; kill -TERM "$pid" 2>/dev/null || true' INT TERM
status=0
wait "$pid" || status=$?
# A trapped signal interrupts wait (status > 128) without collecting the server's status: wait again
# for the server's own exit status (0 after a graceful shutdown). 127: it was already collected.
if [ "$signalled" -eq 1 ]; then
  again=0; wait "$pid" || again=$?
  [ "$again" -eq 127 ] || status=$again
fi
exit "$status"
