"""Python threads calling one Session (and one Engine) in parallel: the GIL is released while deskml computes.

Prints the measured throughput scaling; asserts only correctness (timings depend on the machine)."""
import os
import sys
import threading
import time

import numpy as np

import deskml


def batch(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 30), dtype=np.float32)


def throughput(call, inputs, threads: int, seconds: float = 1.0):
    """Runs call(x) on `threads` threads for about `seconds`; returns (calls per second, outputs of the last calls)."""
    stop = threading.Event()
    counts = [0] * threads
    last = [None] * threads
    errors = []

    def worker(i):
        x = inputs[i]
        try:
            while not stop.is_set():
                last[i] = call(x)
                counts[i] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    assert not errors, errors
    return sum(counts) / elapsed, last


def cores() -> int:
    return len(os.sched_getaffinity(0))


def test_four_threads_share_one_session(mlp):
    # One thread per run inside deskml, so the parallelism measured is the callers'.
    session = deskml.Session(mlp / "model.onnx", threads=1)
    inputs = [batch(8192, seed=i) for i in range(4)]
    expected = [session.run({"features": x})["logits"] for x in inputs]
    single, _ = throughput(lambda x: session.run({"features": x}), inputs, 1)
    four, last = throughput(lambda x: session.run({"features": x}), inputs, 4)
    for got, want in zip(last, expected):
        np.testing.assert_array_equal(got["logits"], want)
    print(f"\nSession.run, 8192 rows: 1 thread {single:.0f} runs/s, 4 threads {four:.0f} runs/s "
          f"({four / single:.2f}x on {cores()} cores)", file=sys.stderr)


def test_four_threads_share_one_engine(mlp):
    with deskml.Engine(threads=4, poll_interval=0) as engine:
        engine.add_model("mlp", mlp / "model.onnx", config="instances = 4\nthreads = 1\n")
        engine.load("mlp")
        inputs = [batch(8192, seed=i) for i in range(4)]
        session = deskml.Session(mlp / "model.onnx", threads=1)
        expected = [session.run({"features": x})["logits"] for x in inputs]
        single, _ = throughput(lambda x: engine.infer("mlp", {"features": x}), inputs, 1)
        four, last = throughput(lambda x: engine.infer("mlp", {"features": x}), inputs, 4)
        for got, want in zip(last, expected):
            np.testing.assert_allclose(got["logits"], want, rtol=1e-5, atol=1e-6)
        print(f"\nEngine.infer, 8192 rows, 4 instances: 1 thread {single:.0f} requests/s, 4 threads {four:.0f} "
              f"requests/s ({four / single:.2f}x on {cores()} cores)", file=sys.stderr)
