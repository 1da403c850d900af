#!/usr/bin/env bash
# Sends a file to a running server's /invocations, like the bring-your-own-container examples'
# predict.sh, and prints the response body.
#
#   container/predict.sh FILE [CONTENT_TYPE [ACCEPT]]
#
# CONTENT_TYPE  default from FILE's extension: .csv text/csv, .json application/json,
#               .jsonl/.jsonlines application/jsonlines, .pbr/.rec/.recordio/.protobuf
#               application/x-recordio-protobuf
# ACCEPT        default application/json
# Environment: HOST (default localhost), PORT (default $SAGEMAKER_BIND_TO_PORT, else 8080),
# CURL_ARGS (extra curl arguments, e.g. "-v" to see the headers and status).
# Exit status: 0 on a 2xx answer; otherwise curl's (e.g. 7: no server listening) or 22 for an
# HTTP error, whose body (the server's reason) is printed on stderr.
set -euo pipefail

die() { echo "predict.sh: $*" >&2; exit 2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
file=$1 content_type=${2:-} accept=${3:-application/json}
[ -f "$file" ] || die "$file is not a file"
if [ -z "$content_type" ]; then
  case "${file,,}" in
    *.csv) content_type=text/csv ;;
    *.json) content_type=application/json ;;
    *.jsonl|*.jsonlines) content_type=application/jsonlines ;;
    *.pbr|*.rec|*.recordio|*.protobuf) content_type=application/x-recordio-protobuf ;;
    *) die "cannot tell the content type of $file from its extension; give it as the second argument" ;;
  esac
fi
command -v curl >/dev/null 2>&1 || die "curl is not installed"
url="http://${HOST:-localhost}:${PORT:-${SAGEMAKER_BIND_TO_PORT:-8080}}/invocations"
body=$(mktemp "${TMPDIR:-/tmp}/predict.XXXXXX")
trap 'rm -f "$body"' EXIT
# shellcheck disable=SC2086
code=$(curl -sS ${CURL_ARGS:-} -o "$body" -w '%{http_code}' --data-binary @"$file" \
  -H "Content-Type: $content_type" -H "Accept: $accept" "$url") || { s=$?; echo "predict.sh: no answer from $url (curl exit $s)" >&2; exit "$s"; }
if [ "${code:0:1}" = 2 ]; then
  cat "$body"
  exit 0
fi
echo "predict.sh: HTTP $code from $url:" >&2
cat "$body" >&2
echo >&2
exit 22
