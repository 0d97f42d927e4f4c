"""deskml.Engine from synchronous code: repositories, files, submit callbacks, cancellation, errors."""
import sys
import threading
import time

import numpy as np
import pytest

import deskml


def batch(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 30), dtype=np.float32)


@pytest.fixture
def engine(mlp):
    with deskml.Engine(threads=2, poll_interval=0) as e:
        e.add_model("mlp", mlp / "model.onnx")
        yield e


def test_repository_infer_matches_the_session(repository, mlp, features, logits):
    x = batch(16, seed=1)
    with deskml.Engine(repository, poll_interval=0) as e:
        out = e.infer("mlp", {"features": features})
        np.testing.assert_allclose(out["logits"], logits, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(e.infer("mlp", {"features": x}, version=1, timeout=30, priority=2,
                                           request_id="py-1", use_cache=False)["logits"],
                                   deskml.Session(mlp / "model.onnx").run({"features": x})["logits"],
                                   rtol=1e-5, atol=1e-6)
        md = e.metadata("mlp")
        assert md["versions"] == [1] and md["inputs"][0].shape == (None, 30)
        (row,) = [m for m in e.models() if m["name"] == "mlp"]
        assert row["state"] == "READY" and row["version"] == 1
        e.unload("mlp")
        e.load("mlp", version=1)
        assert "deskml_requests_total" in e.metrics()
        assert e.threads >= 1
    assert e.closed
    with pytest.raises(deskml.UnavailableError, match="closed"):
        e.infer("mlp", {"features": features})


def test_submit_calls_back_once_on_a_runtime_thread(engine, features, logits):
    answered = threading.Event()
    calls = []

    def done(outputs, error):
        calls.append((outputs, error, threading.get_ident()))
        answered.set()

    request = engine.submit("mlp", {"features": features}, done, request_id="cb-1")
    assert request.id == "cb-1" and not request.cancelled
    assert answered.wait(30)
    time.sleep(0.05)
    (outputs, error, thread), = calls
    assert error is None
    np.testing.assert_allclose(outputs["logits"], logits, rtol=1e-3, atol=1e-4)
    request.cancel()  # answered already: nothing happens
    assert len(calls) == 1


def test_submit_holds_the_borrowed_array_until_it_is_done(engine):
    x = batch(200_000)
    before = sys.getrefcount(x)
    answered = threading.Event()
    request = engine.submit("mlp", {"features": x}, lambda o, e: answered.set())
    assert sys.getrefcount(x) > before  # the request keeps the array itself alive: no copy
    assert answered.wait(60)
    for _ in range(1000):
        if sys.getrefcount(x) == before:
            break
        time.sleep(0.001)
    assert sys.getrefcount(x) == before
    del request


def test_cancel_answers_a_queued_request_at_once(engine, features):
    blocker_done = threading.Event()
    engine.submit("mlp", {"features": batch(300_000)}, lambda o, e: blocker_done.set())
    got = []
    request = engine.submit("mlp", {"features": features}, lambda o, e: got.append((o, e)))
    request.cancel()
    assert request.cancelled
    (outputs, error), = got  # answered on this thread, before cancel() returned
    assert outputs is None and isinstance(error, deskml.CancelledError)
    assert not blocker_done.is_set()
    assert blocker_done.wait(60)


def test_a_timeout_raises_deadline_exceeded(engine, features):
    engine.submit("mlp", {"features": batch(300_000)}, lambda o, e: None)
    with pytest.raises(deskml.DeadlineExceededError, match="deadline") as e:
        engine.infer("mlp", {"features": features}, timeout=0.001)
    assert isinstance(e.value, TimeoutError)


def test_refusals_raise_at_once_and_never_call_back(engine, features):
    calls = []
    with pytest.raises(deskml.NotFoundError, match="no_such_model"):
        engine.submit("no_such_model", {"features": features}, lambda o, e: calls.append(1))
    engine.load("mlp")
    with pytest.raises(deskml.InvalidArgumentError, match="features"):
        engine.submit("mlp", {"features": features.astype(np.int64)}, lambda o, e: calls.append(1))
    with pytest.raises(deskml.NotFoundError, match="version 4"):
        engine.infer("mlp", {"features": features}, version=4)
    with pytest.raises(deskml.InvalidArgumentError, match="callable"):
        engine.submit("mlp", {"features": features}, None)
    with pytest.raises(deskml.InvalidArgumentError, match="timeout"):
        engine.infer("mlp", {"features": features}, timeout=-1)
    time.sleep(0.05)
    assert calls == []


def test_configuration_errors(mlp, tmp_path):
    with deskml.Engine(poll_interval=0) as e:
        with pytest.raises(deskml.InvalidArgumentError, match="bogus_key"):
            e.add_model("m", mlp / "model.onnx", config="bogus_key = 1")
        e.add_model("batched", mlp / "model.onnx", config="max_batch_size = 8")
        assert e.metadata("batched")["max_batch_size"] == 8
    with pytest.raises(deskml.Error):
        deskml.Engine(tmp_path / "no_such_folder")


def test_a_callback_that_raises_is_reported_as_unraisable(engine, features, monkeypatch):
    reported = []
    reported_event = threading.Event()

    def hook(unraisable):
        reported.append(unraisable.exc_value)
        reported_event.set()

    monkeypatch.setattr(sys, "unraisablehook", hook)

    def bad(outputs, error):
        raise RuntimeError("callback failed on purpose")

    engine.submit("mlp", {"features": features}, bad)
    assert reported_event.wait(30)
    assert "on purpose" in str(reported[0])
    assert engine.infer("mlp", {"features": features})["logits"].shape == (1, 2)


def test_closing_answers_queued_requests(mlp, features):
    e = deskml.Engine(poll_interval=0)
    e.add_model("mlp", mlp / "model.onnx")
    answers = []
    for _ in range(3):
        e.submit("mlp", {"features": batch(100_000)}, lambda o, err: answers.append(err))
    e.close()
    assert len(answers) == 3
    e.close()  # twice is fine
