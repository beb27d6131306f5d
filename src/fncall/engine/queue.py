"""A bounded queue of generation jobs in front of the one thread that owns the model.

llama.cpp is not thread-safe, and one CPU model serves one request at a time at full speed anyway, so
requests wait their turn here. A full queue refuses at once (OverloadedError -> HTTP 429) instead of
letting latency grow without bound, and a consumer that goes away (client disconnect) cancels its job
so the model stops within one token.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fncall.errors import OverloadedError

T = TypeVar("T")

JobWork = Callable[[threading.Event], Iterable[T]]
"""What a job runs on the worker thread: given its cancel flag, an iterable of items for the consumer."""


class _Done:
    """Marks the end of a job's items."""


@dataclass
class _Failure:
    error: BaseException


@dataclass
class Job(Generic[T]):
    """A submitted job and the async iterator of its items (consumed on the submitting event loop)."""

    work: JobWork[T]
    loop: asyncio.AbstractEventLoop
    cancel_event: threading.Event = field(default_factory=threading.Event)
    _items: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    _finished: bool = False

    def cancel(self) -> None:
        """Stop the job: skipped if still waiting, stopped within one token if running."""
        self.cancel_event.set()

    def __aiter__(self) -> Job[T]:
        return self

    async def __anext__(self) -> T:
        if self._finished:
            raise StopAsyncIteration
        try:
            item = await self._items.get()
        except asyncio.CancelledError:
            self.cancel()
            raise
        if isinstance(item, _Done):
            self._finished = True
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            self._finished = True
            raise item.error
        return item

    async def aclose(self) -> None:
        self.cancel()
        self._finished = True

    def _deliver(self, item: object) -> bool:
        """Hand an item to the consumer's loop; False when that loop is gone."""
        try:
            self.loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:
            self.cancel()
            return False
        return True


class GenerationQueue:
    """Runs submitted jobs one at a time on a dedicated daemon thread, at most `max_waiting` queued."""

    def __init__(self, max_waiting: int = 16, retry_after_s: float = 2.0, name: str = "fncall-model") -> None:
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self._pending: queue.Queue[Job[Any] | None] = queue.Queue(maxsize=max_waiting)
        self._name = name
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.running: Job[Any] | None = None

    @property
    def waiting(self) -> int:
        return self._pending.qsize()

    def submit(self, work: JobWork[T]) -> Job[T]:
        """Queue `work`; raises OverloadedError when `max_waiting` jobs are already waiting."""
        job: Job[T] = Job(work=work, loop=asyncio.get_running_loop())
        try:
            self._pending.put_nowait(job)
        except queue.Full:
            raise OverloadedError(
                f"The local model is busy ({self.max_waiting} requests waiting); "
                f"retry in {self.retry_after_s:g} s.",
                retry_after=self.retry_after_s,
            ) from None
        self._ensure_worker()
        return job

    def close(self) -> None:
        """Let the worker finish the jobs already queued, then exit."""
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join()
            self._thread = None

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work_loop, name=self._name, daemon=True)
                self._thread.start()

    def _work_loop(self) -> None:
        while True:
            job = self._pending.get()
            if job is None:
                return
            self.running = job
            try:
                self._run(job)
            finally:
                self.running = None

    @staticmethod
    def _run(job: Job[Any]) -> None:
        if job.cancel_event.is_set():
            job._deliver(_Done())
            return
        items = iter(job.work(job.cancel_event))
        try:
            for item in items:
                if not job._deliver(item) or job.cancel_event.is_set():
                    break
        except BaseException as error:
            job._deliver(_Failure(error))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # run the job's cleanup here, on the thread that owns the model
        job._deliver(_Done())
