#!/usr/bin/env bash
# Every source that tests an MLFORGE_HAVE_* flag in the preprocessor includes core/build_config.h
# itself. Without it the flag is undefined, `#if MLFORGE_HAVE_CUDA` is silently false, and a
# file's "built without CUDA" stubs can replace the real CUDA code at link time (the FM GPU step
# was lost that way until the first GPU run found it).
#   build_config_include_test.sh SOURCE_ROOT
set -euo pipefail
root=${1:?usage: build_config_include_test.sh SOURCE_ROOT}
cd "$root"
bad=0
while IFS= read -r f; do
  if ! grep -q '#include "core/build_config.h"' "$f"; then
    echo "$f: uses MLFORGE_HAVE_* in #if but does not #include \"core/build_config.h\""
    bad=1
  fi
done < <(grep -rlE --include='*.cc' --include='*.h' --include='*.cu' --include='*.cuh' \
           '^[[:space:]]*#[[:space:]]*(if|elif).*MLFORGE_HAVE_' \
           core io comm kernels algos container cli python bench tests fuzz 2>/dev/null | grep -v '^core/build_config.h' || true)
[ "$bad" = 0 ] && echo "every MLFORGE_HAVE_* user includes core/build_config.h"
exit "$bad"
