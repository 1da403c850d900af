"""The server against the SageMaker Python SDK 2.x's own serializers and deserializers.

Serves two real SageMaker models from ../shared/data/artifacts with `mlforge serve` (the k-means
census model and the linear learner binary classifier) and sends them numpy data the way an SDK
Predictor would: every request body made by an SDK serializer (CSVSerializer, JSONSerializer,
JSONLinesSerializer, RecordSerializer), every response read by an SDK deserializer
(JSONDeserializer, JSONLinesDeserializer, CSVDeserializer, RecordDeserializer) with the Accept it
declares. Answers are checked against numpy on the artifacts' independently decoded arrays
(<name>.decoded.npz): nearest centroid and Euclidean distance for k-means, sigmoid(x.w + b) and
the calibrated threshold for the linear learner.

    sdk_compat.py --mlforge BIN --shared-data DIR
"""

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import numpy as np  # noqa: E402
from sagemaker.amazon.common import RecordDeserializer, RecordSerializer  # noqa: E402
from sagemaker.deserializers import CSVDeserializer, JSONDeserializer, JSONLinesDeserializer  # noqa: E402
from sagemaker.serializers import CSVSerializer, JSONLinesSerializer, JSONSerializer  # noqa: E402

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


class Server:
    """`mlforge serve` on a free loopback port; the port is read from its log."""

    def __init__(self, mlforge, model):
        self.log = tempfile.NamedTemporaryFile(prefix="sdk_compat_serve.", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [mlforge, "serve", "--model", model, "--port", "0", "--host", "127.0.0.1", "--workers", "2"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        self.port = None
        while time.time() < deadline and self.proc.poll() is None:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(self.log.name).read())
            if m:
                self.port = int(m.group(1))
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as r:
                        if r.status == 200:
                            return
                except (urllib.error.URLError, ConnectionError):
                    pass
            time.sleep(0.05)
        raise RuntimeError("the server did not come up:\n" + open(self.log.name).read())

    def invoke(self, body, content_type, accept):
        """POST /invocations; returns (status, content type, body bytes)."""
        if isinstance(body, io.IOBase):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/invocations", data=body, method="POST",
                                     headers={"Content-Type": content_type, "Accept": accept})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    def stop(self):
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        check(code == 0, f"server exit status after SIGTERM: {code}")
        os.unlink(self.log.name)


def accept_of(deserializer):
    a = deserializer.ACCEPT
    return a if isinstance(a, str) else ", ".join(a)


def serializers():
    """(name, serializer, how it wants the numpy matrix)."""
    return [
        ("CSVSerializer", CSVSerializer(), lambda x: x),
        ("JSONSerializer(ndarray)", JSONSerializer(), lambda x: x),
        ("JSONSerializer(instances)", JSONSerializer(),
         lambda x: {"instances": [{"features": row.tolist()} for row in x]}),
        ("JSONLinesSerializer", JSONLinesSerializer(), lambda x: [{"features": row.tolist()} for row in x]),
        ("RecordSerializer", RecordSerializer(), lambda x: x),
    ]


def read_answers(deserializer, ctype, body, keys):
    """Rows of [values of keys...] from any deserializer's output."""
    stream = io.BytesIO(body)
    out = deserializer.deserialize(stream, ctype)
    rows = []
    if isinstance(deserializer, RecordDeserializer):
        for rec in out:
            rows.append([list(rec.label[k].float32_tensor.values) for k in keys])
    elif isinstance(deserializer, JSONDeserializer):
        for obj in out["predictions"]:
            rows.append([obj[k] if isinstance(obj[k], list) else [obj[k]] for k in keys])
    elif isinstance(deserializer, JSONLinesDeserializer):
        for obj in out:
            rows.append([obj[k] if isinstance(obj[k], list) else [obj[k]] for k in keys])
    else:  # CSVDeserializer: list of rows of strings, one column per key
        for line in out:
            rows.append([[float(v)] for v in line])
    return rows


def ask(server, ser, shape, x, des, keys, what):
    """POSTs x serialized by ser (after shape) asking for des's content type; checks HTTP 200 and one
    answer per row. Returns (rows as read_answers gives them, raw body), or None after a failed check."""
    status, ctype, body = server.invoke(ser.serialize(shape(x)), ser.CONTENT_TYPE, accept_of(des))
    check(status == 200, f"{what}: HTTP {status}: {body[:200]!r}")
    if status != 200:
        return None
    rows = read_answers(des, ctype, body, keys)
    check(len(rows) == len(x), f"{what}: {len(rows)} answers for {len(x)} rows")
    return rows, body


def kmeans_case(mlforge, shared):
    name = "kmeans_census_k8_d7_with_state"
    npz = np.load(os.path.join(shared, "artifacts", name + ".decoded.npz"))
    centers = npz[[k for k in npz.files if k.startswith("model_algo-1/")][0]].astype(np.float64)
    k, d = centers.shape
    rng = np.random.default_rng(7)
    x = (centers[rng.integers(0, k, 60)] + rng.normal(0, 0.3, (60, d))).astype(np.float32)
    d2 = ((x.astype(np.float64)[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    want_cluster = d2.argmin(1)
    want_dist = np.sqrt(d2.min(1))

    server = Server(mlforge, os.path.join(shared, "artifacts", name + ".model.tar.gz"))
    try:
        deserializers = [JSONDeserializer(), JSONLinesDeserializer(), CSVDeserializer(), RecordDeserializer()]
        for sname, ser, shape in serializers():
            for des in deserializers:
                what = f"kmeans {sname} -> {type(des).__name__}"
                got = ask(server, ser, shape, x, des, ["closest_cluster", "distance_to_cluster"], what)
                if got is None:
                    continue
                rows, _ = got
                got_c = np.array([r[0][0] for r in rows], dtype=np.float64)
                got_d = np.array([r[1][0] for r in rows], dtype=np.float64)
                check(np.array_equal(got_c, want_cluster), f"{what}: closest_cluster differs from numpy")
                check(np.allclose(got_d, want_dist, rtol=1e-4, atol=1e-4), f"{what}: distance_to_cluster differs")
        # A wrong width is a 400 whose JSON body names the row and both widths.
        status, _, body = server.invoke(CSVSerializer().serialize(x[:, :3]), "text/csv", "application/json")
        check(status == 400, f"kmeans wrong width: HTTP {status}")
        msg = json.loads(body).get("error", "")
        check("3 feature column(s), but the model expects 7" in msg, f"kmeans wrong width message: {msg}")
    finally:
        server.stop()
    print(f"ok: kmeans ({name}, k={k}, d={d}): {len(serializers())} serializers x 4 deserializers agree with numpy")


def linear_learner_case(mlforge, shared):
    name = "linear_learner_binary_d5"
    npz = np.load(os.path.join(shared, "artifacts", name + ".decoded.npz"))
    w = npz[[f for f in npz.files if f.endswith("fc0_weight")][0]].astype(np.float64).reshape(-1)
    b = float(npz[[f for f in npz.files if f.endswith("fc0_bias")][0]].reshape(-1)[0])
    meta = json.load(open(os.path.join(shared, "artifacts", name + ".decoded.json")))
    members = meta["tar_members"][0]["zip_members"]
    threshold = [m["json"] for m in members if m["name"] == "additional-params.json"][0]["threshold"]
    rng = np.random.default_rng(11)
    x = rng.normal(0, 2, (50, w.size)).astype(np.float32)
    score = 1 / (1 + np.exp(-(x.astype(np.float64) @ w + b)))
    label = (score > threshold).astype(np.float64)

    server = Server(mlforge, os.path.join(shared, "artifacts", name + ".model.tar.gz"))
    try:
        for sname, ser, shape in serializers():
            for des in [JSONDeserializer(), JSONLinesDeserializer(), RecordDeserializer()]:
                what = f"linear-learner {sname} -> {type(des).__name__}"
                got = ask(server, ser, shape, x, des, ["score", "predicted_label"], what)
                if got is None:
                    continue
                rows, body = got
                got_s = np.array([r[0][0] for r in rows])
                got_l = np.array([r[1][0] for r in rows])
                check(np.allclose(got_s, score, rtol=1e-4, atol=1e-6), f"{what}: score differs from numpy")
                check(np.array_equal(got_l, label), f"{what}: predicted_label differs")
                if isinstance(des, JSONDeserializer):
                    check(isinstance(json.loads(body)["predictions"][0]["predicted_label"], int),
                          f"{what}: predicted_label is not a JSON integer")
        # The linear learner endpoint answers no CSV: 406 naming what it does answer.
        status, _, body = server.invoke(CSVSerializer().serialize(x), "text/csv", accept_of(CSVDeserializer()))
        check(status == 406, f"linear-learner Accept text/csv: HTTP {status}")
    finally:
        server.stop()
    print(f"ok: linear-learner ({name}, threshold {threshold:.4f}): every serializer x JSON/JSON lines/recordIO "
          "deserializer agrees with numpy")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlforge", required=True)
    ap.add_argument("--shared-data", required=True)
    a = ap.parse_args()
    if not os.path.isdir(os.path.join(a.shared_data, "artifacts")):
        print(f"SKIP: no shared data at {a.shared_data} (the real SageMaker artifacts)")
        return 77
    import sagemaker
    print(f"sagemaker {sagemaker.__version__}, numpy {np.__version__}")
    kmeans_case(a.mlforge, a.shared_data)
    linear_learner_case(a.mlforge, a.shared_data)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
