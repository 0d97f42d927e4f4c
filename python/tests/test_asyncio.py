"""deskml.Engine from asyncio: concurrent awaits, loop latency, streams, cancellation."""
import asyncio
import contextlib
import re
import statistics
import sys
import time

import numpy as np
import pytest

import deskml


def batch(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 30), dtype=np.float32)


def cancelled_count(engine: deskml.Engine, model: str = "mlp") -> int:
    m = re.search(r'deskml_request_failures_total\{model="%s",reason="Cancelled"\} (\d+)' % model, engine.metrics())
    return int(m.group(1)) if m else 0


@pytest.fixture
def engine(mlp):
    with deskml.Engine(threads=2, poll_interval=0) as e:
        e.add_model("mlp", mlp / "model.onnx")
        e.add_model("batched", mlp / "model.onnx",
                    config="max_batch_size = 64\n[dynamic_batching]\nmax_queue_delay_us = 200\n")
        e.load("mlp")
        e.load("batched")
        yield e


async def measure_loop_lag(stop: asyncio.Event, lags: list, period: float = 0.001) -> None:
    """How late a 1 ms sleep wakes up, over and over: the event loop's responsiveness."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(period)
        lags.append(loop.time() - start - period)


def summary(lags: list) -> str:
    ms = sorted(x * 1000 for x in lags)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{len(ms)} ticks, lag p50 {statistics.median(ms):.3f} ms, p99 {p99:.3f} ms, max {ms[-1]:.3f} ms"


@pytest.mark.parametrize("model,rows", [("mlp", 1), ("batched", 1), ("mlp", 1000)])
def test_100_concurrent_awaits_leave_the_loop_responsive(engine, mlp, model, rows):
    inputs = [batch(rows, seed=i) for i in range(100)]
    session = deskml.Session(mlp / "model.onnx")
    expected = [session.run({"features": x})["logits"] for x in inputs]

    async def main():
        stop = asyncio.Event()
        idle = []
        ticker = asyncio.create_task(measure_loop_lag(stop, idle))
        await asyncio.sleep(0.1)
        stop.set()
        await ticker

        stop = asyncio.Event()
        busy = []
        ticker = asyncio.create_task(measure_loop_lag(stop, busy))
        start = time.perf_counter()
        results = await asyncio.gather(*(engine.infer_async(model, {"features": x}) for x in inputs))
        elapsed = time.perf_counter() - start
        stop.set()
        await ticker
        return results, elapsed, idle, busy

    results, elapsed, idle, busy = asyncio.run(main())
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got["logits"], want, rtol=1e-5, atol=1e-6)
    print(f"\n[{model}] 100 concurrent awaits of {rows} row(s) each: {elapsed * 1000:.1f} ms; "
          f"loop idle: {summary(idle)}; loop during the awaits: {summary(busy)}", file=sys.stderr)
    assert len(busy) >= 1  # the loop ran other tasks while the requests were in flight


def test_cancelling_the_task_cancels_the_request(engine, features):
    async def main():
        blocker = asyncio.create_task(engine.infer_async("mlp", {"features": batch(300_000)}))
        await asyncio.sleep(0)  # submitted
        waiting = asyncio.create_task(engine.infer_async("mlp", {"features": features}))
        await asyncio.sleep(0)
        before = cancelled_count(engine)
        start = time.perf_counter()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        took = time.perf_counter() - start
        assert not blocker.done()  # the cancelled request did not wait for the one ahead of it
        assert cancelled_count(engine) == before + 1
        out = await blocker
        assert out["logits"].shape == (300_000, 2)
        return took

    took = asyncio.run(main())
    print(f"\ncancelled a queued request in {took * 1000:.3f} ms", file=sys.stderr)


def test_wait_for_timeouts_cancel_the_request(engine, features):
    async def main():
        blocker = asyncio.create_task(engine.infer_async("mlp", {"features": batch(300_000)}))
        await asyncio.sleep(0)
        before = cancelled_count(engine)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(engine.infer_async("mlp", {"features": features}), 0.001)
        assert cancelled_count(engine) == before + 1
        await blocker

    asyncio.run(main())


def test_deskml_timeouts_raise_deadline_exceeded(engine, features):
    async def main():
        blocker = asyncio.create_task(engine.infer_async("mlp", {"features": batch(300_000)}))
        await asyncio.sleep(0)
        with pytest.raises(deskml.DeadlineExceededError):
            await engine.infer_async("mlp", {"features": features}, timeout=0.001)
        await blocker

    asyncio.run(main())


def test_errors_raise_at_the_await(engine, features):
    async def main():
        with pytest.raises(deskml.NotFoundError, match="nope"):
            await engine.infer_async("nope", {"features": features})
        with pytest.raises(deskml.InvalidArgumentError, match="features"):
            await engine.infer_async("mlp", {"features": features[:, :5]})

    asyncio.run(main())


def test_stream_yields_in_order(engine, mlp):
    inputs = [batch(r, seed=r) for r in (1, 7, 3, 64, 2, 5, 9, 1, 30, 4)]
    session = deskml.Session(mlp / "model.onnx")

    async def agen():
        for x in inputs:
            await asyncio.sleep(0)
            yield {"features": x}

    async def main():
        from_list = [o async for o in engine.stream("batched", ({"features": x} for x in inputs), max_in_flight=4)]
        from_agen = [o async for o in engine.stream("mlp", agen(), max_in_flight=3)]
        return from_list, from_agen

    from_list, from_agen = asyncio.run(main())
    for outputs in (from_list, from_agen):
        assert len(outputs) == len(inputs)
        for x, got in zip(inputs, outputs):
            np.testing.assert_allclose(got["logits"], session.run({"features": x})["logits"], rtol=1e-5, atol=1e-6)


def test_leaving_a_stream_early_cancels_what_is_in_flight(engine):
    async def main():
        before = cancelled_count(engine)
        # A small first item, then big ones: when the first answer is back, the seven
        # behind it still have tens of milliseconds of work queued, even on a loaded
        # machine where this loop is slow to resume.
        items = ({"features": batch(1 if i == 0 else 200_000, seed=i)} for i in range(20))
        async with contextlib.aclosing(engine.stream("mlp", items, max_in_flight=8)) as stream:
            async for first in stream:
                assert first["logits"].shape == (1, 2)
                break
        return cancelled_count(engine) - before

    cancelled = asyncio.run(main())
    print(f"\nleaving the stream cancelled {cancelled} requests in flight", file=sys.stderr)
    assert cancelled >= 1


def test_cancelling_a_task_consuming_a_stream_cancels_the_stream(engine):
    async def consume(seen):
        # As above: a small first item, then big ones, so work is still queued when the
        # first answer is seen and the task cancelled, even on a loaded machine.
        items = ({"features": batch(1 if i == 0 else 200_000, seed=i)} for i in range(20))
        async for out in engine.stream("mlp", items):
            seen.append(out)

    async def main():
        before = cancelled_count(engine)
        seen = []
        task = asyncio.create_task(consume(seen))
        while not seen:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return cancelled_count(engine) - before

    assert asyncio.run(main()) >= 1


def test_a_bad_item_ends_the_stream_with_its_error(engine, features):
    async def main():
        items = [{"features": features}, {"features": features.astype(np.float64)}, {"features": features}]
        seen = []
        with pytest.raises(deskml.InvalidArgumentError, match="features"):
            async for out in engine.stream("mlp", items, max_in_flight=1):
                seen.append(out)
        assert len(seen) == 1

    asyncio.run(main())
