"""The generation queue: ordering, overload, errors and cancellation, with plain Python jobs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from fncall.engine.queue import GenerationQueue
from fncall.errors import OverloadedError


def _counting(limit: int) -> object:
    def work(cancel: threading.Event) -> Iterator[int]:
        yield from range(limit)

    return work


async def test_items_arrive_in_order() -> None:
    queue = GenerationQueue()
    assert [item async for item in queue.submit(_counting(5))] == [0, 1, 2, 3, 4]


async def test_jobs_run_one_at_a_time_in_submission_order() -> None:
    queue = GenerationQueue()
    log: list[str] = []

    def job(name: str):
        def work(cancel: threading.Event) -> Iterator[str]:
            log.append(f"{name}-start")
            yield name
            log.append(f"{name}-end")

        return work

    first, second = queue.submit(job("a")), queue.submit(job("b"))
    results = await asyncio.gather(*(_drain(j) for j in (first, second)))
    assert results == [["a"], ["b"]]
    assert log == ["a-start", "a-end", "b-start", "b-end"]


async def _drain(job: object) -> list[object]:
    return [item async for item in job]  # type: ignore[attr-defined]


async def test_a_full_queue_raises_overloaded_with_retry_after() -> None:
    queue = GenerationQueue(max_waiting=1, retry_after_s=3.0)
    release = threading.Event()
    started = threading.Event()

    def blocking(cancel: threading.Event) -> Iterator[str]:
        started.set()
        release.wait()
        yield "done"

    running = queue.submit(blocking)
    await asyncio.to_thread(started.wait)
    waiting = queue.submit(_counting(1))  # one may wait
    with pytest.raises(OverloadedError) as caught:
        queue.submit(_counting(1))
    assert caught.value.retry_after == 3.0
    release.set()
    assert await _drain(running) == ["done"]
    assert await _drain(waiting) == [0]


async def test_errors_in_a_job_reach_the_consumer() -> None:
    queue = GenerationQueue()

    def failing(cancel: threading.Event) -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    job = queue.submit(failing)
    assert await job.__anext__() == 1
    with pytest.raises(ValueError, match="boom"):
        await job.__anext__()
    # the worker survives a failed job
    assert await _drain(queue.submit(_counting(2))) == [0, 1]


async def test_cancelling_the_consumer_stops_the_job() -> None:
    queue = GenerationQueue()
    produced: list[int] = []
    closed = threading.Event()

    def endless(cancel: threading.Event) -> Iterator[int]:
        try:
            n = 0
            while not cancel.is_set():
                produced.append(n)
                yield n
                n += 1
                cancel.wait(0.001)
        finally:
            closed.set()

    job = queue.submit(endless)

    receiving = asyncio.Event()

    async def consume() -> None:
        async for _ in job:
            receiving.set()

    task = asyncio.create_task(consume())
    await receiving.wait()
    await asyncio.sleep(0)  # the consumer is now waiting for its next item
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert job.cancel_event.is_set()
    assert await asyncio.to_thread(closed.wait, 10)
    # the worker is free again
    assert await _drain(queue.submit(_counting(1))) == [0]


async def test_a_job_cancelled_while_waiting_never_runs() -> None:
    queue = GenerationQueue()
    release = threading.Event()
    ran: list[str] = []

    def blocking(cancel: threading.Event) -> Iterator[str]:
        release.wait()
        yield "first"

    def never(cancel: threading.Event) -> Iterator[str]:
        ran.append("never")
        yield "never"

    first = queue.submit(blocking)
    skipped = queue.submit(never)
    skipped.cancel()
    release.set()
    assert await _drain(first) == ["first"]
    assert await _drain(skipped) == []
    assert ran == []
