import os

import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("MLFORGE_CLI", os.path.join(_REPO, "build", "cli", "mlforge"))
    if not os.access(path, os.X_OK):
        pytest.skip(f"no mlforge CLI at {path} (set MLFORGE_CLI)")
    return path


@pytest.fixture(scope="session")
def shared_data():
    path = os.environ.get("MLFORGE_SHARED_DATA", os.path.join(_REPO, "..", "shared", "data"))
    if not os.path.isdir(path):
        pytest.skip(f"no shared data at {path}")
    return path
