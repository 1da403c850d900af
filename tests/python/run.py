"""ctest `python_package`: installs the mlforge package into this venv (scripts/pyenv.sh python;
pip install --no-build-isolation --no-deps, building the extension incrementally in build-py/) and
runs the pytest files beside this script.

    run.py --mlforge BUILD/cli/mlforge --shared-data DIR [pytest args...]

The first build compiles the libraries the extension links, without CUDA unless CMAKE_ARGS asks
for it; later runs rebuild only what changed."""

import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
args = sys.argv[1:]
env = dict(os.environ)
rest = []
i = 0
while i < len(args):
    if args[i] == "--mlforge":
        env["MLFORGE_CLI"] = args[i + 1]
        i += 2
    elif args[i] == "--shared-data":
        env["MLFORGE_SHARED_DATA"] = args[i + 1]
        i += 2
    else:
        rest.append(args[i])
        i += 1

# The tests exercise the bindings and the estimators on the CPU (the CUDA twins have their own gpu
# tests in the main build), so the package is built without CUDA here unless CMAKE_ARGS says
# otherwise: nvcc was most of the 13 minutes of a cold build on 2 cores.
env.setdefault("CMAKE_ARGS", "-DMLFORGE_USE_CUDA=OFF")
cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
       "--disable-pip-version-check", repo]
print("python_package: " + " ".join(cmd), flush=True)
if subprocess.call(cmd, env=env, cwd=repo) != 0:
    print("python_package: pip install of the mlforge package failed", file=sys.stderr)
    sys.exit(1)
# Run from the tests folder so that `import mlforge` is the installed package, not python/.
sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", here] + rest,
                         env=env, cwd=here))
