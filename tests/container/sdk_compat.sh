#!/usr/bin/env bash
# ctest server_sdk_compat: makes the SageMaker SDK venv (scripts/pyenv.sh sdk; exit 77 = skip when
# PyPI cannot be reached) and runs sdk_compat.py with the arguments given here.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$(bash "$here/../../scripts/pyenv.sh" sdk)"
rc=$?
if [[ $rc -ne 0 ]]; then
  [[ $rc -eq 77 ]] && echo "server_sdk_compat: SKIPPED (no Python venv with the SageMaker SDK, see the reason above)"
  exit "$rc"
fi
exec "$py" "$here/sdk_compat.py" "$@"
