#!/usr/bin/env bash
# A ctest that runs a Python script in the project's venv:
#   tests/python_test.sh NAME PROFILE SCRIPT [ARGS...]
# makes (or reuses) the venv of scripts/pyenv.sh PROFILE (sklearn or sdk) and runs SCRIPT ARGS with
# it. Exit status 77 (ctest's skip code, with the reason above it) when the venv cannot be made here.
set -uo pipefail
name=$1 profile=$2 script=$3
shift 3
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$(bash "$here/../scripts/pyenv.sh" "$profile")"
rc=$?
if [[ $rc -ne 0 ]]; then
  [[ $rc -eq 77 ]] && echo "$name: SKIPPED (no Python venv '$profile', see the reason above)"
  exit "$rc"
fi
exec "$py" "$script" "$@"
