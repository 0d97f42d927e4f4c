"""One input, every way into deskml: the C API, Python, TypeScript, HTTP (JSON and binary) and the
CLI must all give the same output, value for value.

The model is the reference MLP (make models). Its input is a fixed, seeded float32 [5, 30] batch.
TypeScript goes over binary HTTP, JSON HTTP, NDJSON, the WebSocket and the stdio sidecar.
The CLI's `deskml run` is the reference; every other path must return exactly the same float32
values: the engine and its kernels are the same, and every transport carries float32 exactly
(JSON numbers are printed with enough digits to round-trip, the binary extension and the C API
carry the bytes).

Environment (CTest sets it): DESKML_BINARY, DESKML_MODELS, DESKML_CAPI_RUN (tests/cross_binding/
capi_run.c built), DESKML_JS (the built TypeScript package folder, js/), PYTHONPATH reaching
build/python.
"""
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("DESKML_BINARY", ROOT / "build/bin/deskml"))
MODELS = Path(os.environ.get("DESKML_MODELS", ROOT / "build/models"))
CAPI_RUN = Path(os.environ.get("DESKML_CAPI_RUN", ROOT / "build/bin/deskml_capi_run"))
JS = Path(os.environ.get("DESKML_JS", ROOT / "js"))
HERE = Path(__file__).resolve().parent

ROWS, COLS = 5, 30


@pytest.fixture(scope="module")
def model() -> Path:
    path = MODELS / "mlp" / "model.onnx"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make models`")
    return path


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    return np.random.default_rng(20261203).normal(size=(ROWS, COLS)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model, features) -> np.ndarray:
    """The CLI: deskml run MODEL -i features=X.npy -o DIR."""
    work = tmp_path_factory.mktemp("cli")
    np.save(work / "features.npy", features)
    subprocess.run([BINARY, "run", model, "-i", f"features={work / 'features.npy'}", "-o", work / "out"],
                   check=True, capture_output=True, timeout=120)
    logits = np.load(work / "out" / "logits.npy")
    assert logits.shape == (ROWS, 2) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    return logits


@pytest.fixture(scope="module")
def repository(tmp_path_factory, model) -> Path:
    """A model repository holding the MLP as version 1 of model 'mlp'."""
    repo = tmp_path_factory.mktemp("repo")
    (repo / "mlp" / "1").mkdir(parents=True)
    shutil.copy(model, repo / "mlp" / "1" / "model.onnx")
    return repo


@pytest.fixture(scope="module")
def server(repository):
    """deskml serve on the repository; yields (base URL, token)."""
    repo = repository
    env = dict(os.environ, DESKML_LOG_LEVEL="warn")
    proc = subprocess.Popen([BINARY, "serve", "--models", repo, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        ready = json.loads(proc.stdout.readline())
        yield f"http://127.0.0.1:{ready['port']}", ready["token"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def same(name: str, got: np.ndarray, reference: np.ndarray) -> None:
    got = np.asarray(got, dtype=np.float32).reshape(reference.shape)
    diff = float(np.max(np.abs(got - reference)))
    print(f"{name}: max |difference| from the CLI = {diff:g}")
    np.testing.assert_array_equal(got, reference, err_msg=f"{name} differs from `deskml run`")


def test_c_api(tmp_path, model, features, reference):
    raw = tmp_path / "features.f32"
    raw.write_bytes(features.astype("<f4").tobytes())
    out = subprocess.run([CAPI_RUN, model, "features", "logits", raw, str(ROWS), str(COLS)], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    values = [[float.fromhex(v) for v in line.split()] for line in out.splitlines()]
    same("C API", np.array(values), reference)


def test_python(model, repository, features, reference):
    import deskml
    same("Python Session", deskml.Session(str(model)).run({"features": features})["logits"], reference)
    with deskml.Engine(str(repository), threads=0) as engine:
        same("Python Engine", engine.infer("mlp", {"features": features})["logits"], reference)


def post(url: str, token: str, body: bytes, headers: dict | None = None):
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", **(headers or {})})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read(), response.headers


def test_http_json(server, features, reference):
    base, token = server
    body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [ROWS, COLS],
                                   "data": features.ravel().tolist()}]}).encode()
    answer, _ = post(f"{base}/v2/models/mlp/infer", token, body, {"Content-Type": "application/json"})
    (output,) = json.loads(answer)["outputs"]
    assert output["name"] == "logits" and output["datatype"] == "FP32" and output["shape"] == [ROWS, 2]
    same("HTTP JSON", np.array(output["data"], dtype=np.float64).astype(np.float32), reference)


def test_http_binary(server, features, reference):
    base, token = server
    header = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [ROWS, COLS],
                                     "parameters": {"binary_data_size": features.nbytes}}],
                         "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}).encode()
    answer, headers = post(f"{base}/v2/models/mlp/infer", token, header + features.astype("<f4").tobytes(),
                           {"Inference-Header-Content-Length": str(len(header)),
                            "Content-Type": "application/octet-stream"})
    length = int(headers["Inference-Header-Content-Length"])
    (output,) = json.loads(answer[:length])["outputs"]
    size = output["parameters"]["binary_data_size"]
    same("HTTP binary", np.frombuffer(answer[length:length + size], dtype="<f4"), reference)


def test_typescript(server, repository, features, reference, tmp_path):
    if not (JS / "dist").exists():
        pytest.fail(f"{JS / 'dist'} is missing: run `make js`")
    base, token = server
    raw = tmp_path / "features.f32"
    raw.write_bytes(features.astype("<f4").tobytes())
    out = subprocess.run(["node", HERE / "ts_infer.mjs", JS / "dist", base, token, raw, str(ROWS), str(COLS),
                          repository, BINARY],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    answers = json.loads(out)
    assert len(answers) == 5, answers
    for transport, values in answers.items():
        raw_values = bytes.fromhex(values)
        same(f"TypeScript {transport}", np.frombuffer(raw_values, dtype="<f4"), reference)
