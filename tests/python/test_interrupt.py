"""Ctrl-C during fit: the C++ run stops through its StopToken within a mini-batch and Python sees
KeyboardInterrupt (the GIL is released while C++ trains)."""

import signal
import subprocess
import sys
import time

SCRIPT = r"""
import sys, time, numpy as np, mlforge
X = np.random.RandomState(0).rand(200000, 50).astype(np.float32)
y = (X[:, 0] > 0.5).astype(int)
print("ready", flush=True)
t = time.time()
try:
    # Early stopping off: the fit must still be running when the signal comes, however fast it is.
    mlforge.LinearLearnerClassifier(epochs=100000, num_models=32, mini_batch_size=100,
                                    early_stopping_patience=100000).fit(X, y)
    print("finished", flush=True)
except KeyboardInterrupt:
    print(f"interrupted {time.time() - t:.2f}", flush=True)
"""


def test_ctrl_c_stops_training():
    p = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    t = time.time()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert out.startswith("interrupted"), out
    assert time.time() - t < 10
