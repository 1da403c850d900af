#!/usr/bin/env bash
# Runs a SageMaker-style training job locally, like the bring-your-own-container examples'
# train_local.sh, but without Docker: builds an /opt/ml tree (SPEC.md 2.2) and runs
# `mlforge container train --opt-ml DIR` on it. With --docker IMAGE it runs
# `docker run IMAGE train` on the same tree instead.
#
#   container/train_local.sh [options] DATA [NAME=VALUE ...]
#
# DATA         a file or a directory: becomes the `train` channel (input/data/train/)
# NAME=VALUE   hyperparameters, written to hyperparameters.json as strings (as SageMaker does)
# Options:
#   --opt-ml DIR         the tree to create (default: a new directory under ${TMPDIR:-/tmp});
#                        DIR must not exist or be empty
#   --algorithm NAME     the algorithm (default: $MLFORGE_ALGORITHM, else kmeans)
#   --content-type T     the train channel's ContentType (default: from DATA's extension:
#                        .csv -> text/csv, .pbr/.rec/.recordio/.protobuf -> application/x-recordio-protobuf)
#   --test PATH          also a `test` channel (same content type)
#   --validation PATH    also a `validation` channel (same content type)
#   --mlforge BIN        the binary (default: $MLFORGE_BIN, else build/cli/mlforge of this
#                        checkout, else `mlforge` on PATH)
#   --docker IMAGE       run the image instead of the binary (needs a working Docker; adds
#                        --gpus all when nvidia-smi works)
# Data is hard-linked into the tree when possible, else copied (SageMaker downloads a copy too).
# On success the model is in DIR/model/ (model_algo-1, mlforge-model.json); on failure the reason
# is in DIR/output/failure and the exit status is mlforge's (non-zero).
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "train_local.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
opt_ml="" algorithm=${MLFORGE_ALGORITHM:-kmeans} content_type="" mlforge=${MLFORGE_BIN:-} image=""
data="" hps=() extra_channels=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --opt-ml) opt_ml=${2:?--opt-ml needs a directory}; shift 2 ;;
    --algorithm) algorithm=${2:?--algorithm needs a name}; shift 2 ;;
    --content-type) content_type=${2:?--content-type needs a value}; shift 2 ;;
    --test|--validation) extra_channels+=("${1#--}=${2:?$1 needs a path}"); shift 2 ;;
    --mlforge) mlforge=${2:?--mlforge needs a path}; shift 2 ;;
    --docker) image=${2:?--docker needs an image}; shift 2 ;;
    --) shift; break ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *)
      if [ -z "$data" ]; then data=$1
      elif [[ "$1" == *=* ]]; then hps+=("$1")
      else die "'$1' is not NAME=VALUE; hyperparameters are given as k=8 feature_dim=16"
      fi
      shift ;;
  esac
done
while [ $# -gt 0 ]; do hps+=("$1"); shift; done
[ -n "$data" ] || { usage >&2; die "no DATA given"; }
[ -e "$data" ] || die "$data does not exist"

if [ -z "$image" ]; then
  if [ -z "$mlforge" ]; then
    if [ -x "$here/../build/cli/mlforge" ]; then mlforge="$here/../build/cli/mlforge"
    elif command -v mlforge >/dev/null 2>&1; then mlforge=$(command -v mlforge)
    else die "no mlforge binary: build it (bash scripts/build.sh), pass --mlforge BIN or set MLFORGE_BIN"
    fi
  fi
  [ -x "$mlforge" ] || die "$mlforge is not an executable"
else
  command -v docker >/dev/null 2>&1 || die "--docker: docker is not installed"
fi

content_type_of() {
  case "${1,,}" in
    *.csv) echo "text/csv" ;;
    *.pbr|*.rec|*.recordio|*.protobuf) echo "application/x-recordio-protobuf" ;;
    *) echo "" ;;
  esac
}
if [ -z "$content_type" ]; then
  probe=$data
  if [ -d "$data" ]; then
    probe=$(find "$data" -type f ! -name '.*' | sort | head -n 1)
  fi
  content_type=$(content_type_of "$probe")
  [ -n "$content_type" ] || die "cannot tell the content type of $data from its extension; pass --content-type"
fi

if [ -z "$opt_ml" ]; then
  opt_ml=$(mktemp -d "${TMPDIR:-/tmp}/opt_ml.XXXXXX")
elif [ -e "$opt_ml" ] && [ -n "$(ls -A "$opt_ml")" ]; then
  die "$opt_ml exists and is not empty; give a new directory (the tree is built from scratch)"
fi
mkdir -p "$opt_ml"/input/config "$opt_ml"/input/data "$opt_ml"/model "$opt_ml"/output/data
opt_ml=$(cd "$opt_ml" && pwd)

json_string() {  # a JSON string literal for $1
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}

# Data: hard links when the file system allows, else copies.
place() {  # place SRC CHANNEL
  local dst="$opt_ml/input/data/$2"
  mkdir -p "$dst"
  if [ -d "$1" ]; then
    cp -R -l "$1"/. "$dst"/ 2>/dev/null || cp -R "$1"/. "$dst"/
  else
    ln "$1" "$dst/$(basename "$1")" 2>/dev/null || cp "$1" "$dst/"
  fi
}
channels=("train=$data" "${extra_channels[@]+"${extra_channels[@]}"}")
config="{"
for c in "${channels[@]}"; do
  name=${c%%=*} path=${c#*=}
  [ -e "$path" ] || die "$path ($name channel) does not exist"
  place "$path" "$name"
  [ "$config" = "{" ] || config+=", "
  config+="$(json_string "$name"): {\"ContentType\": $(json_string "$content_type"), \"TrainingInputMode\": \"File\", "
  config+="\"S3DistributionType\": \"FullyReplicated\", \"RecordWrapperType\": \"None\"}"
done
echo "$config}" > "$opt_ml/input/config/inputdataconfig.json"

hp_json="{"
for kv in "${hps[@]+"${hps[@]}"}"; do
  [[ "$kv" == *=* ]] || die "'$kv' is not NAME=VALUE"
  [ "$hp_json" = "{" ] || hp_json+=", "
  hp_json+="$(json_string "${kv%%=*}"): $(json_string "${kv#*=}")"
done
echo "$hp_json}" > "$opt_ml/input/config/hyperparameters.json"
echo '{"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}' \
  > "$opt_ml/input/config/resourceconfig.json"

echo "train_local.sh: /opt/ml tree in $opt_ml (algorithm $algorithm, train: $content_type)" >&2
status=0
if [ -n "$image" ]; then
  gpus=()
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then gpus=(--gpus all); fi
  docker run --rm "${gpus[@]+"${gpus[@]}"}" -e MLFORGE_ALGORITHM="$algorithm" -v "$opt_ml":/opt/ml "$image" train || status=$?
else
  MLFORGE_ALGORITHM="$algorithm" "$mlforge" container train --opt-ml "$opt_ml" || status=$?
fi

if [ "$status" -eq 0 ]; then
  echo "train_local.sh: model in $opt_ml/model:" >&2
  ls -l "$opt_ml/model" >&2
else
  if [ -s "$opt_ml/output/failure" ]; then
    echo "train_local.sh: training failed (exit $status); $opt_ml/output/failure says:" >&2
    cat "$opt_ml/output/failure" >&2
    echo >&2
  else
    echo "train_local.sh: training failed (exit $status)" >&2
  fi
fi
exit "$status"
