"""deskml.Session: results against the CLI and PyTorch, zero-copy arrays both ways, errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

import deskml


def batch(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 30), dtype=np.float32)


def cli_run(binary, model, name, array, tmp_path):
    """Runs `deskml run` on one input and returns its outputs."""
    np.save(tmp_path / "in.npy", array)
    out = tmp_path / "out"
    subprocess.run([str(binary), "run", str(model), "--input", f"{name}={tmp_path / 'in.npy'}", "--output-dir",
                    str(out)], check=True, capture_output=True)
    return {p.stem: np.load(p) for p in out.glob("*.npy")}


def test_matches_pytorch_and_the_cli(mlp, features, logits, deskml_binary, tmp_path):
    session = deskml.Session(mlp / "model.onnx")
    out = session.run({"features": features})
    assert list(out) == ["logits"]
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-3, atol=1e-4)  # PyTorch's own answer
    x = batch(64, seed=3)
    cli = cli_run(deskml_binary, mlp / "model.onnx", "features", x, tmp_path)
    mine = session.run({"features": x})["logits"]
    assert mine.shape == (64, 2) and mine.dtype == np.float32
    np.testing.assert_allclose(mine, cli["logits"], rtol=1e-5, atol=1e-6)


def test_describes_inputs_and_outputs(mlp):
    session = deskml.Session(str(mlp / "model.onnx"), threads=1, optimization_level=1, warmup=False)
    (i,), (o,) = session.inputs, session.outputs
    assert (i.name, i.dtype, i.shape) == ("features", "float32", (None, 30))
    assert (o.name, o.dtype, o.shape) == ("logits", "float32", (None, 2))
    assert session.threads == 1
    assert "features" in repr(i)


def test_inputs_are_borrowed_and_outputs_wrap_engine_memory(identity_model):
    session = deskml.Session(identity_model)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = session.run({"x": x})["y"]
    # Identity's output is its input: same memory, so neither direction copied.
    assert np.shares_memory(x, y)
    np.testing.assert_array_equal(x, y)

    # Outputs are views over the engine's tensors, kept alive by a capsule.
    mlp_like = session.run({"x": np.ones((2, 4), np.float32)})["y"]
    assert not mlp_like.flags.owndata and mlp_like.base is not None


def test_layouts_that_cannot_be_borrowed_are_copied(identity_model):
    session = deskml.Session(identity_model)
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    strided = np.arange(24, dtype=np.float32).reshape(3, 8)[:, ::2]
    swapped = np.arange(12, dtype=">f4").reshape(3, 4)
    for x in (fortran, strided, swapped):
        y = session.run({"x": x})["y"]
        assert not np.shares_memory(x, y)
        assert y.flags.c_contiguous and y.dtype == np.float32
        np.testing.assert_array_equal(y, x)


def test_an_output_over_a_read_only_input_is_read_only(identity_model):
    session = deskml.Session(identity_model)
    x = np.ones((2, 4), np.float32)
    x.setflags(write=False)
    y = session.run({"x": x})["y"]
    assert np.shares_memory(x, y) and not y.flags.writeable


def test_fresh_outputs_are_writeable(mlp, features):
    out = deskml.Session(mlp / "model.onnx").run({"features": features})["logits"]
    assert out.flags.writeable
    out[0, 0] = 7.0  # the caller's own memory now


def test_the_array_outlives_everything_else(mlp, features):
    session = deskml.Session(mlp / "model.onnx")
    out = session.run({"features": features.copy()})["logits"]
    expected = out.copy()
    del session
    import gc

    gc.collect()
    np.testing.assert_array_equal(out, expected)


def test_bad_inputs_raise_with_the_input_named(mlp, features):
    session = deskml.Session(mlp / "model.onnx")
    with pytest.raises(deskml.InvalidArgumentError, match="features") as e:
        session.run({"features": features.astype(np.float64)})
    assert e.value.code == "InvalidArgument" and isinstance(e.value, ValueError)
    with pytest.raises(deskml.InvalidArgumentError, match="features"):
        session.run({"features": np.zeros((1, 29), np.float32)})
    with pytest.raises(deskml.InvalidArgumentError, match="nope"):
        session.run({"features": features, "nope": features})
    with pytest.raises(deskml.InvalidArgumentError, match="not provided"):
        session.run({})
    with pytest.raises(deskml.InvalidArgumentError, match="mapping"):
        session.run([features])
    with pytest.raises(deskml.InvalidArgumentError, match="complex"):
        session.run({"features": np.zeros((1, 30), np.complex64)})
    with pytest.raises(deskml.InvalidArgumentError, match="str or bytes, not object"):
        session.run({"features": object()})


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(deskml.NotFoundError, match="nowhere.onnx"):
        deskml.Session(tmp_path / "nowhere.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(deskml.Error):
        deskml.Session(tmp_path / "broken.onnx")
    with pytest.raises(deskml.InvalidArgumentError):
        deskml.Session(tmp_path / "x.onnx", optimization_level=5)


def test_the_gil_is_released_while_a_session_runs(mlp):
    """Another Python thread keeps running while run() computes."""
    import threading
    import time

    session = deskml.Session(mlp / "model.onnx", threads=1)
    x = batch(200_000)
    spins = 0
    running = threading.Event()
    done = threading.Event()

    def work():
        running.set()
        session.run({"features": x})
        done.set()

    t = threading.Thread(target=work)
    t.start()
    running.wait()
    start = time.perf_counter()
    while not done.is_set():
        spins += 1
    elapsed = time.perf_counter() - start
    t.join()
    print(f"\nthe main thread spun {spins} times during a {elapsed * 1000:.1f} ms run", file=sys.stderr)
    assert spins > 1000


def test_log_level_is_settable():
    deskml.set_log_level("warn")
    with pytest.raises(deskml.InvalidArgumentError, match="loud"):
        deskml.set_log_level("loud")
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError too
        deskml.set_log_level("")
    deskml.set_log_level(os.environ.get("DESKML_LOG_LEVEL", "info"))
