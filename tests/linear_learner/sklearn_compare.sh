#!/usr/bin/env bash
# ctest linear_learner_vs_sklearn: makes the Python venv (scripts/pyenv.sh; its exit status 77 = skip
# when PyPI cannot be reached) and runs sklearn_compare.py with the arguments given here.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$(bash "$here/../../scripts/pyenv.sh")"
rc=$?
if [[ $rc -ne 0 ]]; then
  [[ $rc -eq 77 ]] && echo "linear_learner_vs_sklearn: SKIPPED (no Python venv with scikit-learn, see the reason above)"
  exit "$rc"
fi
exec "$py" "$here/sklearn_compare.py" "$@"
